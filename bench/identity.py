"""Benchmark GUIDE and its baseline: erase one identity (a held-out digit instance) from the digits GAN.

    python -m bench.identity             # the tests' tiny GAN world, 3 seeds x 3 identities (a few minutes)
    python -m bench.identity --deployed  # the sizes of params.yaml (GAN, feature network, encoder, identity nets)

Per seed: the GAN world (judge, feature network, GAN on the training digits of that seed's split), the
inversion encoder and the two identity networks (the conv one in the loss, the MLP one held out for every
similarity below). The identities and the other identities are the data build's (unlearning/data/
identities.py) for that seed's test split; the others exclude the identity's class. Per identity, each
method runs on a fresh copy of the GAN. Columns:
- ID: held-out identity cosine between x and G(E(x)) after (before in its own column); ID_others: the
  same, averaged over 8 augmented views of x (GUIDE's ID_others: other photos of the same person);
- others: the other identities' mean similarity drop (and the worst one); pair: the rise of the largest
  similarity between two different identities' outputs (collapse);
- FID_pre: unlearned vs original generator on the same latents; dFID: change of FID vs real test digits;
- seconds: the method's run alone; pass: the default IdentityThresholds verdict.
Writes bench/results/identity[-deployed].{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from tests.gan_world import TINY_GAN_TRAINING, GanWorld, make_gan_world
from tests.identity_world import (LOSS_NET, TINY_ENCODER, TINY_ENCODER_TRAINING, TINY_IDENTITY_TRAINING, VERIFIER_NET,
                                  IdentityWorld)
from unlearning.data.digits import DigitsDataConfig, build_digits_sets, load_set
from unlearning.data.identities import OTHERS_PATH, IdentitySetsConfig, build_identity_sets, identity_path
from unlearning.data.pairs import decode_arrays
from unlearning.generation_metrics import features, latent_bank
from unlearning.identity import (EncoderTrainConfig, IdentityTrainConfig, augmented_views, train_encoder,
                                 train_identity_net)
from unlearning.identity_metrics import fid_between_generators, score_identity
from unlearning.methods import create_method
from unlearning.models import build_model
from unlearning.verify import IdentityThresholds, verify_identity

CPU = torch.device("cpu")
RESULTS = Path(__file__).parent / "results"
METHODS = {"guide": ("guide", {}), "guide (paper: no inverted preservation)": ("guide", {"inverted_weight": 0.0}),
           "guide_baseline": ("guide_baseline", {})}
# At the deployed sizes the example request's calibration (2 000 steps; docs/identity.md) is run beside the defaults.
DEPLOYED_METHODS = {**METHODS, "guide, 2 000 steps (the example request)": ("guide", {"steps": 2000})}
PAPER = ("| EG3D FFHQ (paper, README of KHU-AGI/GUIDE) | ID | ID_others | FID_pre |\n|---|---|---|---|\n"
         "| GUIDE | 0.0183 | 0.2797 | 7.50 |\n| baseline (w_avg, local loss) | 0.0818 | 0.4122 | 9.49 |\n")


def _deployed_gan_world(seed: int) -> GanWorld:
    """The deployed sizes of params.yaml (GAN, feature network), seeded like the tests' world."""
    from pipelines.base_model import load_params
    from unlearning.gan_training import GanTrainConfig, digits_images, train_digits_classifier_cnn, train_gan
    from unlearning.train import TrainConfig

    params = load_params(Path(__file__).parents[1] / "params.yaml")
    files = build_digits_sets(DigitsDataConfig(seed=seed))
    train, test = load_set(files, "train"), load_set(files, "test")
    torch.manual_seed(seed + 1)
    feature_net = build_model("digits-feature-net", params.feature_network.config)
    train_digits_classifier_cnn(feature_net, train.inputs, train.targets.long(),
                                TrainConfig(**{**params.feature_network.train, "seed": seed + 1}), CPU)
    torch.manual_seed(seed)
    gan = build_model("digits-gan", params.generator.config)
    train_gan(gan, digits_images(train.inputs), GanTrainConfig(**{**params.generator.train, "seed": seed}), CPU,
              show_progress=False)
    bank = latent_bank(gan.config.latent_dim, 4096, seed=1000 + seed)
    return GanWorld(digits_images(train.inputs), digits_images(test.inputs), test.targets.long(), None, feature_net, gan, bank)


def build_world(seed: int, deployed: bool) -> IdentityWorld:
    if deployed:
        from pipelines.base_model import load_params

        params = load_params(Path(__file__).parents[1] / "params.yaml")
        gan = _deployed_gan_world(seed)
        encoder_config, encoder_training = params.encoder.config, EncoderTrainConfig(**params.encoder.train)
        loss_config, verifier_config = params.identity_net.config, params.identity_verifier.config
        identity_training = IdentityTrainConfig(**params.identity_net.train)
    else:
        gan = make_gan_world(seed, TINY_GAN_TRAINING)
        encoder_config, encoder_training = TINY_ENCODER, TINY_ENCODER_TRAINING
        loss_config, verifier_config, identity_training = LOSS_NET, VERIFIER_NET, TINY_IDENTITY_TRAINING
    torch.manual_seed(seed)
    encoder = build_model("digits-gan-encoder", {**encoder_config, "w_dim": gan.gan.config.w_dim})
    train_encoder(encoder, gan.gan, gan.train_images, EncoderTrainConfig(**{**encoder_training.__dict__, "seed": seed}), CPU)
    nets = []
    for offset, config in ((10, loss_config), (20, verifier_config)):
        torch.manual_seed(seed + offset)
        net = build_model("digits-identity-net", config)
        train_identity_net(net, gan.train_images, IdentityTrainConfig(**{**identity_training.__dict__, "seed": seed + offset}), CPU)
        nets.append(net)
    placeholder = gan.test_images[:1]
    return IdentityWorld(gan, encoder, nets[0], nets[1], placeholder, placeholder, placeholder,
                         features(gan.feature_net, gan.test_images, CPU))


def identities(seed: int, count: int):
    files = build_identity_sets(DigitsDataConfig(seed=seed), IdentitySetsConfig(identities=count))
    others, _ = decode_arrays(files[OTHERS_PATH], OTHERS_PATH)
    for index in range(count):
        arrays, _ = decode_arrays(files[identity_path(index)], identity_path(index))
        label = int(arrays["targets"][0])
        keep = torch.from_numpy(others["targets"]).long() != label
        yield (label, torch.from_numpy(arrays["inputs"]).float().reshape(1, 1, 8, 8),
               torch.from_numpy(others["inputs"]).float().reshape(-1, 1, 8, 8)[keep])


def run(seeds: list[int], count: int, deployed: bool) -> list[dict]:
    rows = []
    for seed in seeds:
        world = build_world(seed, deployed)
        gan = world.gan
        for label, image, others in identities(seed, count):
            world.identity, world.others = image, others
            world.views = augmented_views(image, 8, seed=0)

            def scores(model):
                return score_identity(model, world.encoder, world.verifier, gan.feature_net, image, world.views, others,
                                      gan.bank, world.real_features, CPU)

            before = scores(gan.gan)
            for key, (name, params) in (DEPLOYED_METHODS if deployed else METHODS).items():
                problem = world.problem()
                method = create_method(name, params, task_kind="identity")
                started = time.perf_counter()
                method.run(problem, show_progress=False)
                seconds = time.perf_counter() - started
                after = scores(problem.model)
                fid_pre = fid_between_generators(gan.gan, problem.model, gan.feature_net, gan.bank, CPU)
                drops = [b - a for b, a in zip(before.others, after.others)]
                verdict = verify_identity(before, after, fid_pre, IdentityThresholds())
                rows.append({
                    "seed": seed, "identity_class": label, "method": key, "id_before": before.identity,
                    "id": after.identity, "id_others_before": before.identity_views, "id_others": after.identity_views,
                    "others_mean_drop": sum(drops) / len(drops), "others_worst_drop": max(drops),
                    "pair_increase": after.largest_pair_similarity - before.largest_pair_similarity,
                    "fid_pre": fid_pre, "fid_change": after.fid - before.fid, "seconds": seconds,
                    "distance_ratio": method.distance_ratio, "target_distance": method.target_distance,
                    "passed": verdict.passed, "failed": [c.name for c in verdict.checks if not c.passed],
                })
                print(json.dumps(rows[-1]), flush=True)
    return rows


def _summary(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def write_markdown(rows: list[dict], path: Path, seconds_total: float, deployed: bool) -> None:
    columns = [("ID before", "id_before"), ("ID", "id"), ("ID_others before", "id_others_before"),
               ("ID_others", "id_others"), ("others mean drop", "others_mean_drop"), ("others worst drop", "others_worst_drop"),
               ("pair rise", "pair_increase"), ("FID_pre", "fid_pre"), ("ΔFID real", "fid_change"), ("seconds", "seconds")]
    lines = [f"# Identity unlearning (GUIDE) on the digits GAN ({'deployed sizes' if deployed else 'the tests tiny world'})", "",
             f"`python -m bench.identity{' --deployed' if deployed else ''}`; {platform.processor() or platform.machine()}, "
             f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); {seconds_total / 60:.1f} min in all. "
             f"{len({r['seed'] for r in rows})} seeds x {len({(r['seed'], r['identity_class']) for r in rows}) // len({r['seed'] for r in rows})} identities; "
             "mean ± std over all (seed, identity) runs. Similarities: the held-out (MLP) identity network's cosines.", "",
             "| method | " + " | ".join(name for name, _ in columns) + " | passes defaults |",
             "|---" * (len(columns) + 2) + "|"]
    for method in (DEPLOYED_METHODS if deployed else METHODS):
        chosen = [r for r in rows if r["method"] == method]
        cells = [_summary([r[key] for r in chosen]) for _, key in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {sum(r['passed'] for r in chosen)}/{len(chosen)} |")
    ratios = sorted({round(r["distance_ratio"], 3) for r in rows})
    lines += ["", f"d / median |w - w_avg| = {ratios} (d = {_summary([r['target_distance'] for r in rows if r['method'] == 'guide'])}).",
              "", "Failed checks per run:", ""]
    for r in rows:
        if r["failed"]:
            lines.append(f"- seed {r['seed']}, identity class {r['identity_class']}, {r['method']}: {', '.join(r['failed'])}")
    lines += ["", "## The paper's numbers, beside them — **not comparable in scale**", "",
              "Different generator (EG3D, 512 px faces vs an 8x8 digits GAN), encoder (GOAE vs ours), identity network "
              "(CurricularFace vs an instance-discrimination MLP on digits) and feature space (Inception vs our feature "
              "network): only the direction of the comparison carries over.", "", PAPER]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployed", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--identities", type=int, default=3)
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    rows = run(arguments.seeds, arguments.identities, arguments.deployed)
    suffix = "-deployed" if arguments.deployed else ""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"identity{suffix}.json").write_text(json.dumps(rows, indent=2))
    write_markdown(rows, RESULTS / f"identity{suffix}.md", time.perf_counter() - started, arguments.deployed)


if __name__ == "__main__":
    main()
