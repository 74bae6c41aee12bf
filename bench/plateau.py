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

The sweep: each method runs `--unlearning-steps` steps at each learning rate of SWEEP_RATES, scored on the
held-out sets at 1/8, 2/8, ... of the way. The unlearning loop has a constant learning rate and draws its
batches from a seeded generator, so the model at step k of a longer run is exactly the model a k-step run
makes; its cost is the run's seconds up to step k, less the time spent scoring. The cheapest checkpoint that
meets both checks is each method's cost at equal forgetting.
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

from bench import requested_device
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
DEMO_LEARNING_RATE = 1e-4
SWEEP_RATES = (1e-4, 3e-4)
FORGET_WITHIN_DB, RETAIN_DROP_DB = 0.5, 0.3
# label: (method, params besides steps and learning rate, with retain data)
METHODS = {
    "gradient_ascent (demo request)": ("gradient_ascent", {"bound": "do_nothing", "retain_weight": 1.0}, True),
    "finetune": ("finetune", {}, True),
    "salun (mask 0.5)": ("salun", {"mask_fraction": 0.5}, True),
    "salun (mask 0.1)": ("salun", {"mask_fraction": 0.1}, True),
    "adversarial_ga(forget,pgd)": ("adversarial_ga", {}, True),
    "adversarial_ga(forget,pgd), no retain data": ("adversarial_ga", {}, False),
}


def checkpoints(steps: int) -> list[int]:
    return sorted({max(1, steps * k // 8) for k in (1, 2, 3, 4, 5, 6, 8)})


def sweep_run(name, params, problem, steps, learning_rate, score, seconds_of_retrain, judge, seed=0):
    """One run of `steps` steps, scored at each checkpoint: [{step, seconds, cost, psnrs, forgets, retains}]."""
    method = create_method(name, {**params, "steps": steps, "learning_rate": learning_rate, "seed": seed})
    marks, rows, scoring = set(checkpoints(steps)), [], [0.0]
    started = time.perf_counter()
    stop_rule = method.should_stop

    def score_at_checkpoints(problem_) -> bool:
        step = method.step + 1
        if step in marks:
            if DEVICE.type == "cuda":
                torch.cuda.synchronize(DEVICE)
            seconds = time.perf_counter() - started - scoring[0]
            began = time.perf_counter()
            psnrs = score(problem_.model.eval())  # the loop switches back to train mode after a stop rule
            scoring[0] += time.perf_counter() - began
            rows.append({"step": step, "seconds": seconds, "cost": seconds / seconds_of_retrain, **psnrs, **judge(psnrs)})
        return stop_rule(problem_)

    method.should_stop = score_at_checkpoints
    method.run(problem, show_progress=False)
    mask = getattr(method, "mask", None)
    share = None if mask is None else sum(m.sum().item() for m in mask.values()) / sum(m.numel() for m in mask.values())
    return rows, share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--check-every", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=RESULTS / "plateau")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (falls back to cpu, saying so)")
    parser.add_argument("--unlearning-steps", type=int, default=200, help="the longest unlearning run of the sweep")
    args = parser.parse_args()
    global DEVICE
    DEVICE = requested_device(args.device, "bench.plateau")
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

    def judge(after):
        return {"forgets": abs(after[FORGOTTEN] - reference[FORGOTTEN]) <= FORGET_WITHIN_DB,
                "retains": all(before[n] - after[n] <= RETAIN_DROP_DB for n in KEPT)}

    sweep = []
    for label, (name, params, with_retain) in METHODS.items():
        for learning_rate in SWEEP_RATES:
            problem = UnlearningProblem(copy.deepcopy(original), pairs("train", FORGOTTEN), retain if with_retain else None, DEVICE)
            torch.manual_seed(0)
            points, share = sweep_run(name, params, problem, args.unlearning_steps, learning_rate, psnrs, retrain_seconds, judge)
            meeting = [point for point in points if point["forgets"] and point["retains"]]
            sweep.append({"method": label, "learning_rate": learning_rate, "mask_share": share, "points": points,
                          "cheapest_meeting_both": meeting[0] if meeting else None})
            print(f"{label} lr {learning_rate:g}: {points[-1]}; cheapest meeting both: {sweep[-1]['cheapest_meeting_both']}", flush=True)
    rows = [{"method": run["method"], **run["points"][-1]} for run in sweep if run["learning_rate"] == DEMO_LEARNING_RATE]
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
        f"## Methods on the plateaued base ({args.unlearning_steps} steps, lr {DEMO_LEARNING_RATE:g})", "",
        "| method | haze | noise | rain | forgets (±0.5 dB of retrain) | retains (≤0.3 dB drop) | seconds | cost (× retrain) |",
        "|---|---|---|---|---|---|---|---|",
        f"| original | {before['haze']:.2f} | {before['noise']:.2f} | {before['rain']:.2f} | | | {original_seconds:.0f} | |",
        f"| retrained | {reference['haze']:.2f} | {reference['noise']:.2f} | {reference['rain']:.2f} | | | {retrain_seconds:.0f} | 1 |",
    ]
    for row in rows:
        lines.append(f"| {row['method']} | {row['haze']:.2f} | {row['noise']:.2f} | {row['rain']:.2f} | "
                     f"{'yes' if row['forgets'] else 'no'} | {'yes' if row['retains'] else 'no'} | {row['seconds']:.1f} | {row['cost']:.3f} |")
    lines += [
        "", f"## Sweep: the cheapest checkpoint that meets both checks (steps {checkpoints(args.unlearning_steps)}, "
        f"learning rates {', '.join(f'{r:g}' for r in SWEEP_RATES)})", "",
        "| method | lr | mask share | cheapest step meeting both | haze | noise | rain | seconds | cost (× retrain) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in sweep:
        best, share = run["cheapest_meeting_both"], "" if run["mask_share"] is None else f"{run['mask_share']:.3f}"
        if best is None:
            last = run["points"][-1]
            why = "forgets" if not last["forgets"] else "retains"
            lines.append(f"| {run['method']} | {run['learning_rate']:g} | {share} | none (at {last['step']}: fails {why}) | "
                         f"{last['haze']:.2f} | {last['noise']:.2f} | {last['rain']:.2f} | {last['seconds']:.1f} | {last['cost']:.3f} |")
        else:
            lines.append(f"| {run['method']} | {run['learning_rate']:g} | {share} | {best['step']} | {best['haze']:.2f} | "
                         f"{best['noise']:.2f} | {best['rain']:.2f} | {best['seconds']:.1f} | **{best['cost']:.3f}** |")
    winners = [(run["cheapest_meeting_both"]["cost"], run) for run in sweep if run["cheapest_meeting_both"]]
    if winners:
        cost, run = min(winners, key=lambda pair: pair[0])
        lines += ["", f"**Best: {run['method']} at lr {run['learning_rate']:g}, {run['cheapest_meeting_both']['step']} steps: "
                  f"{cost:.3f}x the retrain** (target <= 0.05x)."]
    else:
        lines += ["", "**No method meets both checks at any checkpoint of the sweep.**"]
    table = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(table)
    args.out.with_suffix(".json").write_text(json.dumps({
        "machine": machine, "steps": args.steps, "original_seconds": original_seconds, "retrain_seconds": retrain_seconds,
        "original_curve": original_curve, "retrain_curve": retrain_curve, "methods": rows, "sweep": sweep}, indent=1) + "\n")
    print(table)


if __name__ == "__main__":
    main()
