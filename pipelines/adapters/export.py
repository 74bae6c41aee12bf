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
    """Write `model` as ONNX to `path`. A model with the graph of one exported before in this process (same
    modules, settings, weight names and shapes, example shape) reuses that export with its own weights:
    the same bytes as exporting it afresh, without the ~2 s of torch.export (a warm worker's requests
    all export the same architecture)."""
    model = model.cpu().eval()
    key = _graph_key(model, example)
    template = _GRAPHS.get(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    if template is not None:
        path.write_bytes(_with_weights(template, model).SerializeToString())
        return path
    dynamic_shapes = _dynamic_shapes(model, example)
    # The exporter warns about optional torchvision ops and prints progress; neither concerns us.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model, (example.cpu(),), dynamo=True, dynamic_shapes=dynamic_shapes, external_data=False, verbose=False
        )
    program.save(str(path), external_data=False)
    _remember_graph(key, path, model)
    return path


# Exported graphs by _graph_key, in this process only; a few architectures at most.
_GRAPHS: dict[str, object] = {}
_MAX_GRAPHS = 8


def _graph_key(model: nn.Module, example: torch.Tensor) -> str:
    """Everything the exported graph can depend on but the weights' values: each module's class and plain
    settings (kernel sizes, flags, widths), every parameter's and buffer's name, shape and dtype, the
    example's shape and dtype, and the torch version."""
    modules = [
        (name, type(module).__module__, type(module).__qualname__,
         sorted((k, repr(v)) for k, v in vars(module).items() if isinstance(v, (bool, int, float, str, tuple, type(None)))))
        for name, module in model.named_modules()
    ]
    tensors = [(name, tuple(value.shape), str(value.dtype)) for name, value in model.state_dict().items()]
    text = repr((modules, tensors, tuple(example.shape), str(example.dtype), torch.__version__))
    return hashlib.sha256(text.encode()).hexdigest()


def _remember_graph(key: str, path: Path, model: nn.Module) -> None:
    """Keep the export as a template only when every weight is an initializer under its own name, shape
    and dtype (nothing folded into a derived constant), so swapping initializers gives a fresh export."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path))
    initializers = {tensor.name: tensor for tensor in graph.graph.initializer}
    for name, value in model.state_dict().items():
        tensor = initializers.get(name)
        if tensor is None:
            return
        array = numpy_helper.to_array(tensor)
        if array.shape != tuple(value.shape) or array.dtype != value.detach().cpu().numpy().dtype:
            return
    if len(_GRAPHS) >= _MAX_GRAPHS:
        _GRAPHS.pop(next(iter(_GRAPHS)))
    _GRAPHS[key] = graph


def _with_weights(template, model: nn.Module):
    from onnx import numpy_helper

    graph = type(template)()
    graph.CopyFrom(template)
    weights = model.state_dict()
    for tensor in graph.graph.initializer:
        if tensor.name in weights:
            tensor.CopyFrom(numpy_helper.from_array(weights[tensor.name].detach().cpu().numpy(), tensor.name))
    return graph


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
