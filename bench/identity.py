"""Benchmark GUIDE and its baseline: erase one identity (a held-out digit instance) from the digits GAN.

    python -m bench.identity             # the tests' tiny GAN world, 3 seeds x 3 identities (a few minutes)
    python -m bench.identity --deployed  # the sizes of params.yaml (GAN, feature network, encoder, identity nets)
    python -m bench.identity --deployed --capabilities default avx512 --cache /tmp/identity-worlds
        # each capability in its own subprocess (ATEN_CPU_CAPABILITY set), one table over all runs
    python -m bench.identity --deployed --merge a.json b.json   # combine the json of earlier runs

Per seed: the GAN world (judge, feature network, GAN on the training digits of that seed's split), the
inversion encoder and the two identity networks (the conv one in the loss, the MLP one held out for every
similarity below). The identities and the other identities are the data build's (unlearning/data/
identities.py) for that seed's test split; the others exclude the identity's class. Per identity, each
method runs on a fresh copy of the GAN. CPU numerics differ between machines (the same code trains other
weights under another ATEN_CPU_CAPABILITY), so the capability is a column and runs under several can be
merged into one table. Columns:
- ID: held-out identity cosine between x and G(E(x)) after (before in its own column); ID_others: the
  same, averaged over 8 augmented views of x (GUIDE's ID_others: other photos of the same person);
- others: the other identities' mean similarity drop (and the worst one); pair: the rise of the largest
  similarity between two different identities' outputs (collapse);
- FID_pre: unlearned vs original generator on the same latents; dFID: change of FID vs real test digits;
- seconds: the method's run alone; verdict: the thresholds' (the example request's for its row, the
  defaults for the others). An identity the generator does not reproduce before (ID < identity_min_
  similarity) is *refused* as the pipeline refuses it at validate (nothing to erase): no method runs.
Writes bench/results/identity[-deployed].{json,md}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from tests.gan_world import TINY_GAN_TRAINING, GanWorld, make_gan_world
from tests.identity_world import (
    LOSS_NET,
    TINY_ENCODER,
    TINY_ENCODER_TRAINING,
    TINY_IDENTITY_TRAINING,
    VERIFIER_NET,
    IdentityWorld,
)
from unlearning.data.digits import DigitsDataConfig, build_digits_sets, load_set
from unlearning.data.identities import OTHERS_PATH, IdentitySetsConfig, build_identity_sets, identity_path
from unlearning.data.pairs import decode_arrays
from unlearning.generation_metrics import features, latent_bank
from unlearning.identity import (
    EncoderTrainConfig,
    IdentityTrainConfig,
    augmented_views,
    train_encoder,
    train_identity_net,
)
from unlearning.identity_metrics import fid_between_generators, score_identity
from unlearning.methods import create_method
from unlearning.models import build_model
from unlearning.verify import IdentityThresholds, verify_identity

CPU = torch.device("cpu")
ROOT = Path(__file__).parents[1]
RESULTS = Path(__file__).parent / "results"
EXAMPLE_REQUEST = ROOT / "requests" / "examples" / "forget-identity.yaml"
REQUEST_KEY = "the example request"
METHODS = {"guide": ("guide", {}), "guide (paper: no inverted preservation)": ("guide", {"inverted_weight": 0.0}),
           "guide_baseline": ("guide_baseline", {})}
# At the deployed sizes the example request's recipe (method, params and thresholds read from the file) runs beside these.
DEPLOYED_METHODS = {REQUEST_KEY: None,
                    "the previous example request (views 8 x 2, inverted_weight 8 beyond 0.75 d)":
                        ("guide", {"steps": 2000, "identity_views": 8, "views_weight": 2, "inverted_weight": 8,
                                   "inverted_min_distance": 0.75}),
                    "the previous example request (2 000 steps, inverted_weight 0)":
                        ("guide", {"steps": 2000, "inverted_weight": 0.0}),
                    "guide (defaults)": ("guide", {}),
                    "guide (paper: no inverted preservation)": ("guide", {"inverted_weight": 0.0}),
                    "guide_baseline": ("guide_baseline", {})}
PAPER = ("| EG3D FFHQ (paper, README of KHU-AGI/GUIDE) | ID | ID_others | FID_pre |\n|---|---|---|---|\n"
         "| GUIDE | 0.0183 | 0.2797 | 7.50 |\n| baseline (w_avg, local loss) | 0.0818 | 0.4122 | 9.49 |\n")


def _deployed_gan_world(seed: int) -> GanWorld:
    """The deployed sizes of params.yaml (GAN, feature network), seeded like the tests' world."""
    from pipelines.flow.base_model import load_params
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
        from pipelines.flow.base_model import load_params

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


def example_request() -> tuple[str, dict, IdentityThresholds]:
    """The example request's method, params and thresholds, read (and validated) from its file."""
    from pipelines.flow.request import load_request

    request = load_request(EXAMPLE_REQUEST)
    return request.method.name, dict(request.method.params), IdentityThresholds(**request.thresholds)


def methods_to_run(deployed: bool, chosen: list[str] | None) -> dict[str, tuple[str, dict, IdentityThresholds]]:
    table = DEPLOYED_METHODS if deployed else METHODS
    methods = {key: example_request() if spec is None else (*spec, IdentityThresholds()) for key, spec in table.items()}
    if chosen:
        unknown = [key for key in chosen if key not in methods]
        if unknown:
            raise SystemExit(f"--methods: unknown {unknown}; choose from {list(methods)}")
        methods = {key: methods[key] for key in chosen}
    return methods


def capability() -> str:
    return torch.backends.cpu.get_cpu_capability()


def cached_world(seed: int, deployed: bool, cache: Path | None) -> IdentityWorld:
    """build_world, kept under `cache` by (sizes, seed, capability, threads, torch, params.yaml) if given:
    the worlds take minutes each at the deployed sizes and are the same for every method."""
    if cache is None:
        return build_world(seed, deployed)
    key = hashlib.sha256(((ROOT / "params.yaml").read_text() + torch.__version__).encode()).hexdigest()[:12]
    path = cache / f"{'deployed' if deployed else 'tiny'}-{capability()}-{torch.get_num_threads()}t-seed{seed}-{key}.pt"
    if path.exists():
        return torch.load(path, weights_only=False)
    world = build_world(seed, deployed)
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(world, path)
    return world


def run(seeds: list[int], count: int, deployed: bool, methods: dict, cache: Path | None = None) -> list[dict]:
    rows = []
    for seed in seeds:
        world = cached_world(seed, deployed, cache)
        gan = world.gan
        for index, (label, image, others) in enumerate(identities(seed, count)):
            world.identity, world.others = image, others
            world.views = augmented_views(image, 8, seed=0)

            def scores(model):
                return score_identity(model, world.encoder, world.verifier, gan.feature_net, image, world.views, others,
                                      gan.bank, world.real_features, CPU)

            before = scores(gan.gan)
            for key, (name, params, thresholds) in methods.items():
                row = {"capability": capability(), "threads": torch.get_num_threads(), "seed": seed,
                       "identity": index, "identity_class": label, "method": key, "method_name": name, "params": params,
                       "id_before": before.identity, "id_others_before": before.identity_views}
                if before.identity < thresholds.identity_min_similarity:
                    # The pipeline refuses this request at validate: the generator does not reproduce the identity.
                    rows.append({**row, "refused": True, "passed": False, "failed": ["validate.identity_min_similarity"]})
                    print(json.dumps(rows[-1]), flush=True)
                    continue
                problem = world.problem()
                method = create_method(name, params, task_kind="identity")
                started = time.perf_counter()
                method.run(problem, show_progress=False)
                seconds = time.perf_counter() - started
                after = scores(problem.model)
                fid_pre = fid_between_generators(gan.gan, problem.model, gan.feature_net, gan.bank, CPU)
                drops = [b - a for b, a in zip(before.others, after.others)]
                verdict = verify_identity(before, after, fid_pre, thresholds)
                rows.append({
                    **row, "id": after.identity, "id_others": after.identity_views,
                    "others_mean_drop": sum(drops) / len(drops), "others_worst_drop": max(drops),
                    "pair_increase": after.largest_pair_similarity - before.largest_pair_similarity,
                    "fid_pre": fid_pre, "fid_change": after.fid - before.fid, "seconds": seconds,
                    "distance_ratio": method.distance_ratio, "target_distance": method.target_distance,
                    "refused": False, "passed": verdict.passed, "failed": [c.name for c in verdict.checks if not c.passed],
                })
                print(json.dumps(rows[-1]), flush=True)
    return rows


def _summary(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def pass_rate(rows: list[dict]) -> str:
    ran = [r for r in rows if not r["refused"]]
    passed = sum(r["passed"] for r in ran)
    rate = f"{passed}/{len(ran)} ({100 * passed / len(ran):.0f} %)" if ran else "0/0"
    return f"{rate} of the runs it ran, {len(rows) - len(ran)} refused (nothing to erase); {passed}/{len(rows)} of all"


def _verdict(row: dict) -> str:
    if row["refused"]:
        return f"refused: ID before {row['id_before']:.2f} < identity_min_similarity"
    return "pass" if row["passed"] else "**fail**: " + ", ".join(row["failed"])


def write_markdown(rows: list[dict], path: Path, seconds_total: float, deployed: bool, command: str,
                   methods: dict[str, tuple[str, dict, IdentityThresholds]]) -> None:
    columns = [("ID before", "id_before"), ("ID", "id"), ("ID_others before", "id_others_before"),
               ("ID_others", "id_others"), ("others mean drop", "others_mean_drop"), ("others worst drop", "others_worst_drop"),
               ("pair rise", "pair_increase"), ("FID_pre", "fid_pre"), ("ΔFID real", "fid_change"), ("seconds", "seconds")]
    capabilities = sorted({r["capability"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    per_seed = len({(r["seed"], r["identity"]) for r in rows}) // max(len(seeds), 1)
    lines = [f"# Identity unlearning (GUIDE) on the digits GAN ({'deployed sizes' if deployed else 'the tests tiny world'})", "",
             f"`{command}`", "",
             f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
             f"{sorted({r['threads'] for r in rows})} thread(s), CPU capabilities {capabilities}; {seconds_total / 60:.1f} min in all. "
             f"{len(seeds)} seeds x {per_seed} identities x {len(capabilities)} capabilities; mean ± std over the runs a method "
             "ran (refused ones left out). Similarities: the held-out (MLP) identity network's cosines.", "",
             "| method | " + " | ".join(name for name, _ in columns) + " | passes | refused |",
             "|---" * (len(columns) + 3) + "|"]
    for method in methods:
        chosen = [r for r in rows if r["method"] == method]
        ran = [r for r in chosen if not r["refused"]]
        cells = [_summary([r[key] for r in (ran if key not in ("id_before", "id_others_before") else chosen)]) for _, key in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {sum(r['passed'] for r in ran)}/{len(ran)} | "
                     f"{len(chosen) - len(ran)} |")
    for method, (name, params, thresholds) in methods.items():
        chosen = [r for r in rows if r["method"] == method]
        if not chosen:
            continue
        lines += ["", f"## {method}: `{name}` {json.dumps(params)}", "",
                  f"Thresholds: {json.dumps(thresholds.__dict__)}.", "",
                  f"**Pass rate: {pass_rate(chosen)}.**", "",
                  "| capability | seed | identity (class) | ID before → after | ID_others before → after | others mean drop "
                  "| worst drop | pair rise | FID_pre | ΔFID real | s | verdict |", "|---" * 12 + "|"]
        for r in sorted(chosen, key=lambda r: (r["capability"], r["seed"], r["identity"])):
            if r["refused"]:
                lines.append(f"| {r['capability']} | {r['seed']} | {r['identity']} ({r['identity_class']}) | "
                             f"{r['id_before']:.3f} → – | {r['id_others_before']:.3f} → – | "
                             + "– | " * 6 + f"{_verdict(r)} |")
                continue
            lines.append(f"| {r['capability']} | {r['seed']} | {r['identity']} ({r['identity_class']}) | "
                         f"{r['id_before']:.3f} → {r['id']:.3f} | {r['id_others_before']:.3f} → {r['id_others']:.3f} | "
                         f"{r['others_mean_drop']:.3f} | {r['others_worst_drop']:.3f} | {r['pair_increase']:.3f} | "
                         f"{r['fid_pre']:.3f} | {r['fid_change']:.3f} | {r['seconds']:.1f} | {_verdict(r)} |")
    ran = [r for r in rows if not r["refused"] and r["method"] in methods and methods[r["method"]][0] == "guide"]
    ratios = sorted({round(r["distance_ratio"], 3) for r in ran})
    if ran:
        lines += ["", f"d / median |w - w_avg| = {ratios} (d = {_summary([r['target_distance'] for r in ran])})."]
    lines += ["", "## The paper's numbers, beside them — **not comparable in scale**", "",
              "Different generator (EG3D, 512 px faces vs an 8x8 digits GAN), encoder (GOAE vs ours), identity network "
              "(CurricularFace vs an instance-discrimination MLP on digits) and feature space (Inception vs our feature "
              "network): only the direction of the comparison carries over.", "", PAPER]
    path.write_text("\n".join(lines) + "\n")


def _load_rows(path: Path) -> list[dict]:
    data = json.loads(path.read_text())
    return data["rows"] if isinstance(data, dict) else data


def run_capabilities(arguments, capabilities: list[str]) -> list[dict]:
    """The same benchmark once per capability, each in a subprocess with ATEN_CPU_CAPABILITY set (torch reads
    it at start-up), one after the other; their rows together."""
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in capabilities:
            out = Path(folder) / f"{name}.json"
            command = [sys.executable, "-m", "bench.identity", "--seeds", *map(str, arguments.seeds),
                       "--identities", str(arguments.identities), "--rows-out", str(out)]
            command += ["--deployed"] * arguments.deployed + (["--methods", *arguments.methods] if arguments.methods else [])
            command += ["--cache", str(arguments.cache)] if arguments.cache else []
            environment = {**os.environ, "ATEN_CPU_CAPABILITY": name, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            subprocess.run(command, check=True, cwd=ROOT, env=environment)
            rows += _load_rows(out)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployed", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--identities", type=int, default=3)
    parser.add_argument("--methods", nargs="+", help="run only these rows (keys of the table)")
    parser.add_argument("--capabilities", nargs="+", help="run once per ATEN_CPU_CAPABILITY (default, avx2, avx512), "
                        "each in a subprocess, and write one table")
    parser.add_argument("--merge", type=Path, nargs="+", help="write one table from these json outputs; runs nothing")
    parser.add_argument("--cache", type=Path, help="folder to keep the trained worlds in (minutes each when deployed)")
    parser.add_argument("--rows-out", type=Path, help=argparse.SUPPRESS)  # a --capabilities subprocess's rows
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    methods = methods_to_run(arguments.deployed, arguments.methods)
    if arguments.merge:
        rows = [row for path in arguments.merge for row in _load_rows(path)]
        methods = {key: value for key, value in methods_to_run(arguments.deployed, None).items()
                   if any(r["method"] == key for r in rows)}
    elif arguments.capabilities:
        rows = run_capabilities(arguments, arguments.capabilities)
    else:
        rows = run(arguments.seeds, arguments.identities, arguments.deployed, methods, arguments.cache)
    if arguments.rows_out:
        arguments.rows_out.write_text(json.dumps({"rows": rows}))
        return
    command = "python -m bench.identity " + shlex.join(sys.argv[1:])
    if arguments.merge:  # keep the commands that made the merged rows
        made = [json.loads(path.read_text()).get("command") for path in arguments.merge]
        command = " + ".join(c for c in made if c) if all(made) else command
    suffix = "-deployed" if arguments.deployed else ""
    RESULTS.mkdir(exist_ok=True)
    seconds = time.perf_counter() - started
    if arguments.merge:
        seconds = sum(r.get("seconds", 0) for r in rows)
    (RESULTS / f"identity{suffix}.json").write_text(json.dumps({"command": command, "rows": rows}, indent=2))
    write_markdown(rows, RESULTS / f"identity{suffix}.md", seconds, arguments.deployed, command, methods)
    for method in methods:
        chosen = [r for r in rows if r["method"] == method]
        if chosen:
            print(f"{method}: passes {pass_rate(chosen)}")


if __name__ == "__main__":
    main()
