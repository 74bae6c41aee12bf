"""Benchmark every applicable method against the model retrained without the forget data.

    python -m bench.methods            # full: the demo restorer + digits, 3 seeds (~40 min, 1 busy core)
    python -m bench.methods --quick    # CI-size models, 3 seeds (a few minutes)
    python -m bench.methods --device cuda --scenarios restoration   # on a GPU (bench/gpu.sh)

Three scenarios, each on seeds 0..n-1, each method timed against the retrain measured in the same run:
- restoration: the all-in-one restorer as the demo trains it (params.yaml `model` architecture, prompts
  included, and its `train` recipe: balanced sets); forget haze; forget = haze PSNR (eval), retain =
  noise+rain PSNR on training patches, test = noise+rain PSNR (eval); gap = mean |dB - retrained dB|.
- digits-class: forget digit 8 (70/30 split); accuracies on forget / retain / kept-class test and
  SalUn's SVC MIA-efficacy; gap over the four.
- digits-samples: forget a random 10% of the training examples of the OVERFIT variant (20% train,
  long training), where membership inference is measurable (on the 70/30 split it is at chance);
  MIA = loss-threshold AUC forget vs held-out (and per-example LiRA AUC with shadow models in full
  mode). Methods get a held-out check split (test examples, disjoint from the MIA's) for stop rules.
  It runs `--samples-seeds` seeds (10): the main table shows the first `--seeds`, a second table
  compares each method with the retrained model's spread (|mean - retrain mean| <= 2 retrain-stderr)
  at both seed counts. A short retrain from scratch is the control a cheap method has to beat.
Writes bench/results/methods[-quick].{json,md,png}.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from bench import requested_device
from bench.serving import restorer_config
from unlearning.data.digits import CLASSES, DigitsDataConfig, build_digits_sets, load_set, split_forget
from unlearning.data.pairs import PairSet, concat, decode_arrays
from unlearning.data.restoration import RestorationDataConfig, build_restoration_sets, set_path
from unlearning.methods import UnlearningProblem, create_method
from unlearning.metrics import accuracy, score_restoration
from unlearning.mia import ShadowAttack, loss_threshold_auc, svc_mia_efficacy
from unlearning.models import build_model
from unlearning.tasks import Classification
from unlearning.train import TrainConfig, train_model, train_restorer
from unlearning.verify import average_gap

DEVICE = torch.device("cpu")  # main() sets it from --device
RESULTS = Path(__file__).parent / "results"
DIGITS = Classification(CLASSES)


@dataclass(frozen=True)
class Scale:
    restoration_data: RestorationDataConfig
    restorer: dict
    restorer_training: TrainConfig
    restoration_methods: dict[str, tuple[str, dict]]
    classifier: dict
    classifier_training: TrainConfig
    overfit_training: TrainConfig
    classification_methods: dict[str, tuple[str, dict]]
    sample_methods: dict[str, tuple[str, dict]]
    short_retrain_steps: int
    shadows: int


def restoration_methods(steps: int, lr: float) -> dict[str, tuple[str, dict]]:
    common = dict(steps=steps, learning_rate=lr)
    return {
        "finetune": ("finetune", common),
        "gradient_ascent": ("gradient_ascent", common),
        "neggrad_plus": ("neggrad_plus", {**common, "steps": steps // 2}),
        "salun": ("salun", common),
        "scrub": ("scrub", {**common, "max_steps": steps // 2}),
        "ssd": ("ssd", {}),
        "adversarial_ga(forget,pgd)": ("adversarial_ga", common),
        "adversarial_ga(retain,fgsm,reuse5)": (
            "adversarial_ga", {**common, "around": "retain", "epsilon": 0.03, "attack": "fgsm", "refresh_every": 5}),
    }


def classification_methods(steps: int) -> dict[str, tuple[str, dict]]:
    common = dict(steps=steps, learning_rate=1e-3, batch_size=32)
    return {
        "finetune": ("finetune", common),
        "gradient_ascent": ("gradient_ascent", common),
        "neggrad_plus": ("neggrad_plus", {**common, "learning_rate": 3e-4, "forget_weight": 0.2}),
        "random_labels": ("random_labels", common),
        "salun": ("salun", common),
        "scrub": ("scrub", {**common, "max_steps": steps // 2}),
        "ssd": ("ssd", {"selection_weighting": 50}),
        "adversarial_ga(forget,pgd)": ("adversarial_ga", common),
        "adversarial_ga(retain,fgsm,reuse5)": (
            "adversarial_ga", {**common, "around": "retain", "epsilon": 0.03, "attack": "fgsm", "refresh_every": 5}),
    }


def sample_methods(steps: int) -> dict[str, tuple[str, dict]]:
    """Methods only for sample forgetting: their stop rule reads the held-out check split."""
    return {"reset_and_repair(stop on check)": (
        "reset_and_repair", {"steps": steps, "learning_rate": 1e-3, "batch_size": 32, "stop_check_every": 10})}


FULL = Scale(
    restoration_data=RestorationDataConfig(patch_size=32, train_patches_per_degradation=500, eval_patches_per_degradation=64),
    restorer=restorer_config(),  # the demo's all-in-one restorer, prompts included
    restorer_training=TrainConfig(steps=2000, batch_size=18, learning_rate=2e-3, balance_sets=True),  # params.yaml train
    restoration_methods=restoration_methods(200, 1e-4),
    classifier={"hidden": 256, "depth": 2},
    classifier_training=TrainConfig(steps=1500, batch_size=32, learning_rate=1e-3),
    overfit_training=TrainConfig(steps=2000, batch_size=32, learning_rate=1e-3),
    classification_methods=classification_methods(60),
    sample_methods=sample_methods(400),
    short_retrain_steps=200,
    shadows=4,
)
QUICK = Scale(
    restoration_data=RestorationDataConfig(patch_size=16, train_patches_per_degradation=128, eval_patches_per_degradation=32),
    restorer={"width": 8, "levels": 2, "prompts": restorer_config()["prompts"]},
    restorer_training=TrainConfig(steps=400, batch_size=18, learning_rate=3e-3, balance_sets=True),
    restoration_methods=restoration_methods(60, 3e-4),
    classifier={"hidden": 128, "depth": 2},
    classifier_training=TrainConfig(steps=400, batch_size=32, learning_rate=2e-3),
    overfit_training=TrainConfig(steps=1500, batch_size=32, learning_rate=2e-3),
    classification_methods=classification_methods(60),
    sample_methods=sample_methods(400),
    short_retrain_steps=150,
    shadows=0,
)


@dataclass
class Row:
    scenario: str
    method: str
    seed: int
    metrics: dict[str, float]
    seconds: float
    steps: int
    gap: float | None = None
    cost: float | None = None  # seconds / retrain seconds, same run
    extra: dict = field(default_factory=dict)


def timed(function: Callable):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def run_methods(scenario, seed, original, problem_for, methods, measure, retrain_seconds) -> list[Row]:
    rows = []
    for label, (name, params) in methods.items():
        model = copy.deepcopy(original)
        torch.manual_seed(seed)
        problem = problem_for(model)
        outcome = create_method(name, {**params, "seed": seed}).run(problem, show_progress=False)
        rows.append(Row(scenario, label, seed, measure(model), outcome.seconds, outcome.steps))
    return rows


def restoration_seed(scale: Scale, seed: int) -> list[Row]:
    files = build_restoration_sets(RestorationDataConfig(**{**scale.restoration_data.__dict__, "seed": seed}))

    def pairs(split, name):
        return PairSet.from_arrays(name, decode_arrays(files[set_path(split, name)], name)[0])

    kept = ("noise", "rain")
    retain = concat([pairs("train", n) for n in kept], "retain")
    training = TrainConfig(**{**scale.restorer_training.__dict__, "seed": seed})

    def train(sets):
        torch.manual_seed(seed)
        return train_restorer(build_model("restorer-unet", scale.restorer), sets, training, DEVICE, False)

    original, original_seconds = timed(lambda: train([*[pairs("train", n) for n in kept], pairs("train", "haze")]))
    retrained, retrain_seconds = timed(lambda: train([pairs("train", n) for n in kept]))
    retain_probe = retain.subset(torch.arange(0, len(retain), max(1, len(retain) // 128)))

    def measure(model):
        haze = score_restoration(model, pairs("eval", "haze"), DEVICE)
        return {
            "forget": haze.psnr,
            "retain": score_restoration(model, retain_probe, DEVICE).psnr,
            "test": statistics.mean(score_restoration(model, pairs("eval", n), DEVICE).psnr for n in kept),
            "forget_input": haze.input_psnr,
        }

    def problem_for(model):
        return UnlearningProblem(model, pairs("train", "haze"), retain, DEVICE)

    rows = [Row("restoration", "original", seed, measure(original), original_seconds, training.steps),
            Row("restoration", "retrain", seed, measure(retrained), retrain_seconds, training.steps)]
    rows += run_methods("restoration", seed, original, problem_for, scale.restoration_methods, measure, retrain_seconds)
    reference = rows[1].metrics
    for row in rows:
        row.gap = average_gap({k: row.metrics[k] for k in ("forget", "retain", "test")}, reference)
        row.cost = row.seconds / retrain_seconds
    return rows


def classifier_trainer(scale: Scale, training: TrainConfig):
    def train(train_set: PairSet, seed: int):
        torch.manual_seed(seed)
        config = TrainConfig(**{**training.__dict__, "seed": seed})
        return train_model(build_model("digits-mlp", scale.classifier), train_set, DIGITS, config, DEVICE, False)

    return train


def digits_class_seed(scale: Scale, seed: int, forget_class: int = 8) -> list[Row]:
    files = build_digits_sets(DigitsDataConfig(train_fraction=0.7, seed=seed))
    train_set, test = load_set(files, "train"), load_set(files, "test")
    forget, retain = split_forget(train_set, forget_class=forget_class)
    _, kept_test = split_forget(test, forget_class=forget_class)
    train = classifier_trainer(scale, scale.classifier_training)
    original, original_seconds = timed(lambda: train(train_set, seed))
    retrained, retrain_seconds = timed(lambda: train(retain, seed))

    def measure(model):
        return {
            "forget": accuracy(model, forget, DEVICE),
            "retain": accuracy(model, retain, DEVICE),
            "test": accuracy(model, kept_test, DEVICE),
            "mia": svc_mia_efficacy(model, retain, kept_test, forget, DEVICE, seed),
        }

    rows = [Row("digits-class", "original", seed, measure(original), original_seconds, scale.classifier_training.steps),
            Row("digits-class", "retrain", seed, measure(retrained), retrain_seconds, scale.classifier_training.steps)]
    rows += run_methods("digits-class", seed, original,
                        lambda m: UnlearningProblem(m, forget, retain, DEVICE, task=DIGITS),
                        scale.classification_methods, measure, retrain_seconds)
    for row in rows:
        row.gap = average_gap(row.metrics, rows[1].metrics)
        row.cost = row.seconds / retrain_seconds
    return rows


def digits_samples_seed(scale: Scale, seed: int, forget_fraction: float = 0.1) -> list[Row]:
    files = build_digits_sets(DigitsDataConfig(train_fraction=0.2, seed=seed))
    train_set, test = load_set(files, "train"), load_set(files, "test")
    rng = np.random.default_rng(seed)
    forget_ids = rng.choice(train_set.ids.numpy(), int(forget_fraction * len(train_set)), replace=False).tolist()
    forget, retain = split_forget(train_set, forget_ids=forget_ids)
    # Held-out non-members as many as the forget set, for a balanced membership AUC; the next 200 test
    # examples are the methods' check split (unseen data like the forget set), never scored by the MIA.
    order = rng.permutation(len(test))
    held_out = test.subset(torch.from_numpy(order[: len(forget)]))
    check = test.subset(torch.from_numpy(order[len(forget) : len(forget) + 200]))
    train = classifier_trainer(scale, scale.overfit_training)
    original, original_seconds = timed(lambda: train(train_set, seed))
    retrained, retrain_seconds = timed(lambda: train(retain, seed))
    short = replace(scale.overfit_training, steps=scale.short_retrain_steps)
    short_retrained, short_seconds = timed(lambda: classifier_trainer(scale, short)(retain, seed))
    attack = None
    if scale.shadows:
        candidates = concat([forget, held_out], "candidates")
        attack = ShadowAttack.fit(candidates, retain, train, scale.shadows, DEVICE, seed)
        is_forget = np.r_[np.ones(len(forget), bool), np.zeros(len(held_out), bool)]

    def measure(model):
        metrics = {
            "forget": accuracy(model, forget, DEVICE),
            "retain": accuracy(model, retain, DEVICE),
            "test": accuracy(model, test, DEVICE),
            "mia": loss_threshold_auc(model, forget, held_out, DIGITS, DEVICE),
        }
        if attack is not None:
            metrics["lira"] = attack.auc(model, is_forget, DEVICE)
        return metrics

    steps = scale.overfit_training.steps
    rows = [Row("digits-samples", "original", seed, measure(original), original_seconds, steps),
            Row("digits-samples", "retrain", seed, measure(retrained), retrain_seconds, steps),
            Row("digits-samples", f"control: retrain from scratch, {short.steps} steps", seed, measure(short_retrained),
                short_seconds, short.steps)]
    # Sample forgetting: a retrained model still classifies most forgotten samples right, so the ascent
    # methods run with the stop rule off and fewer steps would be fairer; kept identical here on purpose.
    rows += run_methods("digits-samples", seed, original,
                        lambda m: UnlearningProblem(m, forget, retain, DEVICE, task=DIGITS, check=check),
                        {**scale.classification_methods, **scale.sample_methods}, measure, retrain_seconds)
    for row in rows:
        row.gap = average_gap({k: row.metrics[k] for k in ("forget", "retain", "test", "mia")}, rows[1].metrics)
        row.cost = row.seconds / retrain_seconds
    return rows


def summarise(rows: list[Row]) -> list[dict]:
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.scenario, row.method), []).append(row)

    def spread(values):
        return (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)

    summary = []
    for (scenario, method), group in groups.items():
        keys = group[0].metrics.keys()
        summary.append({
            "scenario": scenario,
            "method": method,
            "seeds": len(group),
            **{key: spread([r.metrics[key] for r in group]) for key in keys},
            "gap": spread([r.gap for r in group]),
            "seconds": spread([r.seconds for r in group]),
            "cost": spread([r.cost for r in group]),
            "steps": statistics.mean(r.steps for r in group),
        })
    return summary


def within_retrain_spread(rows: list[Row], seeds: int) -> list[dict]:
    """Digits-samples, seeds 0..seeds-1: each method's forget accuracy and LiRA AUC against the retrained
    model's band, mean ± 2 × (std / sqrt(seeds)) over the same seeds."""
    rows = [r for r in rows if r.scenario == "digits-samples" and r.seed < seeds]
    keys = [k for k in ("forget", "lira") if all(k in r.metrics for r in rows)]
    if not rows or not keys:
        return []
    by_method: dict[str, list[Row]] = {}
    for row in rows:
        by_method.setdefault(row.method, []).append(row)
    reference = by_method["retrain"]
    count = len(reference)
    band = {}
    for key in keys:
        values = [r.metrics[key] for r in reference]
        band[key] = (statistics.mean(values), 2 * statistics.stdev(values) / count ** 0.5 if count > 1 else 0.0)
    entries = []
    for method, group in by_method.items():
        entry = {"method": method, "seeds": len(group), "test": statistics.mean(r.metrics["test"] for r in group),
                 "cost": statistics.mean(r.cost for r in group)}
        for key in keys:
            mean = statistics.mean(r.metrics[key] for r in group)
            entry[key] = mean
            entry[f"{key}_band"] = band[key]
            entry[f"{key}_within"] = abs(mean - band[key][0]) <= band[key][1]
        entry["within"] = all(entry[f"{key}_within"] for key in keys)
        entries.append(entry)
    return entries


def spread_markdown(tables: dict[int, list[dict]]) -> str:
    if not any(tables.values()):
        return ""
    lines = ["## Sample forgetting against the retrained model's spread (digits-samples)", "",
             ("A method is *within* when |method mean − retrain mean| ≤ 2 × retrain stderr (= retrain std / √seeds, "
              "over the same seeds), for forget accuracy and for the per-example LiRA AUC (shadow models, "
              "Carlini et al. 2022) alike (quick mode has no shadow models: forget accuracy only). With 3 seeds the "
              "retrain's spread rests on 3 numbers, so the same runs are also judged over more seeds."), ""]
    names = {"forget": ("forget accuracy", "forget acc"), "lira": ("LiRA AUC", "LiRA AUC")}
    yes = {True: "yes", False: "no"}
    for seeds, entries in tables.items():
        if not entries:
            continue
        keys = [k for k in names if k in entries[0]]
        bands = ", ".join(f"retrain {names[k][0]} {entries[0][k + '_band'][0]:.3f} ± {entries[0][k + '_band'][1]:.3f}"
                          for k in keys)
        lines += [f"{seeds} seeds: {bands} (mean ± 2 stderr).", ""]
        lines.append("| method | " + " | ".join(f"{names[k][1]} | within" for k in keys) + " | all within | test acc | cost (× retrain) |")
        lines.append("|---|" + "---|---|" * len(keys) + "---|---|---|")
        for e in entries:
            if e["method"] == "retrain":
                continue
            cells = " | ".join(f"{e[k]:.3f} | {yes[e[k + '_within']]}" for k in keys)
            lines.append(f"| {e['method']} | {cells} | **{yes[e['within']]}** | {e['test']:.3f} | {e['cost']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def markdown(summary: list[dict], machine: str, quick: bool, command: str) -> str:
    lines = [(f"Made by `{command}`. Machine: {machine}. Mode: {'quick (CI-size models)' if quick else 'full'}. "
              "Mean ± std over seeds."), ""]
    lines.append("Restoration: the demo's all-in-one restorer (params.yaml architecture with prompts, its balanced "
                 "training recipe); metrics are PSNR (dB) and cost is relative to retraining without haze. Digits "
                 "metrics are accuracies. MIA: digits-class = SVC MIA-efficacy (share of forget examples called "
                 "non-member), digits-samples = loss-threshold AUC forget vs held-out on the overfit variant "
                 "(0.5 = chance); LiRA AUC = per-example likelihood-ratio attack with shadow models, forget vs "
                 "held-out. gap = mean |metric − retrain metric|. cost = method seconds / retrain seconds (same run); "
                 "steps = steps run (a stop rule may end a run early).")
    lines.append("")
    lines.append("| scenario | method | forget | retain | test | MIA | LiRA AUC | gap to retrain | seconds | cost (× retrain) | steps |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")

    def cell(entry, key, digits=3):
        if key not in entry:
            return "–"
        mean, std = entry[key]
        return f"{mean:.{digits}f} ± {std:.{digits}f}"

    for entry in summary:
        digits = 2 if entry["scenario"] == "restoration" else 3
        lines.append(
            f"| {entry['scenario']} | {entry['method']} | {cell(entry, 'forget', digits)} | {cell(entry, 'retain', digits)} | "
            f"{cell(entry, 'test', digits)} | {cell(entry, 'mia')} | {cell(entry, 'lira')} | {cell(entry, 'gap', digits)} | "
            f"{cell(entry, 'seconds', 2)} | {cell(entry, 'cost', 3)} | {entry['steps']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot(summary: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(e["scenario"] for e in summary))
    figure, axes = plt.subplots(1, len(scenarios), figsize=(6 * len(scenarios), 4.5))
    for axis, scenario in zip(np.atleast_1d(axes), scenarios):
        for entry in (e for e in summary if e["scenario"] == scenario and e["method"] != "retrain"):
            (cost, cost_std), (gap, gap_std) = entry["cost"], entry["gap"]
            axis.errorbar(cost, gap, xerr=cost_std, yerr=gap_std, fmt="o", capsize=3)
            axis.annotate(entry["method"], (cost, gap), fontsize=7, xytext=(3, 3), textcoords="offset points")
        axis.set_xscale("log")
        axis.set_xlabel("cost (seconds / retrain seconds)")
        axis.set_ylabel("average gap to retrain (dB)" if scenario == "restoration" else "average gap to retrain")
        axis.set_title(scenario)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI-size models, no shadow models")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--samples-seeds", type=int, default=10,
                        help="digits-samples seeds, for the retrain-spread table (the main table shows the first --seeds)")
    parser.add_argument("--scenarios", default="restoration,digits-class,digits-samples")
    parser.add_argument("--methods", default="", help="comma-separated method labels to run (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (falls back to cpu, saying so)")
    args = parser.parse_args()
    global DEVICE
    DEVICE = requested_device(args.device, "bench.methods")
    torch.set_num_threads(1)  # small models: one thread is faster and steadier than two contending ones
    scale = QUICK if args.quick else FULL
    if args.methods:
        wanted = set(args.methods.split(","))
        scale = replace(scale, restoration_methods={k: v for k, v in scale.restoration_methods.items() if k in wanted},
                        classification_methods={k: v for k, v in scale.classification_methods.items() if k in wanted},
                        sample_methods={k: v for k, v in scale.sample_methods.items() if k in wanted})
    runners = {"restoration": restoration_seed, "digits-class": digits_class_seed, "digits-samples": digits_samples_seed}
    rows: list[Row] = []
    started = time.perf_counter()
    for scenario in args.scenarios.split(","):
        seeds = max(args.seeds, args.samples_seeds) if scenario == "digits-samples" else args.seeds
        for seed in range(seeds):
            rows += runners[scenario](scale, seed)
            print(f"[{time.perf_counter() - started:6.0f}s] {scenario} seed {seed} done", flush=True)
    summary = summarise([row for row in rows if row.seed < args.seeds])
    spread = {n: within_retrain_spread(rows, n) for n in sorted({args.seeds, max(args.seeds, args.samples_seeds)})}
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread, torch {torch.__version__}, "
    machine += f"GPU {torch.cuda.get_device_name(DEVICE)}" if DEVICE.type == "cuda" else "CPU"
    command = " ".join(["python -m bench.methods", *sys.argv[1:]])
    table = markdown(summary, machine, args.quick, command) + "\n" + spread_markdown(spread)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "methods-quick" if args.quick else "methods"
    if DEVICE.type != "cpu":
        stem += f"-{DEVICE.type}"
    if args.methods:  # a partial run never overwrites the full table
        stem += "-" + args.scenarios.replace(",", "+") + "-" + args.methods.replace(",", "+")
    (args.out / f"{stem}.md").write_text(table)
    (args.out / f"{stem}.json").write_text(json.dumps(
        {"command": command, "machine": machine, "quick": args.quick, "seconds_total": time.perf_counter() - started,
         "summary": summary, "within_retrain_spread": {str(n): e for n, e in spread.items()},
         "rows": [row.__dict__ for row in rows]}, indent=1))
    try:
        plot(summary, args.out / f"{stem}.png")
    except ImportError as error:  # the GPU machine has no matplotlib
        print(f"bench.methods: no plot ({error})")


if __name__ == "__main__":
    main()
