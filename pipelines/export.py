"""ONNX export with dynamic batch (and any image height/width), checked against the torch model with onnxruntime."""

from __future__ import annotations

import hashlib
import inspect
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

PARITY_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """The ONNX graph could not be written, or its outputs differ from torch beyond tolerance."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    sha256: str
    max_abs_diff: float
    tolerance: float
    parity_passed: bool

    def as_record(self) -> dict:
        return {
            "onnx_sha256": self.sha256,
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
            "parity_passed": self.parity_passed,
        }


def _dynamic_shapes(model: nn.Module, example: torch.Tensor) -> dict:
    """Batch always varies; images also vary in height and width (any size: the restorer pads inside).
    Keyed by forward()'s own argument name (a generator takes latents `z`, not an image `x`)."""
    argument = next(iter(inspect.signature(model.forward).parameters))
    batch = torch.export.Dim("batch")
    if example.dim() != 4:
        return {argument: {0: batch}}
    return {argument: {0: batch, 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}}


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> Path:
    model = model.cpu().eval()
    dynamic_shapes = _dynamic_shapes(model, example)
    # The exporter warns about optional torchvision ops and prints progress; neither concerns us.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model, (example.cpu(),), dynamo=True, dynamic_shapes=dynamic_shapes, external_data=False, verbose=False
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(path), external_data=False)
    return path


def check_parity(model: nn.Module, path: Path, inputs: torch.Tensor, tolerance: float = PARITY_TOLERANCE) -> float:
    """Largest |onnxruntime - torch| on `inputs`."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    onnx_out = session.run(None, {input_name: inputs.cpu().numpy().astype(np.float32)})[0]
    with torch.no_grad():
        torch_out = model.cpu().eval()(inputs.cpu()).numpy()
    return float(np.max(np.abs(onnx_out - torch_out)))


def export_and_check(model: nn.Module, inputs: torch.Tensor, path: Path, tolerance: float = PARITY_TOLERANCE) -> ExportResult:
    try:
        export_onnx(model, inputs[:2], path)
    except Exception as error:  # the exporter raises many internal types
        raise ExportError(f"export: ONNX export failed: {type(error).__name__}: {error}") from error
    max_abs_diff = check_parity(model, path, inputs, tolerance)
    result = ExportResult(
        path=path,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        max_abs_diff=max_abs_diff,
        tolerance=tolerance,
        parity_passed=max_abs_diff <= tolerance,
    )
    if not result.parity_passed:
        raise ExportError(f"export: onnxruntime differs from torch by {max_abs_diff:.2e} > {tolerance:.0e}")
    return result
