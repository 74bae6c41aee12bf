"""Serving latency of the restorer: onnxruntime vs torch eager, as ratios measured in one run.

    python -m bench.serving                      # CPU: 1 thread and all cores, 1x3x256x256 and batch 8
    python -m bench.serving --device cuda        # also torch eager on the GPU (fp32 and bf16 autocast)
    python -m bench.serving --quick              # fewer repeats, smaller images (a smoke test)

The model is the demo restorer's architecture from params.yaml, seeded weights (latency does not depend
on the values). onnxruntime needs `onnx`, `onnxscript` and `onnxruntime` (the exporter's and the runtime's
packages); where they are missing (the GPU machine) those rows are skipped and say so. Each figure is the
median of `--repeats` timed calls after warm-up calls, torch and onnxruntime interleaved call by call. Writes bench/results/serving{,-<device>}.md and .json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench import requested_device

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parents[1]


def restorer_config() -> dict:
    """The demo restorer's architecture (params.yaml `model`), read without pydantic or PyYAML (the GPU
    machine has neither): the integer keys of the top-level `model:` section."""
    config, in_model = {}, False
    for line in (ROOT / "params.yaml").read_text().splitlines():
        if not line.startswith(" "):
            in_model = line.strip() == "model:"
        elif in_model and ":" in line:
            key, value = (part.strip() for part in line.split("#", 1)[0].split(":", 1))
            if key in ("width", "levels", "prompts"):
                config[key] = int(value)
    return config


def median_seconds(calls: dict, repeats: int, warmup: int) -> dict:
    """Median seconds of each call, the calls interleaved round by round so that a change in the machine's
    load (a shared machine) hits all of them alike and their ratio stays fair."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def onnx_missing() -> str | None:
    missing = [name for name in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(name) is None]
    return f"not measured: {', '.join(missing)} not installed" if missing else None


def machine_description(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        model_names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
        cpu = model_names[0] if model_names else cpu
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} logical cores, Python {platform.python_version()}, torch {torch.__version__}"
    if hasattr(os, "getloadavg"):  # a shared machine's other work skews the all-cores rows most
        text += f", load average {os.getloadavg()[0]:.1f} at the end of the run"
    if importlib.util.find_spec("onnxruntime"):
        import onnxruntime

        text += f", onnxruntime {onnxruntime.__version__}"
    if device.type == "cuda":
        text += f", GPU {torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return text


def run(device: torch.device, shapes: list[tuple[int, ...]], threads: list[int], repeats: int, warmup: int) -> tuple[list[dict], str | None]:
    from unlearning.models import build_model

    torch.manual_seed(0)
    model = build_model("restorer-unet", restorer_config()).eval()
    rows = []
    skip_onnx = onnx_missing()
    with tempfile.TemporaryDirectory() as scratch:
        session_path = None
        if skip_onnx is None:
            try:  # pipelines/ also needs its settings' packages (pydantic-settings), which a bare machine lacks
                from pipelines.adapters.export import export_onnx
            except ImportError as error:
                skip_onnx = f"not measured: pipelines.adapters.export does not import ({error})"
            else:
                session_path = export_onnx(model, torch.rand(2, 3, 32, 32), Path(scratch) / "restorer.onnx")
        for shape in shapes:
            images = torch.rand(*shape)
            for count in threads:
                torch.set_num_threads(count)

                def eager():
                    with torch.inference_mode():
                        model(images)

                calls = {"torch_eager": eager}
                if session_path is not None:
                    import onnxruntime

                    options = onnxruntime.SessionOptions()
                    options.intra_op_num_threads, options.inter_op_num_threads = count, 1
                    session = onnxruntime.InferenceSession(str(session_path), options, providers=["CPUExecutionProvider"])
                    feed = {session.get_inputs()[0].name: images.numpy()}
                    calls["onnxruntime"] = lambda session=session, feed=feed: session.run(None, feed)
                seconds = median_seconds(calls, repeats, warmup)
                row = {"shape": "x".join(map(str, shape)), "threads": count, "torch_eager_ms": 1e3 * seconds["torch_eager"]}
                if "onnxruntime" in seconds:
                    row["onnxruntime_ms"] = 1e3 * seconds["onnxruntime"]
                    row["onnx_over_torch"] = row["onnxruntime_ms"] / row["torch_eager_ms"]
                rows.append(row)
        if device.type == "cuda":
            gpu_model = model.to(device)
            for shape in shapes:
                images = torch.rand(*shape, device=device)
                for label, precision in (("fp32", None), ("bf16", torch.bfloat16)):

                    def call():
                        with torch.inference_mode(), torch.autocast("cuda", dtype=precision, enabled=precision is not None):
                            gpu_model(images)
                        torch.cuda.synchronize(device)

                    seconds = median_seconds({"call": call}, repeats, warmup)["call"]
                    rows.append({"shape": "x".join(map(str, shape)), "threads": "cuda", "precision": label, "torch_eager_ms": 1e3 * seconds})
    torch.set_num_threads(os.cpu_count() or 1)
    return rows, skip_onnx


def markdown(rows: list[dict], machine: str, skip_onnx: str | None, config: dict, repeats: int) -> str:
    lines = [
        "# Serving latency: onnxruntime vs torch eager (restorer)",
        "",
        f"Machine: {machine}.",
        f"Model: restorer-unet {config}, seeded weights. Median of {repeats} calls after warm-up; all rows from one run.",
        "",
        "| input | threads | torch eager (ms) | onnxruntime (ms) | onnxruntime / torch |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        threads = row["threads"] if row["threads"] != "cuda" else f"cuda {row['precision']}"
        onnx = f"{row['onnxruntime_ms']:.1f}" if "onnxruntime_ms" in row else "–"
        ratio = f"{row['onnx_over_torch']:.2f}×" if "onnx_over_torch" in row else "–"
        lines.append(f"| {row['shape']} | {threads} | {row['torch_eager_ms']:.1f} | {onnx} | {ratio} |")
    if skip_onnx:
        lines += ["", f"onnxruntime: {skip_onnx}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, or cuda to add GPU rows (falls back to cpu, saying so)")
    parser.add_argument("--quick", action="store_true", help="64 px images, 3 repeats: a smoke test")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="results file stem (default bench/results/serving[-DEVICE])")
    args = parser.parse_args()
    device = requested_device(args.device, "bench.serving", fallback="measuring the CPU only")
    size = 64 if args.quick else 256
    repeats = args.repeats or (3 if args.quick else 10)
    shapes = [(1, 3, size, size), (8, 3, size, size)]
    threads = sorted({1, os.cpu_count() or 1})
    rows, skip_onnx = run(device, shapes, threads, repeats, warmup=2)
    machine = machine_description(device)
    config = restorer_config()
    stem = args.out or RESULTS / ("serving" if device.type == "cpu" else f"serving-{device.type}")
    if args.quick and args.out is None:
        stem = stem.with_name(stem.name + "-quick")
    stem.parent.mkdir(parents=True, exist_ok=True)
    table = markdown(rows, machine, skip_onnx, config, repeats)
    stem.with_suffix(".md").write_text(table)
    stem.with_suffix(".json").write_text(json.dumps({"machine": machine, "model": config, "repeats": repeats, "rows": rows}, indent=2) + "\n")
    print(table)


if __name__ == "__main__":
    main()
