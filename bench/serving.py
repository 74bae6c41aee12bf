"""Serving latency of the restorer: onnxruntime vs torch eager, as ratios measured in one run.

    python -m bench.serving                      # CPU: 1 thread and all cores, 1x3x256x256 and batch 8
    python -m bench.serving --device cuda        # also torch eager on the GPU (fp32 and bf16 autocast)
    python -m bench.serving --quick              # fewer repeats, smaller images (a smoke test)

The model is the demo restorer's architecture from params.yaml, seeded weights (latency does not depend
on the values). onnxruntime needs `onnx`, `onnxscript` and `onnxruntime` (the exporter's and the runtime's
packages); where they are missing (the GPU machine) those rows are skipped and say so. Each figure is the
median of `--repeats` timed calls after warm-up calls, torch and every onnxruntime variant (the export as written,
its serving fp32 rewrite and int8 variant: bench/serving_runtime.py) interleaved call by call. Parity is measured
on the seeded model and, where `make demo` has written models/restorer, on the trained one (eval patches).
Writes bench/results/serving{,-<device>}.md and .json.
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
from dataclasses import replace
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


def serving_variants(model, session_path: Path, scratch: Path) -> tuple[dict, dict]:
    """The export rewritten for serving (fp32) and its int8 variant (bench/serving_runtime.py),
    with each one's parity against torch on a seeded 2x3x256x256 batch; ({} , {}) where the module or
    onnxruntime.quantization is unavailable."""
    try:
        from bench import serving_runtime
    except ImportError:
        return {}, {}
    paths = {"serving_fp32": serving_runtime.optimize_for_serving(session_path, scratch / "serving.onnx")}
    generator = torch.Generator().manual_seed(1)
    calibration = [torch.rand(1, 3, 128, 128, generator=generator).numpy() for _ in range(4)]
    paths["serving_int8"] = serving_runtime.quantize_int8(session_path, scratch / "serving-int8.onnx", calibration)
    check = torch.rand(2, 3, 256, 256, generator=generator)
    bounds = {"serving_fp32": serving_runtime.FP32_MAX_ABS_DIFF, "serving_int8": serving_runtime.INT8_MAX_ABS_DIFF}
    parity = {name: serving_runtime.measure_parity(model, path, check, bound=bounds[name]).as_record() for name, path in paths.items()}
    parity.update(trained_int8_parity(scratch))
    return paths, parity


def trained_int8_parity(scratch: Path) -> dict:
    """int8 parity on the trained demo restorer (models/restorer, written by `make demo`/`dvc repro`), calibrated
    on 24 training patches and checked on the 192 eval patches with their targets: what the seeded weights
    above cannot show (the prompts' modulation starts at zero there). {} where the weights or data are absent."""
    weights, data = ROOT / "models" / "restorer" / "weights.safetensors", ROOT / "data" / "restoration"
    if not weights.exists() or not (data / "eval").is_dir() or importlib.util.find_spec("safetensors") is None:
        return {}
    from safetensors.torch import load_file

    from bench import serving_runtime
    from pipelines.adapters.export import export_onnx
    from unlearning.models import build_model

    config = json.loads((weights.parent / "architecture.json").read_text())
    model = build_model(config["architecture"], config["config"]).eval()
    model.load_state_dict(load_file(str(weights)))

    def patches(split: str, key: str, count: int) -> torch.Tensor:
        return torch.cat([load_file(str(path))[key][:count].float() / 255 for path in sorted((data / split).glob("*.safetensors"))])

    train = patches("train", "inputs", 8)
    export = export_onnx(model, torch.rand(2, 3, 32, 32), scratch / "trained.onnx")
    int8 = serving_runtime.quantize_int8(export, scratch / "trained-int8.onnx", [train[index::3].numpy() for index in range(3)])
    record = serving_runtime.measure_parity(model, int8, patches("eval", "inputs", 64), targets=patches("eval", "targets", 64),
                                            bound=serving_runtime.INT8_MAX_ABS_DIFF).as_record()
    return {"serving_int8 (trained weights, eval patches)": record}


def load_average() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def run(device: torch.device, shapes: list[tuple[int, ...]], threads: list[int], repeats: int, warmup: int) -> tuple[list[dict], str | None, dict]:
    from unlearning.models import build_model

    torch.manual_seed(0)
    model = build_model("restorer-unet", restorer_config()).eval()
    rows = []
    skip_onnx = onnx_missing()
    parity: dict = {}
    with tempfile.TemporaryDirectory() as scratch:
        session_path, variants = None, {}
        if skip_onnx is None:
            try:  # pipelines/ also needs its settings' packages (pydantic-settings), which a bare machine lacks
                from pipelines.adapters.export import export_onnx
            except ImportError as error:
                skip_onnx = f"not measured: pipelines.adapters.export does not import ({error})"
            else:
                session_path = export_onnx(model, torch.rand(2, 3, 32, 32), Path(scratch) / "restorer.onnx")
                variants, parity = serving_variants(model, session_path, Path(scratch))
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
                    sessions = {"onnxruntime": onnxruntime.InferenceSession(str(session_path), options, providers=["CPUExecutionProvider"])}
                    if variants:
                        from bench import serving_runtime

                        for name, path in variants.items():
                            tuned = replace(serving_runtime.saved_options(path), threads=count)
                            sessions[name] = serving_runtime.load_session(path, tuned)
                    for name, session in sessions.items():
                        feed = {session.get_inputs()[0].name: images.numpy()}
                        calls[name] = lambda session=session, feed=feed: session.run(None, feed)
                load_before = load_average()
                seconds = median_seconds(calls, repeats, warmup)
                row = {"shape": "x".join(map(str, shape)), "threads": count, "load_before": load_before, "load_after": load_average(),
                       "torch_eager_ms": 1e3 * seconds["torch_eager"]}
                for name in ("onnxruntime", *variants):
                    if name in seconds:
                        row[f"{name}_ms"] = 1e3 * seconds[name]
                        row[f"{'onnx' if name == 'onnxruntime' else name}_over_torch"] = row[f"{name}_ms"] / row["torch_eager_ms"]
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
    return rows, skip_onnx, parity


def markdown(rows: list[dict], machine: str, skip_onnx: str | None, config: dict, repeats: int, parity: dict | None = None) -> str:
    lines = [
        "# Serving latency: onnxruntime vs torch eager (restorer)",
        "",
        f"Machine: {machine}.",
        f"Model: restorer-unet {config}, seeded weights. Median of {repeats} calls after warm-up, torch and every onnxruntime "
        "variant interleaved call by call; all rows from one run. `load` is the 1-minute load average before and after each row "
        "(a shared 2-core machine: absolute times stretch with the load, the interleaved ratios much less).",
        "",
        "onnxruntime: the export as written (default session options, already ORT_ENABLE_ALL). serving fp32: "
        "bench/serving_runtime.py `optimize_for_serving` (onnxscript clean-up, Conv-over-Concat split, the head's prompt "
        "modulation folded into a MatMul) with its saved session options. serving int8: `quantize_int8` of the export "
        "(pooling as a depthwise Conv, upsampling as a 1x1 Conv + channels-last pixel shuffle, head folded; static QDQ, "
        "per-channel s8 weights, u8 activations, Conv/Relu/Concat/Transpose/Reshape int8, RGB stem and head fp32), "
        "calibrated on 4 seeded 1x3x128x128 images.",
        "",
        "| input | threads | load | torch eager (ms) | onnxruntime (ms) | onnxruntime / torch | serving fp32 (ms) | fp32 / torch | serving int8 (ms) | int8 / torch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(row, key, form):
        return form.format(row[key]) if row.get(key) is not None else "–"

    for row in rows:
        threads = row["threads"] if row["threads"] != "cuda" else f"cuda {row['precision']}"
        load = f"{row['load_before']:.1f}→{row['load_after']:.1f}" if row.get("load_before") is not None else "–"
        lines.append(
            f"| {row['shape']} | {threads} | {load} | {row['torch_eager_ms']:.1f} | {cell(row, 'onnxruntime_ms', '{:.1f}')} | "
            f"{cell(row, 'onnx_over_torch', '{:.2f}×')} | {cell(row, 'serving_fp32_ms', '{:.1f}')} | {cell(row, 'serving_fp32_over_torch', '{:.2f}×')} | "
            f"{cell(row, 'serving_int8_ms', '{:.1f}')} | {cell(row, 'serving_int8_over_torch', '{:.2f}×')} |"
        )
    if parity:
        lines += ["", "Parity against torch (outputs in [0, 1]; the bound is the variant's own): the seeded model on a seeded "
                  "2x3x256x256 batch, and where models/restorer exists the trained one on the eval patches (ΔPSNR: the "
                  "variant's PSNR against the targets minus torch's).", "",
                  "| variant | max abs diff | mean abs diff | PSNR vs torch (dB) | ΔPSNR vs targets (dB) | bound | passed |",
                  "|---|---|---|---|---|---|---|"]
        for name, record in parity.items():
            delta = f"{record['psnr_delta_db']:+.3f}" if record.get("psnr_delta_db") is not None else "–"
            lines.append(f"| {name} | {record['max_abs_diff']:.2e} | {record['mean_abs_diff']:.2e} | {record['psnr_vs_torch_db']:.1f} | "
                         f"{delta} | {record['bound']:.0e} | {record['passed']} |")
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
    repeats = args.repeats or (3 if args.quick else 20)
    shapes = [(1, 3, size, size), (8, 3, size, size)]
    threads = sorted({1, os.cpu_count() or 1})
    rows, skip_onnx, parity = run(device, shapes, threads, repeats, warmup=3)
    machine = machine_description(device)
    config = restorer_config()
    stem = args.out or RESULTS / ("serving" if device.type == "cpu" else f"serving-{device.type}")
    if args.quick and args.out is None:
        stem = stem.with_name(stem.name + "-quick")
    stem.parent.mkdir(parents=True, exist_ok=True)
    table = markdown(rows, machine, skip_onnx, config, repeats, parity)
    stem.with_suffix(".md").write_text(table)
    stem.with_suffix(".json").write_text(json.dumps({"machine": machine, "model": config, "repeats": repeats, "rows": rows, "parity": parity}, indent=2) + "\n")
    print(table)


if __name__ == "__main__":
    main()
