"""What the reproducible CPU numerics cost, and what they buy: one seeded training of the deployed restorer's
architecture and of the judge, each in a fresh process, under each ATen capability this CPU offers, with
native numerics and with the reproducible profile (unlearning/numerics.py). Prints, per run, the kernels
that ran, the weights' sha256 and the seconds; then the profile's time over native's, measured in this run.

    python -m bench.numerics            # 150 restorer steps + 300 judge steps per run
    python -m bench.numerics --steps 50

Writes bench/results/numerics.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"
TRAIN = textwrap.dedent("""
    import hashlib, json, sys, time
    import torch
    from unlearning import numerics
    if sys.argv[1] == "reproducible":
        numerics.enter(numerics.REPRODUCIBLE)
    else:
        torch.set_num_threads(1)
    from pipelines.flow.base_model import load_params
    from unlearning.models import build_model
    params = load_params("params.yaml")
    steps = int(sys.argv[2])
    torch.manual_seed(0)
    restorer = build_model(params.model.architecture, {"width": params.model.width, "levels": params.model.levels,
                                                       "prompts": params.model.prompts})
    judge = build_model(params.judge.architecture, params.judge.config)
    started = time.perf_counter()
    digest = hashlib.sha256()
    for model, shape, count in ((restorer, (18, 3, 32, 32), steps), (judge, (64, 1, 8, 8), 2 * steps)):
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        for _ in range(count):
            inputs = torch.rand(*shape)
            if model.task_kind == "classification":
                loss = torch.nn.functional.cross_entropy(model(inputs), torch.randint(10, (shape[0],)))
            else:
                loss = (model(inputs) - inputs.flip(-1)).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        for tensor in model.state_dict().values():
            digest.update(tensor.contiguous().numpy().tobytes())
    print(json.dumps({"kernels": numerics.current().capability, "sha256": digest.hexdigest(),
                      "seconds": time.perf_counter() - started}))
""")


def run(capability: str, mode: str, steps: int) -> dict:
    """One seeded training in a fresh process whose host kernels are `capability`, in `mode` (native or
    reproducible): {capability, mode, kernels (that ran), sha256 (of the weights), seconds}."""
    environment = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for key in ("MKL_CBWR", "ERASURE_NUMERICS_RESTARTED"):
        environment.pop(key, None)
    with tempfile.TemporaryDirectory() as scratch:
        # A script file, not `python -c`: entering the profile restarts the process with its own argv.
        script = Path(scratch) / "train_and_hash.py"
        script.write_text(TRAIN)
        # Generous: a few seconds idle at the tests' step counts; no timing is asserted anywhere.
        done = subprocess.run([sys.executable, str(script), mode, str(steps)], capture_output=True, text=True,
                              env=environment, cwd=Path(__file__).parents[1], timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"training under {capability}/{mode} failed: {done.stderr[-2000:]}")
    return {"capability": capability, "mode": mode, **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    best = torch.backends.cpu.get_cpu_capability().lower()
    capabilities = ["default", "avx2"] + (["avx512"] if best == "avx512" else [])
    rows = [run(capability, mode, args.steps) for mode in ("native", "reproducible") for capability in capabilities]
    lines = [f"# Reproducible numerics: bytes and cost ({platform.processor() or platform.machine()}, "
             f"best kernels {best.upper()}, torch {torch.__version__}, 1 thread)", "",
             f"`python -m bench.numerics --steps {args.steps}`: restorer {args.steps} steps + judge {2 * args.steps} steps, "
             "each row a fresh process with `ATEN_CPU_CAPABILITY` set as a machine with those kernels would pick.", "",
             "| host kernels | mode | kernels run | weights sha256 | seconds |", "|---|---|---|---|---|"]
    lines += [f"| {r['capability']} | {r['mode']} | {r['kernels']} | `{r['sha256'][:16]}` | {r['seconds']:.2f} |" for r in rows]
    native = {r["capability"]: r["seconds"] for r in rows if r["mode"] == "native"}
    reproducible = [r for r in rows if r["mode"] == "reproducible"]
    distinct_native = len({r["sha256"] for r in rows if r["mode"] == "native"})
    lines += ["", f"- native: {distinct_native} different weight files from {len(native)} kernel choices; reproducible: "
              f"{len({r['sha256'] for r in reproducible})} from {len(reproducible)}.",
              f"- cost: the profile takes {reproducible[0]['seconds'] / native[best]:.2f}x the time of this CPU's native "
              f"{best.upper()} kernels (measured in this run, both on 1 thread)."]
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "numerics.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
