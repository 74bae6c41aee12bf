"""`torchrun` entry point: unlearn one model from files with DDP across GPUs (or CPU processes).

    torchrun --nproc_per_node=2 -m pipelines.production.distributed --model-dir DIR --forget F.safetensors \\
        --retain R1.safetensors --method gradient_ascent --params '{"steps": 200}' --out OUT_DIR

DIR holds `weights.safetensors` + `architecture.json` (what `registry.write_model_files` writes);
rank 0 writes the unlearned model to OUT_DIR in the same form, plus `run.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from unlearning.data.pairs import PairSet, concat, decode_arrays
from unlearning.distributed import init_from_environment, unlearn_data_parallel
from unlearning.methods import UnlearningProblem, create_method
from unlearning.models import build_model

WEIGHTS_FILE, ARCHITECTURE_FILE = "weights.safetensors", "architecture.json"


def read_pairs(path: Path) -> PairSet:
    arrays, _ = decode_arrays(Path(path).read_bytes(), str(path))
    return PairSet.from_arrays(Path(path).stem, arrays)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--forget", type=Path, required=True)
    parser.add_argument("--retain", type=Path, nargs="*", default=[])
    parser.add_argument("--method", required=True)
    parser.add_argument("--params", default="{}", help="method params as JSON")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    rank = init_from_environment()
    architecture = json.loads((args.model_dir / ARCHITECTURE_FILE).read_text())
    model = build_model(architecture["architecture"], architecture["config"])
    model.load_state_dict(load_file(args.model_dir / WEIGHTS_FILE))
    method = create_method(args.method, json.loads(args.params))
    retain = concat([read_pairs(path) for path in args.retain], "retain") if args.retain else None
    torch.manual_seed(method.params.seed)
    problem = UnlearningProblem(model=model, forget=read_pairs(args.forget), retain=retain, device=rank.device)
    started = time.perf_counter()
    outcome = unlearn_data_parallel(method, problem, rank)
    if rank.is_leader:
        args.out.mkdir(parents=True, exist_ok=True)
        state = {key: value.detach().cpu().contiguous() for key, value in problem.model.state_dict().items()}
        save_file(state, args.out / WEIGHTS_FILE)
        (args.out / ARCHITECTURE_FILE).write_text(json.dumps(architecture, indent=2, sort_keys=True))
        run = {"steps": outcome.steps, "seconds": round(time.perf_counter() - started, 3), "world_size": rank.world_size}
        (args.out / "run.json").write_text(json.dumps(run))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
