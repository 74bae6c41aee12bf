"""Production mode on one machine: PostgreSQL, an MLflow server with basic auth, a Prefect server and a
process worker, all on 127.0.0.1; started idempotently, stopped by process group. One file
(~500 lines) on purpose: the four servers share one state directory, one process-group lifecycle and one env file.

    erasure servers up      # start what is not running; prints the URLs and the env file to source
    erasure servers status
    erasure servers down    # stop everything this state directory started; --purge also deletes its data

State lives in one directory (ERASURE_SERVERS_DIR, default $ERASURE_HOME/servers): generated
credentials (0600), logs, the MLflow artifacts, Prefect's home and `servers.json` (ports and process
groups). PostgreSQL is a private cluster of the machine's installed PostgreSQL binaries, so it never
touches the system cluster and `down` can stop it without disturbing anyone else.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from pipelines.adapters.settings import PROJECT_ROOT, QUIET_ENVIRONMENT, load_settings

ADMIN_USER = "erasure-admin"
AUDITOR_USER = "auditor"
DATABASE_USER = "erasure"
DATABASE_PREFIX = "erasure_prod_"
DATABASES = ("mlflow", "mlflow_auth", "prefect")
WORK_POOL = "erasure"
DEPLOYMENT = "erasure"
FLOW_ENTRYPOINT = "pipelines/flow/deletion.py:deletion_flow"
FLOW_NAME = "deletion-request"


class ServersError(RuntimeError):
    """A server could not be started, reached or stopped; the message names which and where its log is."""


class PostgresUnavailable(ServersError):
    """No PostgreSQL server binaries on this machine, and they could not be installed."""


class ServerSettings(BaseSettings):
    """Where the servers keep their state and which loopback ports they listen on."""

    model_config = SettingsConfigDict(env_prefix="ERASURE_", extra="ignore")

    servers_dir: Path | None = None
    postgres_port: int = 25401
    mlflow_port: int = 25402
    prefect_port: int = 25403
    # Seconds between the worker's polls of its pool: 2 makes a submitted run start within seconds;
    # Prefect's default of 10 suits a busy shared server better.
    worker_query_seconds: int = 2

    @property
    def state_dir(self) -> Path:
        return (self.servers_dir or load_settings().home / "servers").resolve()


@dataclass(frozen=True)
class Credentials:
    database_password: str
    admin_password: str
    auditor_password: str
    flask_secret: str


@dataclass(frozen=True)
class Endpoints:
    postgres_port: int
    mlflow_url: str
    prefect_api_url: str


class Servers:
    """The servers of one state directory. Every method is safe to call again."""

    def __init__(self, settings: ServerSettings | None = None):
        self.settings = settings or ServerSettings()
        self.state_dir = self.settings.state_dir
        self.state_file = self.state_dir / "servers.json"
        self.logs = self.state_dir / "logs"

    # ---- state -----------------------------------------------------------------------------------

    def _read_state(self) -> dict:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def _write_state(self, state: dict) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(state, indent=2, sort_keys=True))

    def endpoints(self) -> Endpoints:
        ports = self._read_state().get("ports") or {
            "postgres": self.settings.postgres_port,
            "mlflow": self.settings.mlflow_port,
            "prefect": self.settings.prefect_port,
        }
        return Endpoints(
            postgres_port=ports["postgres"],
            mlflow_url=f"http://127.0.0.1:{ports['mlflow']}",
            prefect_api_url=f"http://127.0.0.1:{ports['prefect']}/api",
        )

    def credentials(self) -> Credentials:
        """The generated secrets, created on first use in a file only this user can read."""
        path = self.state_dir / "credentials.json"
        if not path.exists():
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fresh = {field: secrets.token_urlsafe(24) for field in Credentials.__dataclass_fields__}
            _write_private(path, json.dumps(fresh, indent=2))
        return Credentials(**json.loads(path.read_text()))

    def client_environment(self, role: str = "pipeline") -> dict[str, str]:
        """The env a client exports: the pipeline writes as the MLflow admin, auditors read only."""
        endpoints, credentials = self.endpoints(), self.credentials()
        user, password = {
            "pipeline": (ADMIN_USER, credentials.admin_password),
            "auditor": (AUDITOR_USER, credentials.auditor_password),
        }[role]
        return {
            "MLFLOW_TRACKING_URI": endpoints.mlflow_url,
            "MLFLOW_TRACKING_USERNAME": user,
            "MLFLOW_TRACKING_PASSWORD": password,
            "PREFECT_API_URL": endpoints.prefect_api_url,
        }

    def env_file(self, role: str) -> Path:
        return self.state_dir / f"{role}.env"

    # ---- PostgreSQL: a private cluster of the installed binaries ----------------------------------

    @property
    def _postgres_root(self) -> Path:
        # PostgreSQL refuses to run as root; as root the cluster runs as the `postgres` user, in a
        # directory that user can reach (the state dir may sit under a 0700 temp dir).
        if os.geteuid() == 0:
            digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:12]
            return Path("/var/lib/postgresql") / f"erasure-{digest}"
        return self.state_dir / "postgres"

    def _as_postgres(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        root = self._postgres_root
        command = self._as_postgres([str(_postgres_bin("pg_ctl")), "-D", str(root / "data"), *args])
        result = subprocess.run(command, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise ServersError(f"postgres: pg_ctl {args[-1]} failed: {result.stderr.strip()} (log: {root / 'postgres.log'})")
        return result

    def _postgres_running(self) -> bool:
        return (self._postgres_root / "data" / "postmaster.pid").exists() and self._pg_ctl("status", check=False).returncode == 0

    def database_url(self, database: str, driver: str) -> str:
        password = self.credentials().database_password
        return f"postgresql+{driver}://{DATABASE_USER}:{password}@127.0.0.1:{self.endpoints().postgres_port}/{DATABASE_PREFIX}{database}"

    def _start_postgres(self, port: int) -> None:
        root = self._postgres_root
        if not (root / "data" / "PG_VERSION").exists():
            root.mkdir(parents=True, exist_ok=True)
            password_file = root / "initdb-password"
            _write_private(password_file, self.credentials().database_password)
            if os.geteuid() == 0:
                shutil.chown(root, "postgres", "postgres")
                shutil.chown(password_file, "postgres", "postgres")
            initdb = [str(_postgres_bin("initdb")), "-D", str(root / "data"), "-U", DATABASE_USER, "-E", "UTF8",
                      "--locale=C", f"--pwfile={password_file}", "--auth-local=trust", "--auth-host=scram-sha-256"]
            result = subprocess.run(self._as_postgres(initdb), capture_output=True, text=True)
            password_file.unlink()
            if result.returncode != 0:
                raise ServersError(f"postgres: initdb in {root / 'data'} failed: {result.stderr.strip()}")
        if not self._postgres_running():
            _require_free_port(port, "postgres")
            options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
            self._pg_ctl("-l", str(root / "postgres.log"), "-w", "-t", "60", "-o", options, "start")
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=port, user=DATABASE_USER, dbname="postgres",
                                      password=self.credentials().database_password)
        connection.autocommit = True
        with connection.cursor() as cursor:
            for database in DATABASES:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_PREFIX + database,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{DATABASE_PREFIX}{database}"')
        connection.close()

    # ---- MLflow, Prefect and the worker: each in its own process group ----------------------------

    def _mlflow_command(self, port: int) -> tuple[list[str], dict[str, str]]:
        credentials = self.credentials()
        auth_config = self.state_dir / "mlflow-auth.ini"
        _write_private(
            auth_config,
            "[mlflow]\n"
            # Every authenticated user may read; only the admin (the pipeline) and owners may write.
            "default_permission = READ\n"
            f"database_uri = {self.database_url('mlflow_auth', 'psycopg2')}\n"
            f"admin_username = {ADMIN_USER}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
        )
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--artifacts-destination", str(self.state_dir / "mlartifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
            "--app-name", "basic-auth",
        ]
        env = {
            # Through the environment, not argv: a command line (and the password in it) is public in `ps`.
            "MLFLOW_BACKEND_STORE_URI": self.database_url("mlflow", "psycopg2"),
            "MLFLOW_AUTH_CONFIG_PATH": str(auth_config),
            "MLFLOW_AUTH_ADMIN_PASSWORD": credentials.admin_password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": credentials.flask_secret,
            # The job runner forks workers that outlive a server stopped while starting.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        return command, env

    def _prefect_command(self, port: int) -> tuple[list[str], dict[str, str]]:
        command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
        env = {"PREFECT_API_DATABASE_CONNECTION_URL": self.database_url("prefect", "asyncpg")}
        return command, env

    def _worker_command(self) -> tuple[list[str], dict[str, str]]:
        command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", WORK_POOL, "--type", "process",
                   "--name", f"erasure-{socket.gethostname()}"]
        env = {**self.client_environment("pipeline"), "PREFECT_WORKER_QUERY_SECONDS": str(self.settings.worker_query_seconds)}
        return command, env

    def _base_environment(self) -> dict[str, str]:
        env = {**os.environ, **QUIET_ENVIRONMENT, "PREFECT_HOME": str(self.state_dir / "prefect"), "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
        # A caller's own endpoints (the embedded defaults, say) must not leak into the servers.
        for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "PREFECT_API_URL"):
            env.pop(key, None)
        return env

    def _spawn(self, name: str, command: list[str], extra_env: dict[str, str]) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                command, env={**self._base_environment(), **extra_env}, cwd=PROJECT_ROOT,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, so `down` stops its children too
            )
        return process.pid

    def _wait_healthy(self, name: str, url: str, pgid: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if http_status(url) == 200:
                return
            if not group_members(pgid):
                cause = self._first_error(name)
                raise ServersError(f"{name}: exited while starting{f' ({cause})' if cause else ''}; "
                                   f"see {self.logs / f'{name}.log'}:\n{self._log_tail(name)}")
            time.sleep(0.5)
        raise ServersError(f"{name}: not healthy at {url} after {timeout:.0f} s; see {self.logs / f'{name}.log'}")

    def _log_tail(self, name: str, lines: int = 15) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def _first_error(self, name: str) -> str | None:
        """The log's first line naming an error: a server that dies at start often logs its cause (a port
        taken, say) long before the shutdown traceback that fills the tail."""
        path = self.logs / f"{name}.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        return next((line.strip()[:200] for line in lines if "already in use" in line or "[Errno" in line), None)

    def _alive(self, state: dict, name: str) -> bool:
        pgid = state.get("groups", {}).get(name)
        return bool(pgid and group_members(pgid))

    def up(self) -> Endpoints:
        """Start whatever is not running yet; return the endpoints once all of them answer."""
        ensure_postgres_installed()
        state = self._read_state()
        if not any(self._alive(state, name) for name in ("mlflow", "prefect", "worker")):
            state["ports"] = {"postgres": self.settings.postgres_port, "mlflow": self.settings.mlflow_port,
                              "prefect": self.settings.prefect_port}
        state.setdefault("groups", {})
        self._write_state(state)
        ports = state["ports"]
        self._start_postgres(ports["postgres"])
        endpoints = self.endpoints()
        health = {"mlflow": f"{endpoints.mlflow_url}/health", "prefect": f"{endpoints.prefect_api_url}/health"}
        commands = {"mlflow": self._mlflow_command(ports["mlflow"]), "prefect": self._prefect_command(ports["prefect"])}
        started = []
        for name, (command, env) in commands.items():
            if self._alive(state, name) and http_status(health[name]) == 200:
                continue
            self._stop_group(state, name)
            _require_free_port(ports[name], name)
            state["groups"][name] = self._spawn(name, command, env)
            self._write_state(state)
            started.append(name)
        for name in started:  # the two start in parallel; ~10 s for MLflow's migrations on PostgreSQL
            self._wait_healthy(name, health[name], state["groups"][name])
        self._create_auditor()
        self._create_experiments()
        self._ensure_deployment()
        if not self._alive(state, "worker"):
            command, env = self._worker_command()
            state["groups"]["worker"] = self._spawn("worker", command, env)
            self._write_state(state)
        for role in ("pipeline", "auditor"):
            lines = [f"export {key}={value}" for key, value in self.client_environment(role).items()]
            _write_private(self.env_file(role), "\n".join(lines) + "\n")
        return endpoints

    def _create_auditor(self) -> None:
        """The read-only user auditors sign in as; it inherits default_permission = READ."""
        credentials = self.credentials()
        body = json.dumps({"username": AUDITOR_USER, "password": credentials.auditor_password}).encode()
        status = http_status(
            f"{self.endpoints().mlflow_url}/api/2.0/mlflow/users/create",
            data=body, user=ADMIN_USER, password=credentials.admin_password,
        )
        if status not in (200, 400, 409):  # 400 / 409: the user exists already
            raise ServersError(f"mlflow: creating user {AUDITOR_USER!r} returned HTTP {status}")

    def _create_experiments(self) -> None:
        """The pipeline's experiments, owned by the admin: whoever creates an experiment may write to it."""
        settings, credentials = load_settings(), self.credentials()
        for name in (settings.audit_experiment, settings.training_experiment):
            status = http_status(
                f"{self.endpoints().mlflow_url}/api/2.0/mlflow/experiments/create",
                data=json.dumps({"name": name}).encode(), user=ADMIN_USER, password=credentials.admin_password,
            )
            if status not in (200, 400):  # 400: RESOURCE_ALREADY_EXISTS
                raise ServersError(f"mlflow: creating experiment {name!r} returned HTTP {status}")

    def _prefect_cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {**self._base_environment(), **self.client_environment("pipeline")}
        result = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", *args], env=env, cwd=PROJECT_ROOT,
                                capture_output=True, text=True, timeout=180)
        if check and result.returncode != 0:
            raise ServersError(f"prefect {' '.join(args[:2])} failed:\n{(result.stdout + result.stderr)[-2000:]}")
        return result

    def _ensure_deployment(self) -> None:
        """A `process` work pool and the deletion flow deployed to it (`deletion-request/erasure`)."""
        if self._prefect_cli("work-pool", "inspect", WORK_POOL, check=False).returncode != 0:
            self._prefect_cli("work-pool", "create", WORK_POOL, "--type", "process")
        self._prefect_cli("deploy", FLOW_ENTRYPOINT, "--name", DEPLOYMENT, "--pool", WORK_POOL)

    # ---- stopping ---------------------------------------------------------------------------------

    def _stop_group(self, state: dict, name: str) -> None:
        pgid = state.get("groups", {}).pop(name, None)
        if pgid:
            stop_process_group(pgid)

    def down(self, purge: bool = False) -> None:
        """Stop the worker, the servers and PostgreSQL; with `purge`, delete their data and credentials."""
        state = self._read_state()
        for name in ("worker", "prefect", "mlflow"):  # the worker first: it would retry a vanished server
            self._stop_group(state, name)
        if state:
            self._write_state(state)
        if _postgres_binaries_present() and self._postgres_running():
            self._pg_ctl("-m", "fast", "-w", "-t", "60", "stop")
        if purge:
            shutil.rmtree(self._postgres_root, ignore_errors=True)
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def status(self) -> dict[str, str]:
        state, endpoints = self._read_state(), self.endpoints()
        rows = {"postgres": "running" if _postgres_binaries_present() and self._postgres_running() else "stopped"}
        urls = {"mlflow": f"{endpoints.mlflow_url}/health", "prefect": f"{endpoints.prefect_api_url}/health", "worker": None}
        for name, url in urls.items():
            if not self._alive(state, name):
                rows[name] = "stopped"
            elif url is None or http_status(url) == 200:
                rows[name] = "running"
            else:
                rows[name] = "starting or unhealthy"
        return rows


def _write_private(path: Path, text: str) -> None:
    """Write `text` to a file readable by its owner only, whatever the umask."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def _postgres_bin_dir() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _postgres_binaries_present() -> bool:
    return _postgres_bin_dir() is not None


def _postgres_bin(name: str) -> Path:
    directory = _postgres_bin_dir()
    if directory is None:
        raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found; install them: apt-get install -y postgresql")
    return directory / name


def ensure_postgres_installed() -> None:
    """Install PostgreSQL with apt when it is missing and we are allowed to; else say what to do."""
    if _postgres_binaries_present():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PostgresUnavailable("PostgreSQL is not installed and this user cannot apt-get it: apt-get install -y postgresql")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        result = subprocess.run(install, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise PostgresUnavailable(f"apt-get install postgresql failed: {result.stderr.strip()[-500:]}")
    # Debian's package starts the system cluster; ours is private, so leave that one as the admin set it.


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state ppid pgrp ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def stop_process_group(pgid: int, grace: float = 8.0) -> None:
    """SIGTERM the group, then SIGINT, then SIGKILL: Prefect's worker ignores SIGTERM and a first SIGINT."""
    for sig, wait in ((signal.SIGTERM, grace / 2), (signal.SIGINT, grace / 2), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not group_members(pgid):
                return
            time.sleep(0.2)
    if group_members(pgid):
        raise ServersError(f"process group {pgid} survived SIGKILL: {group_members(pgid)}")


def _require_free_port(port: int, name: str) -> None:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise ServersError(
                f"{name}: port {port} on 127.0.0.1 is already in use by another process; "
                f"choose another with ERASURE_{name.upper()}_PORT"
            )


def http_status(url: str, data: bytes | None = None, user: str | None = None, password: str | None = None) -> int | None:
    """HTTP status of a GET (or a JSON POST with `data`), with basic auth if a user is given; None if unreachable."""
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if user is not None:
        request.add_header("Authorization", "Basic " + b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None
