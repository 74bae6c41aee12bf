"""Benchmark Adapt-then-Unlearn and its baselines on the digits GAN against a GAN retrained without the class.

    python -m bench.generation            # deployed-size GAN (4 000 training steps), 3 seeds, digits 6 and 7
    python -m bench.generation --quick    # the tests' tiny GAN world, 3 seeds (a few minutes)

Per seed: a judge and a feature network trained on the training digits (different architectures and
seeds); a base GAN on all training digits; then for each forgotten class: a GAN retrained without it (the
reference, and the cost every method is compared with, timed in the same run under the same load),
negatives/positives judged from the base GAN's samples, and each method on a copy of the base GAN.
Scored on a fixed latent bank:
- share: the judge's share of the forgotten class; unlearning rate: of the bank's latents whose base
  sample shows the class, the share whose new sample does not (the paper's metric).
- FID / KID against real test digits of the kept classes (feature network, never the judge); min kept:
  the smallest kept class's share relative to its share in the base GAN; Ret-FID: FID between the
  method's samples and the retrained GAN's.
Writes bench/results/generation[-quick].{json,md,png} (the png: the same latents through each model).
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
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from unlearning.data.digits import DigitsDataConfig, build_digits_sets, load_set
from unlearning.gan_training import GanTrainConfig, digits_images, train_digits_classifier_cnn, train_gan
from unlearning.generation_metrics import (class_shares, features, frechet_distance, generate_images,
                                           judged_sample_sets, kernel_inception_distance, latent_bank,
                                           predicted_classes)
from unlearning.methods import UnlearningProblem, create_method
from unlearning.models import build_model
from unlearning.tasks import GENERATION
from unlearning.train import TrainConfig

CPU = torch.device("cpu")
RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Scale:
    gan: dict
    gan_training: GanTrainConfig
    judge: dict
    feature_net: dict
    classifier_training: TrainConfig
    samples: int  # generated samples judged into negatives / positives
    bank: int  # latents every score uses
    methods: dict[str, tuple[str, dict]]


FULL = Scale(
    gan={}, gan_training=GanTrainConfig(), judge={}, feature_net={},
    classifier_training=TrainConfig(steps=1500, batch_size=64, learning_rate=2e-3),
    samples=5000, bank=5000,
    methods={
        "adapt_then_unlearn(l2)": ("adapt_then_unlearn", {}),
        # The paper's fixed-iteration recipe (the defaults before the early stop): 2 copies x 300 + 300.
        "adapt_then_unlearn(l2, 2x300+300)": ("adapt_then_unlearn", {"adapt_copies": 2, "adapt_steps": 300,
                                                                   "unlearn_steps": 300, "stop_share": None}),
        "adapt_then_unlearn(exp)": ("adapt_then_unlearn", {"repulsion": "exp"}),
        "adapt_then_unlearn(reci)": ("adapt_then_unlearn", {"repulsion": "reci"}),
        "gan_finetune": ("gan_finetune", {}),
        "gan_ewc_finetune": ("gan_ewc_finetune", {}),
        "gan_extrapolation": ("gan_extrapolation", {}),
    },
)
QUICK_ADAPT = {"adapt_copies": 2, "adapt_steps": 150, "unlearn_steps": 200, "stop_share": None}
QUICK = Scale(
    gan={"latent_dim": 16, "w_dim": 16, "mapping_layers": 2, "channels": 16, "discriminator_channels": 16},
    gan_training=GanTrainConfig(steps=1500, batch_size=32, learning_rate=3e-3, ema_beta=0.99),
    judge={"channels": 8}, feature_net={"channels": 12, "feature_dim": 32},
    classifier_training=TrainConfig(steps=600, batch_size=64, learning_rate=3e-3),
    samples=1000, bank=1000,
    methods={
        "adapt_then_unlearn(l2)": ("adapt_then_unlearn", {"unlearn_steps": 200}),
        "adapt_then_unlearn(l2, 2x150+200)": ("adapt_then_unlearn", QUICK_ADAPT),
        "adapt_then_unlearn(exp)": ("adapt_then_unlearn", {"unlearn_steps": 200, "repulsion": "exp"}),
        "adapt_then_unlearn(reci)": ("adapt_then_unlearn", {"unlearn_steps": 200, "repulsion": "reci"}),
        "gan_finetune": ("gan_finetune", {"steps": 200}),
        "gan_ewc_finetune": ("gan_ewc_finetune", {"steps": 200}),
        "gan_extrapolation": ("gan_extrapolation", {"adapt_steps": 150}),
    },
)
COLUMNS = ["share", "unlearning_rate", "fid", "kid", "min_kept", "ret_fid", "seconds", "cost"]


def run_seed(scale: Scale, seed: int, forget_classes: list[int], method_labels: list[str], grid_latents: int = 12):
    """{class: rows}, {class: grid}, {class: context} for one seed: one judge, feature network and base GAN,
    then per class a retrained GAN and every method."""
    files = build_digits_sets(DigitsDataConfig(seed=seed))
    train, test = load_set(files, "train"), load_set(files, "test")
    labels = train.targets.long()
    torch.manual_seed(seed)
    judge = train_digits_classifier_cnn(build_model("digits-judge-cnn", scale.judge), train.inputs, labels,
                                        replace(scale.classifier_training, seed=seed), CPU)
    torch.manual_seed(seed + 1)
    feature_net = train_digits_classifier_cnn(build_model("digits-feature-net", scale.feature_net), train.inputs, labels,
                                              replace(scale.classifier_training, seed=seed + 1), CPU)
    judge_accuracy = (predicted_classes(judge, test.inputs, CPU) == test.targets.long()).float().mean().item()

    def fresh_gan_trained_on(images):
        torch.manual_seed(seed)
        started = time.perf_counter()
        model = train_gan(build_model("digits-gan", scale.gan), images, replace(scale.gan_training, seed=seed), CPU,
                          show_progress=False)
        return model, time.perf_counter() - started

    base, base_seconds = fresh_gan_trained_on(digits_images(train.inputs))
    latent_dim = base.config.latent_dim
    bank = latent_bank(latent_dim, scale.bank, seed=1000 + seed)
    base_images = generate_images(base, bank, CPU)
    base_classes = predicted_classes(judge, base_images, CPU)
    base_shares = class_shares(judge, base_images, CPU)
    all_rows, grids, contexts = {}, {}, {}
    for forget_class in forget_classes:
        load_before = os.getloadavg()[0]
        retrained, retrain_seconds = fresh_gan_trained_on(digits_images(train.inputs[labels != forget_class]))
        negatives, positives = judged_sample_sets(base, judge, forget_class,
                                                  latent_bank(latent_dim, scale.samples, seed=7 + seed), CPU)
        kept_test = test.inputs[test.targets.long() != forget_class]
        kept_real = features(feature_net, kept_test, CPU)
        retrained_features = features(feature_net, generate_images(retrained, bank, CPU), CPU)

        def score(model, seconds, steps):
            images = generate_images(model, bank, CPU)
            classes = predicted_classes(judge, images, CPU)
            shares = class_shares(judge, images, CPU)
            generated = features(feature_net, images, CPU)
            was_class = base_classes == forget_class
            kept = [k for k in range(10) if k != forget_class]
            return {
                "share": shares[forget_class].item(),
                "unlearning_rate": (classes[was_class] != forget_class).float().mean().item(),
                "fid": frechet_distance(generated, kept_real),
                "kid": kernel_inception_distance(generated, kept_real, subsets=50, subset_size=200)[0],
                "min_kept": min((shares[k] / base_shares[k]).item() for k in kept),
                "ret_fid": frechet_distance(generated, retrained_features),
                "seconds": seconds, "cost": seconds / retrain_seconds, "steps": steps,
            }

        rows = {"original": score(base, base_seconds, scale.gan_training.steps),
                "retrain": score(retrained, retrain_seconds, scale.gan_training.steps)}
        # The grid shows latents whose base sample is the class (two thirds) next to ones whose sample is not.
        showing = torch.nonzero(base_classes == forget_class).flatten()[: 2 * grid_latents // 3]
        others = torch.nonzero(base_classes != forget_class).flatten()[: grid_latents - len(showing)]
        grid_bank = bank[torch.cat([showing, others])]
        grid = {"original": generate_images(base, grid_bank, CPU), "retrain": generate_images(retrained, grid_bank, CPU)}
        for label in method_labels:
            name, params = scale.methods[label]
            model = copy.deepcopy(base)
            problem = UnlearningProblem(model, negatives, positives, CPU, task=GENERATION)
            run = create_method(name, {**params, "seed": seed}, task_kind="generation").run(problem, show_progress=False)
            rows[label] = score(model, run.seconds, run.steps)
            grid[label] = generate_images(model, grid_bank, CPU)
            print(f"  seed {seed} class {forget_class} {label}: "
                  + ", ".join(f"{k} {rows[label][k]:.4g}" for k in [*COLUMNS, "steps"]), flush=True)
        all_rows[forget_class], grids[forget_class] = rows, grid
        contexts[forget_class] = {"judge_accuracy": judge_accuracy, "negatives": len(negatives),
                                  "positives": len(positives), "load_1min": [load_before, os.getloadavg()[0]]}
    return all_rows, grids, contexts


def save_grid(grid: dict[str, torch.Tensor], path: Path, scale_up: int = 6) -> None:
    """One row per model (labels in the markdown), the same latents in every column."""
    rows = [torch.cat(list(images[:, 0]), dim=1) for images in grid.values()]
    picture = torch.cat([torch.nn.functional.pad(row, (0, 0, 1, 1), value=0.5) for row in rows]).numpy()
    image = Image.fromarray((picture * 255).clip(0, 255).astype(np.uint8))
    image.resize((image.width * scale_up, image.height * scale_up), Image.NEAREST).save(path)


def summarise(per_seed: list[dict], label: str, column: str) -> str:
    values = [rows[label][column] for rows in per_seed]
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"


def steps_range(per_seed: list[dict], label: str) -> str:
    steps = sorted({rows[label]["steps"] for rows in per_seed})
    return str(steps[0]) if len(steps) == 1 else f"{steps[0]}–{steps[-1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the tests' tiny GAN world")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--classes", default="6,7", help="comma-separated digits to forget, one table block each")
    parser.add_argument("--methods", default="", help="comma-separated method labels to run (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    command = " ".join(["python -m bench.generation", *sys.argv[1:]])
    started, load_started = time.perf_counter(), os.getloadavg()
    scale = QUICK if args.quick else FULL
    forget_classes = [int(value) for value in args.classes.split(",")]
    labels = [label for label in scale.methods if not args.methods or label in args.methods.split(";")]
    per_seed, contexts, first_grids = [], [], None
    for seed in range(args.seeds):
        print(f"seed {seed}", flush=True)
        rows, grids, context = run_seed(scale, seed, forget_classes, labels)
        per_seed.append(rows)
        contexts.append(context)
        first_grids = first_grids or grids
    wall_minutes = (time.perf_counter() - started) / 60
    name = "generation-quick" if args.quick else "generation"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(
        {"command": command, "wall_minutes": wall_minutes, "classes": forget_classes,
         "seeds": [{str(c): rows[c] for c in forget_classes} for rows in per_seed],
         "contexts": [{str(c): context[c] for c in forget_classes} for context in contexts]}, indent=1))
    grid_names = {}
    for index, forget_class in enumerate(forget_classes):
        grid_names[forget_class] = f"{name}.png" if index == 0 else f"{name}-class{forget_class}.png"
        save_grid(first_grids[forget_class], args.out / grid_names[forget_class])
    loads = [load for context in contexts for c in forget_classes for load in context[c]["load_1min"]]
    lines = [
        f"Made by `{command}` ({wall_minutes:.0f} min wall). Machine: {platform.machine()}, {os.cpu_count()} cores "
        f"shared with other jobs (1-minute load average {min(loads):.1f}–{max(loads):.1f} while the retrained GANs "
        f"trained; {load_started[0]:.1f} at the start), 1 torch thread, torch {torch.__version__}, CPU. "
        f"Mode: {'quick (tiny GAN world)' if args.quick else 'full (deployed-size GAN)'}. "
        f"Forgotten classes {', '.join(map(str, forget_classes))}. Mean ± std over {args.seeds} seeds.",
        "",
        "share: judge's share of the class on the latent bank; unlearning rate: share of the base GAN's class samples "
        "that are no longer the class through the same latents; FID/KID vs real kept-class test digits (feature network); "
        "min kept: smallest kept-class share relative to the base GAN's; Ret-FID: vs the retrained GAN's samples; "
        "cost: seconds / seconds of the GAN retrained without the class, timed in the same run; steps: the method's "
        "steps (adaptation + unlearning; a range where the early stop ended runs at different steps).",
        "",
    ]
    for forget_class in forget_classes:
        per_class = [rows[forget_class] for rows in per_seed]
        context = [c[forget_class] for c in contexts]
        lines += [
            f"Forget class {forget_class}: judge test accuracy {statistics.mean(c['judge_accuracy'] for c in context):.3f}; "
            f"negatives {[c['negatives'] for c in context]}, positives {[c['positives'] for c in context]}.",
            "",
            "| class | method | " + " | ".join(COLUMNS) + " | steps |",
            "|---|---|" + "---|" * (len(COLUMNS) + 1),
        ]
        for label in per_class[0]:
            lines.append(f"| {forget_class} | {label} | " + " | ".join(summarise(per_class, label, c) for c in COLUMNS)
                         + f" | {steps_range(per_class, label)} |")
        lines.append("")
    row_names = ", ".join(first_grids[forget_classes[0]])
    lines.append(f"{', '.join(f'`{grid_names[c]}` (class {c})' for c in forget_classes)}: rows top to bottom = "
                 f"{row_names} (seed 0, the same 12 latents in every row: the first 8 are latents whose original "
                 "sample the judge calls the class).")
    (args.out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
