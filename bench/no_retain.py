"""Forgetting a degradation with NO retain data, against the model retrained without it (3 seeds).

    python -m bench.no_retain                      # demo restorer, 6000-step bases, 3 seeds (~40 min on 1 core)
    python -m bench.no_retain --seeds 1 --steps 800 --unlearning-steps 40   # a smoke run
    python -m bench.no_retain --reuse-bases /tmp/bases   # development: keep the trained bases between runs

Per seed: the base restorer trains on noise+rain+haze and the reference retrains on noise+rain (demo data and
architecture, `--steps` balanced steps, the schedule of bench/plateau.py, torch seed = the seed). Each method
then runs on a copy of the base with only the haze training set (no retain set at all), scored on the held-out
sets at checkpoints of one run (bench.plateau.sweep_run: the model at step k of a longer run is the model a
k-step run makes). "forgets" = held-out haze PSNR within 0.5 dB of the retrained model's; "retains" = noise
and rain PSNR at most 0.3 dB below the original's. cost = unlearning seconds to that checkpoint / the retrain's
seconds in the same run (scoring excluded from both). With `--reuse-bases` the bases and their training
seconds come from an earlier run, and the table says so. Writes bench/results/no_retain.{md,json}.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from bench import plateau, requested_device
from bench.serving import restorer_config
from unlearning.data.pairs import PairSet, concat, decode_arrays
from unlearning.data.restoration import RestorationDataConfig, build_restoration_sets, set_path
from unlearning.methods import UnlearningProblem
from unlearning.metrics import score_restoration
from unlearning.models import build_model
from unlearning.train import TrainConfig, train_restorer

RESULTS = Path(__file__).parent / "results"
KEPT, FORGOTTEN = plateau.KEPT, plateau.FORGOTTEN
FORGET_WITHIN_DB, RETAIN_DROP_DB, COST_TARGET = plateau.FORGET_WITHIN_DB, plateau.RETAIN_DROP_DB, 0.1
# label: (method, params besides steps, with the retain set); every other row uses no retain data
METHODS = {
    "synthetic_teacher": ("synthetic_teacher", {"learning_rate": 3e-4}, False),
    "synthetic_teacher (bounded ascent, the earlier forget objective)": (
        "synthetic_teacher", {"learning_rate": 3e-4, "forget_objective": "bounded_ascent"}, False),
    "adversarial_ga(forget,pgd), no retain data": ("adversarial_ga", {"learning_rate": 1e-4}, False),
    "gradient_ascent (bounded), no retain data": ("gradient_ascent", {"learning_rate": 1e-4, "retain_weight": 0.0}, False),
    "control: gradient_ascent (unbounded), no retain data": (
        "gradient_ascent", {"learning_rate": 1e-4, "bound": "none", "retain_weight": 0.0}, False),
    "reference: gradient_ascent with the retain set (demo request)": ("gradient_ascent", {"learning_rate": 1e-4}, True),
}


def train_bases(pairs, steps: int, seed: int, device: torch.device) -> dict:
    """The base (all three degradations) and the retrained reference (without haze), with training seconds."""
    training = TrainConfig(steps=steps, batch_size=18, learning_rate=2e-3, balance_sets=True, seed=seed)
    bases = {}
    for role, names in (("original", [*KEPT, FORGOTTEN]), ("retrained", list(KEPT))):
        torch.manual_seed(seed)
        model = build_model("restorer-unet", restorer_config())
        started = time.perf_counter()
        train_restorer(model, [pairs("train", name) for name in names], training, device, show_progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        bases[role] = {"state": model.state_dict(), "seconds": time.perf_counter() - started}
    return bases


def bases_for(seed: int, args, pairs) -> tuple[dict, bool]:
    cached = args.reuse_bases / f"bases-seed{seed}-steps{args.steps}.pt" if args.reuse_bases else None
    if cached is not None and cached.exists():
        return torch.load(cached, weights_only=True), True
    bases = train_bases(pairs, args.steps, seed, plateau.DEVICE)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.save(bases, cached)
    return bases, False


def seed_runs(seed: int, args, pairs, psnrs) -> dict:
    bases, reused = bases_for(seed, args, pairs)
    models = {}
    for role in ("original", "retrained"):
        models[role] = build_model("restorer-unet", restorer_config())
        models[role].load_state_dict(bases[role]["state"])
        models[role].to(plateau.DEVICE).eval()
    before, reference = psnrs(models["original"]), psnrs(models["retrained"])
    retrain_seconds = bases["retrained"]["seconds"]
    print(f"seed {seed}: original {before} retrained {reference} (retrain {retrain_seconds:.0f} s{', reused' if reused else ''})", flush=True)

    def judge(after):
        return {"forgets": abs(after[FORGOTTEN] - reference[FORGOTTEN]) <= FORGET_WITHIN_DB,
                "retains": all(before[name] - after[name] <= RETAIN_DROP_DB for name in KEPT)}

    retain = concat([pairs("train", name) for name in KEPT], "retain")
    runs = {}
    for label, (name, params, with_retain) in METHODS.items():
        if args.methods and label not in args.methods and name not in args.methods:
            continue
        params = dict(params)
        learning_rate = params.pop("learning_rate")
        problem = UnlearningProblem(copy.deepcopy(models["original"]), pairs("train", FORGOTTEN),
                                    retain if with_retain else None, plateau.DEVICE)
        torch.manual_seed(seed)
        points, _ = plateau.sweep_run(name, params, problem, args.unlearning_steps, learning_rate, psnrs, retrain_seconds, judge, seed=seed)
        meeting = [point for point in points if point["forgets"] and point["retains"]]
        runs[label] = {"points": points, "cheapest_meeting_both": meeting[0] if meeting else None}
        print(f"  {label}: last {points[-1]}; cheapest meeting both: {runs[label]['cheapest_meeting_both']}", flush=True)
    return {"seed": seed, "bases_reused": reused, "original": before, "retrained": reference,
            "original_seconds": bases["original"]["seconds"], "retrain_seconds": retrain_seconds, "methods": runs}


def mean_std(values: list[float], digits: int = 2) -> str:
    if not values:
        return "–"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {spread:.{digits}f}"


def table(results: list[dict], args, machine: str, load: float | None = None) -> str:
    seeds = [result["seed"] for result in results]
    reused = any(result["bases_reused"] for result in results)
    lines = [
        "# Forgetting haze with no retain data (demo restorer)", "",
        f"Command: `{' '.join(['python -m bench.no_retain', *args.argv])}`. "
        f"Machine: {machine}, load average {'not recorded' if load is None else f'{load:.1f}'} at the end. Seeds {seeds}; bases trained "
        f"{args.steps} balanced steps (bench/plateau.py's schedule)"
        + (", **reused from an earlier run** (their training seconds too)" if reused else ", in this run") + ".", "",
        (f"Checks: forgets = held-out haze PSNR within {FORGET_WITHIN_DB} dB of the retrained model's; retains = noise "
         f"and rain at most {RETAIN_DROP_DB} dB below the original's; target cost ≤ {COST_TARGET}× the retrain. Mean ± std "
         "over seeds."), "",
        "| model | haze | noise | rain | training seconds |", "|---|---|---|---|---|",
    ]
    for role, seconds in (("original", "original_seconds"), ("retrained", "retrain_seconds")):
        lines.append(f"| {role} | " + " | ".join(mean_std([r[role][name] for r in results]) for name in (FORGOTTEN, *KEPT))
                     + f" | {mean_std([r[seconds] for r in results], 0)} |")
    lines += [
        "", f"## At the end of each run ({args.unlearning_steps} steps)", "",
        "| method | haze | noise drop | rain drop | haze − retrained | forgets (seeds) | retains (seeds) | cost (× retrain) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    labels = [label for label in METHODS if all(label in r["methods"] for r in results)]
    for label in labels:
        last = [r["methods"][label]["points"][-1] for r in results]
        lines.append(
            f"| {label} | {mean_std([p[FORGOTTEN] for p in last])} | "
            + " | ".join(mean_std([r['original'][name] - p[name] for r, p in zip(results, last)]) for name in KEPT)
            + f" | {mean_std([p[FORGOTTEN] - r['retrained'][FORGOTTEN] for r, p in zip(results, last)])} | "
            f"{sum(p['forgets'] for p in last)}/{len(last)} | {sum(p['retains'] for p in last)}/{len(last)} | "
            f"{mean_std([p['cost'] for p in last], 3)} |")
    fixed = args.request_steps
    lines += [
        "", f"## At {fixed} steps (requests/examples/forget-haze-no-retain.yaml's step count, chosen from earlier runs "
        "on these seeds: not a held-out check)", "",
        "| method | haze | noise drop | rain drop | forgets (seeds) | retains (seeds) | cost (× retrain) | both, ≤ target on every seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label in labels:
        at = [next((p for p in r["methods"][label]["points"] if p["step"] == fixed), None) for r in results]
        if any(p is None for p in at):
            continue
        every = all(p["forgets"] and p["retains"] and p["cost"] <= COST_TARGET for p in at)
        lines.append(
            f"| {label} | {mean_std([p[FORGOTTEN] for p in at])} | "
            + " | ".join(mean_std([r['original'][name] - p[name] for r, p in zip(results, at)]) for name in KEPT)
            + f" | {sum(p['forgets'] for p in at)}/{len(at)} | {sum(p['retains'] for p in at)}/{len(at)} | "
            f"{mean_std([p['cost'] for p in at], 3)} | {'yes' if every else 'no'} |")
    lines += [
        "", f"## The cheapest checkpoint meeting both checks (steps {plateau.checkpoints(args.unlearning_steps)})", "",
        "| method | seeds meeting both | steps | haze | noise drop | rain drop | cost (× retrain) | ≤ target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label in labels:
        best = [(r, r["methods"][label]["cheapest_meeting_both"]) for r in results]
        met = [(r, p) for r, p in best if p is not None]
        if not met:
            lines.append(f"| {label} | 0/{len(results)} | – | – | – | – | – | no |")
            continue
        costs = [p["cost"] for _, p in met]
        lines.append(
            f"| {label} | {len(met)}/{len(results)} | {', '.join(str(p['step']) for _, p in met)} | "
            f"{mean_std([p[FORGOTTEN] for _, p in met])} | "
            + " | ".join(mean_std([r['original'][name] - p[name] for r, p in met]) for name in KEPT)
            + f" | {mean_std(costs, 3)} | {'yes' if len(met) == len(results) and max(costs) <= COST_TARGET else 'no'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6000, help="training steps of the base and the retrained reference")
    parser.add_argument("--unlearning-steps", type=int, default=200)
    parser.add_argument("--methods", type=lambda text: [m for m in text.split(",") if m], default=[],
                        help="comma-separated method names or labels (default: all)")
    parser.add_argument("--reuse-bases", type=Path, default=None, help="a folder to keep trained bases in between runs")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (falls back to cpu, saying so)")
    parser.add_argument("--out", type=Path, default=RESULTS / "no_retain")
    parser.add_argument("--request-steps", type=int, default=125, help="the step count the fixed-steps table reports")
    parser.add_argument("--render", type=Path, default=None, help="only re-render the md from this run's JSON")
    args = parser.parse_args()
    args.argv = sys.argv[1:]
    if args.render is not None:
        run = json.loads(args.render.read_text())
        args.argv, recorded = run["argv"], args
        recorded.steps = run.get("steps", recorded.steps)
        text = table(run["seeds"], recorded, run["machine"], run.get("load"))
        text += f"\nRendered again from {args.render.name} (`--render`): the same run's numbers.\n"
        args.out.with_suffix(".md").write_text(text)
        print(text)
        return
    plateau.DEVICE = requested_device(args.device, "bench.no_retain")
    torch.set_num_threads(1)
    files = build_restoration_sets(RestorationDataConfig())

    def pairs(split, name):
        return PairSet.from_arrays(name, decode_arrays(files[set_path(split, name)], name)[0])

    def psnrs(model):
        return {name: score_restoration(model, pairs("eval", name), plateau.DEVICE).psnr for name in (*KEPT, FORGOTTEN)}

    results = [seed_runs(seed, args, pairs, psnrs) for seed in range(args.seeds)]
    machine = f"{platform.processor() or platform.machine()}, 1 torch thread of {os.cpu_count()} cores, torch {torch.__version__}"
    if plateau.DEVICE.type == "cuda":
        machine += f", GPU {torch.cuda.get_device_name(plateau.DEVICE)}"
    load = os.getloadavg()[0]
    text = table(results, args, machine, load)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps({"machine": machine, "argv": args.argv, "steps": args.steps, "load": load, "seeds": results},
                                                         indent=1, default=lambda value: None) + "\n")
    print(text)


if __name__ == "__main__":
    main()
