"""Unlearning vs retraining when the base model is trained until its held-out PSNR plateaus.

    python -m bench.plateau                 # demo restorer (params.yaml), 6000 steps each, ~12 min on 1 core
    python -m bench.plateau --steps 800     # a smoke run
    python -m bench.plateau --device cuda   # on a GPU (bench/gpu.sh)

The demo data (params.yaml `data`, seed 0) and architecture; the base model trains on noise+rain+haze and the
retrained reference on noise+rain, each for `--steps` balanced steps, with held-out PSNR recorded every
`--check-every` steps (the learning curve shows where it plateaus). Each method then runs once on a copy of the
base; "equal forgetting" = haze PSNR within 0.5 dB of the retrained model's, "retention" = noise and rain
within 0.3 dB of the original's (the demo request's threshold). cost = method seconds / retrain seconds, in
this one run (evaluation time excluded from both). Writes bench/results/plateau.{md,json}.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from pathlib import Path

import torch

from bench.serving import restorer_config
from unlearning.data.pairs import PairSet, concat, decode_arrays
from unlearning.data.restoration import RestorationDataConfig, build_restoration_sets, set_path
from unlearning.methods import UnlearningProblem, create_method
from unlearning.metrics import score_restoration
from unlearning.models import build_model
from unlearning.train import TrainConfig, train_restorer

DEVICE = torch.device("cpu")  # main() sets it from --device
RESULTS = Path(__file__).parent / "results"
KEPT, FORGOTTEN = ("noise", "rain"), "haze"
DEMO_UNLEARNING = dict(steps=200, learning_rate=1e-4)
METHODS = {
    "gradient_ascent (demo request)": ("gradient_ascent", {**DEMO_UNLEARNING, "bound": "do_nothing", "retain_weight": 1.0}, True),
    "finetune": ("finetune", DEMO_UNLEARNING, True),
    "salun": ("salun", DEMO_UNLEARNING, True),
    "adversarial_ga(forget,pgd)": ("adversarial_ga", DEMO_UNLEARNING, True),
    "adversarial_ga(forget,pgd), no retain data": ("adversarial_ga", DEMO_UNLEARNING, False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--check-every", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=RESULTS / "plateau")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (falls back to cpu, saying so)")
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        print("bench.plateau: no CUDA device visible; running on the CPU")
        DEVICE = torch.device("cpu")
    torch.set_num_threads(1)
    files = build_restoration_sets(RestorationDataConfig())

    def pairs(split, name):
        return PairSet.from_arrays(name, decode_arrays(files[set_path(split, name)], name)[0])

    def psnrs(model):
        return {name: score_restoration(model, pairs("eval", name), DEVICE).psnr for name in (*KEPT, FORGOTTEN)}

    training = TrainConfig(steps=args.steps, batch_size=18, learning_rate=2e-3, balance_sets=True)

    def train(names):
        curve, evaluating = [], [0.0]

        def record(step, model):
            if step % args.check_every == 0 or step == args.steps:
                started = time.perf_counter()
                curve.append({"step": step, **psnrs(model.eval())})
                evaluating[0] += time.perf_counter() - started

        torch.manual_seed(0)
        model = build_model("restorer-unet", restorer_config())
        started = time.perf_counter()
        train_restorer(model, [pairs("train", n) for n in names], training, DEVICE, show_progress=False, after_step=record)
        if DEVICE.type == "cuda":
            torch.cuda.synchronize(DEVICE)
        return model, time.perf_counter() - started - evaluating[0], curve

    original, original_seconds, original_curve = train([*KEPT, FORGOTTEN])
    print(f"original: {original_seconds:.0f} s, {original_curve[-1]}", flush=True)
    retrained, retrain_seconds, retrain_curve = train(list(KEPT))
    print(f"retrained: {retrain_seconds:.0f} s, {retrain_curve[-1]}", flush=True)
    before, reference = original_curve[-1], retrain_curve[-1]
    retain = concat([pairs("train", n) for n in KEPT], "retain")
    rows = []
    for label, (name, params, with_retain) in METHODS.items():
        model = copy.deepcopy(original)
        torch.manual_seed(0)
        problem = UnlearningProblem(model, pairs("train", FORGOTTEN), retain if with_retain else None, DEVICE)
        outcome = create_method(name, {**params, "seed": 0}).run(problem, show_progress=False)
        after = psnrs(model)
        rows.append({
            "method": label, **after, "seconds": outcome.seconds, "steps": outcome.steps,
            "cost": outcome.seconds / retrain_seconds,
            "forgets": abs(after[FORGOTTEN] - reference[FORGOTTEN]) <= 0.5,
            "retains": all(before[n] - after[n] <= 0.3 for n in KEPT),
        })
        print(f"{label}: {rows[-1]}", flush=True)
    haze_input = score_restoration(original, pairs("eval", FORGOTTEN), DEVICE).input_psnr
    machine = f"{platform.processor() or platform.machine()}, 1 torch thread of {os.cpu_count()} cores, torch {torch.__version__}"
    if DEVICE.type == "cuda":
        machine += f", GPU {torch.cuda.get_device_name(DEVICE)} (bf16 autocast)"
    lines = [
        "# Unlearning vs retraining at a plateaued budget (demo restorer)", "",
        f"Machine: {machine}. One run, seed 0. Architecture {restorer_config()}, balanced training, batch 18,",
        f"cosine schedule over {args.steps} steps. Held-out haze input PSNR {haze_input:.2f} dB.", "",
        "## Learning curves (held-out PSNR, dB)", "",
        "| step | original noise | original rain | original haze | retrained noise | retrained rain | retrained haze |",
        "|---|---|---|---|---|---|---|",
    ]
    for a, b in zip(original_curve, retrain_curve):
        lines.append(f"| {a['step']} | {a['noise']:.2f} | {a['rain']:.2f} | {a['haze']:.2f} | {b['noise']:.2f} | {b['rain']:.2f} | {b['haze']:.2f} |")
    lines += [
        "", f"Training seconds: original {original_seconds:.0f}, retrained {retrain_seconds:.0f}.", "",
        "## Methods on the plateaued base (200 steps, lr 1e-4)", "",
        "| method | haze | noise | rain | forgets (±0.5 dB of retrain) | retains (≤0.3 dB drop) | seconds | cost (× retrain) |",
        "|---|---|---|---|---|---|---|---|",
        f"| original | {before['haze']:.2f} | {before['noise']:.2f} | {before['rain']:.2f} | | | {original_seconds:.0f} | |",
        f"| retrained | {reference['haze']:.2f} | {reference['noise']:.2f} | {reference['rain']:.2f} | | | {retrain_seconds:.0f} | 1 |",
    ]
    for row in rows:
        lines.append(f"| {row['method']} | {row['haze']:.2f} | {row['noise']:.2f} | {row['rain']:.2f} | "
                     f"{'yes' if row['forgets'] else 'no'} | {'yes' if row['retains'] else 'no'} | {row['seconds']:.1f} | {row['cost']:.3f} |")
    table = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(table)
    args.out.with_suffix(".json").write_text(json.dumps({
        "machine": machine, "steps": args.steps, "original_seconds": original_seconds, "retrain_seconds": retrain_seconds,
        "original_curve": original_curve, "retrain_curve": retrain_curve, "methods": rows}, indent=1) + "\n")
    print(table)


if __name__ == "__main__":
    main()
