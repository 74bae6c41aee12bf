"""Production mode on loopback, all real: a private PostgreSQL, `mlflow server` with basic auth on it,
`prefect server` on it with a process work pool, a deployment and a worker; then a Dask batch.

The servers start once for the module (`erasure servers up` in a subprocess, as a user would) and
the last test stops them. This process talks to them by env (monkeypatched for the module only),
since conftest points every other test at a per-worker sqlite store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

# Imported now, while the env is conftest's: Prefect freezes its settings from the env of its first
# import, and this module must never leave the worker's other tests pointing at a server it stops.
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from pipelines.adapters import registry
from pipelines.adapters.settings import PROJECT_ROOT, load_settings
from pipelines.flow.base_model import register_base_model
from pipelines.production.servers import (
    AUDITOR_USER,
    DEPLOYMENT,
    FLOW_NAME,
    PostgresUnavailable,
    Servers,
    ServerSettings,
    ensure_postgres_installed,
    group_members,
    http_status,
)
from tests.integration.ports import free_ports
from tests.pipeline.test_deletion_flow import request_file

pytestmark = [pytest.mark.integration]

MODELS = ("prod-restorer-a", "prod-restorer-b")
CLI = (sys.executable, "-m", "pipelines.cli")


def cli(*args: str, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run([*CLI, *args], env=full_env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout)


PORT_ATTEMPTS = 3
# Two models on two Dask worker processes: as many as CI's cores (three processes on two cores took 188 s
# of an idle suite run and 266 s of a busy one, mostly three cold imports contending). The batch of three
# measured 4 min 21 s alone on an idle 2-core machine, server set-up included (issue 11), and 300 s expired on
# a busy one: the timeout stays at 3x that figure, above the two-model batch's time.
BATCH_MEASURED_IDLE_S = 261
BATCH_TIMEOUT_S = 3 * BATCH_MEASURED_IDLE_S + 60


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    try:
        ensure_postgres_installed()
    except PostgresUnavailable as error:
        pytest.skip(f"production-mode tests need PostgreSQL: {error}")
    handle = None
    try:
        # A port free when probed can be taken before the server binds it (another test's client
        # connection, say): that race earns a retry on fresh ports. A server that died at start for another
        # reason gets one more try (CI shares 2 busy cores with other servers); twice is reported, with both outputs.
        failures = []
        for attempt in range(1, PORT_ATTEMPTS + 1):
            handle = _servers_on_fresh_ports(tmp_path_factory)
            started = cli("servers", "up", env=handle.server_env)
            output = started.stdout + started.stderr
            if started.returncode == 0:
                break
            handle.down(purge=True)
            failures.append(output)
            port_race = "already in use" in output
            died_at_start = "exited while starting" in output and sum("already in use" not in f for f in failures) < 2
            assert (port_race or died_at_start) and attempt < PORT_ATTEMPTS, "\n---\n".join(failures)
        yield handle
    finally:
        if handle is not None:
            handle.down(purge=True)


def _servers_on_fresh_ports(tmp_path_factory) -> Servers:
    postgres, mlflow_port, prefect = free_ports(3)
    server_env = {
        "ERASURE_SERVERS_DIR": str(tmp_path_factory.mktemp("servers")),
        "ERASURE_POSTGRES_PORT": str(postgres),
        "ERASURE_MLFLOW_PORT": str(mlflow_port),
        "ERASURE_PREFECT_PORT": str(prefect),
    }
    settings = ServerSettings(
        servers_dir=Path(server_env["ERASURE_SERVERS_DIR"]), postgres_port=postgres, mlflow_port=mlflow_port, prefect_port=prefect
    )
    handle = Servers(settings)
    handle.server_env = server_env
    return handle


@pytest.fixture(scope="module")
def pipeline(servers, tiny_world, data_repo, tmp_path_factory):
    """This process as the pipeline (MLflow admin) against the servers, with the tiny base models registered."""
    original_uri = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in servers.client_environment("pipeline").items():
            if key.startswith("MLFLOW_"):  # Prefect gets its URL through temporary_settings, per call
                patch.setenv(key, value)
        patch.setenv("ERASURE_DATA_REPO", str(data_repo))
        model_dir = tmp_path_factory.mktemp("prod-base-model")
        registry.write_model_files(tiny_world.model, "restorer-unet", model_dir)
        (model_dir / "metrics.json").write_text("{}")
        for name in MODELS:
            register_base_model(load_settings(), model_dir, name, "champion")
        yield servers
    mlflow.set_tracking_uri(original_uri)


def champion(name: str) -> str:
    return str(MlflowClient().get_model_version_by_alias(name, "champion").version)


def test_status_reports_every_server_running(servers):
    result = cli("servers", "status", env=servers.server_env)
    assert result.returncode == 0, result.stdout
    for name in ("postgres", "mlflow", "prefect", "worker"):
        assert f"{name}" in result.stdout


def test_credentials_are_private_and_never_on_a_command_line(servers):
    for path in (servers.state_dir / "credentials.json", servers.env_file("pipeline"), servers.env_file("auditor")):
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
    secrets = json.loads((servers.state_dir / "credentials.json").read_text()).values()
    for group in json.loads(servers.state_file.read_text())["groups"].values():
        for pid in group_members(group):
            command_line = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            assert not any(secret in command_line for secret in secrets), f"a secret is in the argv of pid {pid}"


def test_up_again_keeps_the_running_servers(servers):
    before = json.loads(servers.state_file.read_text())["groups"]
    again = cli("servers", "up", env=servers.server_env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(servers.state_file.read_text())["groups"] == before


def test_deployment_run_is_picked_up_by_the_worker_and_promotes_in_mlflow(pipeline, tmp_path):
    before = champion(MODELS[0])
    path = request_file(tmp_path, "req-prod-deployment", model=f"{MODELS[0]}@champion")
    with temporary_settings(updates={PREFECT_API_URL: pipeline.endpoints().prefect_api_url}):
        flow_run = run_deployment(
            f"{FLOW_NAME}/{DEPLOYMENT}",
            parameters={"request_file": str(path)},
            job_variables={"env": {"ERASURE_DATA_REPO": os.environ["ERASURE_DATA_REPO"]}},
            timeout=240,
        )
    assert flow_run.state.is_completed(), f"flow run {flow_run.name}: {flow_run.state}"
    assert flow_run.infrastructure_pid, "no worker started infrastructure for the run"

    after = champion(MODELS[0])
    assert int(after) == int(before) + 1
    version = MlflowClient().get_model_version(MODELS[0], after)
    assert version.tags[registry.TAG_REQUEST] == "req-prod-deployment"
    assert version.tags[registry.TAG_STATUS] == "promoted" and version.tags[registry.TAG_PARENT] == before
    audit_runs = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name(load_settings().audit_experiment).experiment_id],
        filter_string="attributes.run_name = 'req-prod-deployment'",
    )
    assert len(audit_runs) == 1 and audit_runs[0].data.metrics


def test_unauthenticated_requests_get_401(pipeline):
    url = f"{pipeline.endpoints().mlflow_url}/api/2.0/mlflow/registered-models/get?name={MODELS[0]}"
    assert http_status(url) == 401
    credentials = pipeline.credentials()
    assert http_status(url, user=AUDITOR_USER, password=credentials.auditor_password) == 200
    assert http_status(url, user=AUDITOR_USER, password="wrong-password") == 401


def test_unauthenticated_pipeline_is_told_to_set_credentials(pipeline, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    with pytest.raises(registry.RegistryAccessError, match="HTTP 401 UNAUTHENTICATED.*MLFLOW_TRACKING_USERNAME"):
        registry.load_by_alias(load_settings(), MODELS[0], "champion")


def test_read_only_user_cannot_move_an_alias(pipeline, monkeypatch):
    before = champion(MODELS[0])
    alias_url = f"{pipeline.endpoints().mlflow_url}/api/2.0/mlflow/registered-models/alias"
    body = {"name": MODELS[0], "alias": "champion", "version": "1"}
    assert http_status(alias_url, json.dumps(body).encode(), AUDITOR_USER, pipeline.credentials().auditor_password) == 403
    assert http_status(alias_url, json.dumps(body).encode()) == 401

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", AUDITOR_USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", pipeline.credentials().auditor_password)
    with pytest.raises(registry.RegistryAccessError, match=f"for {AUDITOR_USER}: HTTP 403 PERMISSION_DENIED"):
        registry.promote(load_settings(), MODELS[0], "champion", "1", before)
    assert champion(MODELS[0]) == before


def test_read_only_user_running_a_request_gets_a_clear_refusal(pipeline, tmp_path):
    path = request_file(tmp_path, "req-prod-auditor", model=f"{MODELS[1]}@champion")
    auditor_env = {**pipeline.client_environment("auditor"), "ERASURE_DATA_REPO": os.environ["ERASURE_DATA_REPO"]}
    result = cli("request", "run", str(path), env=auditor_env)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "refused" in result.stdout and "403 PERMISSION_DENIED" in result.stdout and AUDITOR_USER in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert champion(MODELS[1]) == "1"
    runs = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name(load_settings().audit_experiment).experiment_id],
        filter_string="attributes.run_name = 'req-prod-auditor'",
    )
    assert runs == [], "the read-only user wrote a run into the pipeline's audit experiment"


def test_dask_batch_processes_two_models_concurrently(pipeline, tmp_path):
    before = {name: champion(name) for name in MODELS}
    paths = [str(request_file(tmp_path, f"req-prod-batch-{i}", model=f"{name}@champion")) for i, name in enumerate(MODELS)]
    env = {**pipeline.client_environment("pipeline"), "ERASURE_DATA_REPO": os.environ["ERASURE_DATA_REPO"]}
    result = cli("request", "batch", *paths, "--workers", str(len(MODELS)), "--json", env=env, timeout=BATCH_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(outcome["model"] for outcome in outcomes) == sorted(MODELS)
    assert all(outcome["status"] == "passed" for outcome in outcomes), outcomes
    assert len({outcome["worker_pid"] for outcome in outcomes}) == len(MODELS), "requests did not run in separate Dask workers"
    assert max(o["started"] for o in outcomes) < min(o["finished"] for o in outcomes), "the requests never overlapped"
    for name in MODELS:
        assert int(champion(name)) == int(before[name]) + 1


def test_down_stops_every_process(servers):
    groups = json.loads(servers.state_file.read_text())["groups"]
    postmaster = servers._postgres_root / "data" / "postmaster.pid"
    postgres_pid = int(postmaster.read_text().split()[0])
    stopped = cli("servers", "down", env=servers.server_env)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert {name: group_members(pgid) for name, pgid in groups.items()} == {name: [] for name in groups}
    assert not Path(f"/proc/{postgres_pid}").exists() or "Z" in Path(f"/proc/{postgres_pid}/stat").read_text().split(")")[1][:3]
    assert set(servers.status().values()) == {"stopped"}
