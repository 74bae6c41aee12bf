"""What coalescing saves: wall time of 1 request alone vs 10 requests coalesced into one run, same run.

    python -m bench.coalescing                  # 1 vs 10 coalesced, 3 rounds each (about a minute on 2 CPU cores)
    python -m bench.coalescing --sequential     # also 10 one by one (inbox_flow(coalesce=False))

A small world of its own in a temporary ERASURE_HOME: tiny restoration data, a tiny restorer registered as
`restorer@champion`, the haze training set split into 10 shards. Each request forgets one shard and keeps
noise and rain; the method is the demo's (bounded gradient ascent, 200 steps). Thresholds accept any
result, so that no request is refused and the times compare the same work. Every timed round goes
through the inbox flow (Prefect, MLflow, DVC, Great Expectations, ONNX, audit), after one warm-up request
that starts Prefect's server. Writes bench/results/coalescing.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SHARDS = 10
METHOD = {"name": "gradient_ascent", "params": {"steps": 200, "learning_rate": 3.0e-4, "retain_weight": 3.0}}
ANY_RESULT = {"forget_max_gain_db": 30.0, "retain_max_drop_db": 30.0}


def _run(*command: str, cwd: Path) -> None:
    subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True)


def build_world(root: Path) -> Path:
    """Data repo (git + DVC, local remote) with the tiny sets and 10 haze shards; the base model registered."""
    import torch
    import yaml  # noqa: F401 - fail early if the request writer's dependency is missing

    from pipelines.adapters import registry
    from pipelines.adapters.settings import load_settings
    from pipelines.flow.base_model import register_base_model
    from unlearning.data.pairs import PairSet, decode_arrays, encode_arrays
    from unlearning.data.restoration import RestorationDataConfig, build_restoration_sets, set_path
    from unlearning.models import build_model
    from unlearning.train import TrainConfig, train_restorer

    files = build_restoration_sets(RestorationDataConfig(patch_size=16, train_patches_per_degradation=160, eval_patches_per_degradation=32))
    haze, _ = decode_arrays(files[set_path("train", "haze")], "haze")
    for n in range(SHARDS):
        shard = {key: value[n::SHARDS] for key, value in haze.items()}
        files[f"restoration/train/haze-shard-{n}.safetensors"] = encode_arrays(shard, {"task": "restoration"})

    repo = root / "data-repo"
    repo.mkdir()
    dvc = (sys.executable, "-m", "dvc")
    _run("git", "init", "-q", "-b", "main", cwd=repo)
    _run("git", "config", "user.email", "bench@erasure.invalid", cwd=repo)
    _run("git", "config", "user.name", "erasure bench", cwd=repo)
    _run(*dvc, "init", "-q", cwd=repo)
    _run(*dvc, "remote", "add", "-d", "local", str(root / "dvc-remote"), cwd=repo)
    for relative, raw in files.items():
        (repo / "data" / relative).parent.mkdir(parents=True, exist_ok=True)
        (repo / "data" / relative).write_bytes(raw)
    _run(*dvc, "add", "-q", "data", cwd=repo)
    _run(*dvc, "push", "-q", cwd=repo)
    _run("git", "add", "-A", cwd=repo)
    _run("git", "commit", "-q", "-m", "bench data", cwd=repo)

    torch.manual_seed(0)
    model = build_model("restorer-unet", {"width": 8, "levels": 2})
    sets = [PairSet.from_arrays(name, decode_arrays(files[set_path("train", name)], name)[0]) for name in ("noise", "rain", "haze")]
    train_restorer(model, sets, TrainConfig(steps=400, batch_size=16, learning_rate=3e-3), torch.device("cpu"), show_progress=False)
    registry.write_model_files(model, "restorer-unet", root / "base-model")
    (root / "base-model" / "metrics.json").write_text("{}")
    os.environ["ERASURE_DATA_REPO"] = str(repo)
    register_base_model(load_settings(), root / "base-model", "restorer", "champion")
    return repo


def write_request(directory: Path, request_id: str, shard: int) -> Path:
    import yaml

    request = {
        "request_id": request_id,
        "model": "restorer@champion",
        "forget": {
            "path": f"data/restoration/train/haze-shard-{shard}.safetensors",
            "rev": "main",
            "evaluation": "data/restoration/eval/haze.safetensors",
        },
        "retain": {
            "paths": ["data/restoration/train/noise.safetensors", "data/restoration/train/rain.safetensors"],
            "evaluation": ["data/restoration/eval/noise.safetensors", "data/restoration/eval/rain.safetensors"],
        },
        "method": METHOD,
        "thresholds": ANY_RESULT,
        "requested_by": "bench@example.org",
        "reason": "coalescing benchmark",
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{request_id}.yaml"
    path.write_text(yaml.safe_dump(request))
    return path


def timed_round(root: Path, name: str, count: int, coalesce: bool) -> tuple[float, list[dict]]:
    """`count` requests (shards 0..count-1) through one inbox run; (wall seconds, outcomes)."""
    from pipelines.operations.inbox import inbox_flow

    inbox = root / f"inbox-{name}"
    for shard in range(count):
        write_request(inbox / "pending", f"req-{name}-{shard:02d}", shard)
    started = time.perf_counter()
    outcomes = inbox_flow(str(inbox), coalesce=coalesce)
    seconds = time.perf_counter() - started
    refused = [o for o in outcomes if o["status"] != "passed"]
    if refused:
        raise SystemExit(f"round {name}: not every request passed: {refused}")
    return seconds, outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", action="store_true", help="also time 10 requests one by one")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of each (alternating); the medians are compared")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="erasure-bench-coalescing-"))
    os.environ.update({"ERASURE_HOME": str(root / "home"), "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'home' / 'mlflow.db'}", "PREFECT_HOME": str(root / "home" / "prefect")})
    os.environ.pop("PREFECT_API_URL", None)
    from pipelines.adapters.settings import load_settings

    load_settings().export_environment()
    started = time.perf_counter()
    build_world(root)
    setup = time.perf_counter() - started
    from pipelines.flow.deletion import deletion_flow

    # Warm-up: starts Prefect's ephemeral server and imports the flow's tools, so round one pays for neither.
    deletion_flow(str(write_request(root / "warm-up", "req-warm-up", 0)))

    # Alternating rounds, median of each: single rounds on a shared 2-core machine jump by ~1 s at random.
    times: dict[str, list[float]] = {"1 request": [], f"{SHARDS} requests, coalesced": []}
    outcomes: dict[str, list[dict]] = {}
    for repeat in range(args.repeats):
        for name, count in (("1 request", 1), (f"{SHARDS} requests, coalesced", SHARDS)):
            seconds, outcomes[name] = timed_round(root, f"{count}-{repeat}", count, coalesce=True)
            times[name].append(seconds)
    if args.sequential:
        name = f"{SHARDS} requests, one by one"
        seconds, outcomes[name] = timed_round(root, "sequential", SHARDS, coalesce=False)
        times[name] = [seconds]
    medians = {name: statistics.median(values) for name, values in times.items()}
    one, coalesced = medians["1 request"], medians[f"{SHARDS} requests, coalesced"]

    lines = [
        "# Coalescing: 1 request vs 10 coalesced",
        "",
        f"`python -m bench.coalescing --repeats {args.repeats}{' --sequential' if args.sequential else ''}` on "
        f"{platform.machine()}, {os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d')}; setup (data, base model) "
        f"{setup:.0f} s, not timed below.",
        f"Each request forgets one of {SHARDS} haze shards (16 examples), keeps noise + rain; {METHOD['name']} "
        f"{METHOD['params']['steps']} steps; wall time of one `inbox_flow` run each (Prefect, MLflow, DVC, GX, ONNX, audit);",
        "the rounds alternate (1, 10, 1, 10, ...), each starting from the version the round before promoted.",
        "",
        "| round | wall time of each round | median | per request | versions promoted | x one request |",
        "|---|---|---|---|---|---|",
    ]
    for name, values in times.items():
        count = len(outcomes[name])
        promoted = len({o["version_after"] for o in outcomes[name]})
        each = ", ".join(f"{v:.2f}" for v in values)
        lines.append(f"| {name} | {each} s | {medians[name]:.2f} s | {medians[name] / count:.2f} s | {promoted} | "
                     f"{medians[name] / one:.2f} |")
    lines += ["", f"**Ratio: {SHARDS} coalesced requests take {coalesced / one:.2f}x the wall time of 1 request** "
              f"(medians; round by round: {', '.join(f'{c / o:.2f}' for o, c in zip(times['1 request'], times[f'{SHARDS} requests, coalesced']))})."]
    if args.sequential:
        sequential = medians[f"{SHARDS} requests, one by one"]
        lines += ["", f"Run one by one, the same {SHARDS} requests took {sequential / coalesced:.1f}x as long as coalesced."]
    lines += [
        "",
        "What is shared: one unlearning run (on the union of the forget sets), one registration, one ONNX export",
        "and parity check, one promotion; the data pulls (files every member names are read once); one Great",
        "Expectations run on the union of the forget sets (each member validated alone when the union fails); the",
        "shared model's evaluation on held-out sets of the same content. What is not: each request's verdict on its",
        "own thresholds, its audit record (chained, signed) and MLflow audit run, and its Prefect artifacts.",
    ]
    report = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "coalescing.md").write_text(report)
    print(report)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
