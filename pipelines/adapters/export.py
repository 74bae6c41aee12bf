"""ONNX export with dynamic batch (and any image height/width), checked against the torch model with onnxruntime."""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import os
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


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path, graphs: Path | None = None) -> Path:
    """Write `model` as ONNX to `path`. A model with the graph of one exported before (same modules, settings,
    weight names and shapes, example shape, exporter versions) reuses that export with its own weights: the
    same bytes as exporting it afresh, without the seconds of torch.export. Graphs are kept in this process
    and, when `graphs` is given, in that directory for later processes, without their weights."""
    _export(model, example, path, graphs, reuse=True)
    return path


def _export(model: nn.Module, example: torch.Tensor, path: Path, graphs: Path | None, reuse: bool) -> bool:
    """export_onnx; True when a graph exported before was reused."""
    model = model.cpu().eval()
    key = _graph_key(model, example)
    template = (_GRAPHS.get(key) or _stored_graph(graphs, key, model)) if reuse else None
    path.parent.mkdir(parents=True, exist_ok=True)
    if template is not None:
        path.write_bytes(_with_weights(template, model).SerializeToString())
        return True
    dynamic_shapes = _dynamic_shapes(model, example)
    # The exporter warns about optional torchvision ops and prints progress; neither concerns us.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model, (example.cpu(),), dynamo=True, dynamic_shapes=dynamic_shapes, external_data=False, verbose=False
        )
    program.save(str(path), external_data=False)
    _remember_graph(key, path, model, graphs)
    return False


# Exported graphs by _graph_key, in this process only; a few architectures at most.
_GRAPHS: dict[str, object] = {}
_MAX_GRAPHS = 8
# A stored graph keeps its constants, never its weights; constants this large could be derived from weights.
_MAX_CONSTANT_ELEMENTS = 64


def _graph_key(model: nn.Module, example: torch.Tensor) -> str:
    """Everything the exported graph can depend on but the weights' values: each module's class and plain
    settings (kernel sizes, flags, widths), every parameter's and buffer's name, shape and dtype, the
    example's shape and dtype, the exporter's versions (torch, onnx, onnxscript) and this module's code."""
    modules = [
        (name, type(module).__module__, type(module).__qualname__,
         sorted((k, repr(v)) for k, v in vars(module).items() if isinstance(v, (bool, int, float, str, tuple, type(None)))))
        for name, module in model.named_modules()
    ]
    tensors = [(name, tuple(value.shape), str(value.dtype)) for name, value in model.state_dict().items()]
    text = repr((modules, tensors, tuple(example.shape), str(example.dtype), _exporter_identity()))
    return hashlib.sha256(text.encode()).hexdigest()


@functools.cache
def _exporter_identity() -> tuple[str, ...]:
    """torch, onnx and onnxscript versions and this module's code hash: read once per process, not per export."""
    from importlib.metadata import version

    return (torch.__version__, version("onnx"), version("onnxscript"), hashlib.sha256(Path(__file__).read_bytes()).hexdigest())


def _weights_are_initializers(graph, model: nn.Module) -> bool:
    """Whether every weight is an initializer under its own name, shape and dtype (nothing folded into a
    derived constant), so that swapping initializers gives a fresh export."""
    from onnx import helper

    initializers = {tensor.name: tensor for tensor in graph.graph.initializer}
    for name, value in model.state_dict().items():
        tensor = initializers.get(name)
        if tensor is None or tuple(tensor.dims) != tuple(value.shape):
            return False
        if helper.tensor_dtype_to_np_dtype(tensor.data_type) != value.detach().cpu().numpy().dtype:
            return False
    return True


def _remember_graph(key: str, path: Path, model: nn.Module, graphs: Path | None) -> None:
    """Keep the export as a template when its weights are plain initializers; in `graphs` too, weights removed."""
    import onnx

    graph = onnx.load(str(path))
    if not _weights_are_initializers(graph, model):
        return
    if len(_GRAPHS) >= _MAX_GRAPHS:
        _GRAPHS.pop(next(iter(_GRAPHS)))
    _GRAPHS[key] = graph
    if graphs is not None:
        try:
            _store_graph(graphs / f"{key}.onnx", graph, model)
        except OSError:  # a graph not stored is exported again by the next process, nothing worse
            pass


def _store_graph(file: Path, graph, model: nn.Module) -> None:
    """Write the graph without its weights (a stored graph must not outlive a purged version's weights), and
    only when its other constants are small (index and shape constants, not values derived from weights)."""
    from onnx import numpy_helper

    weights = model.state_dict()
    if any(numpy_helper.to_array(tensor).size > _MAX_CONSTANT_ELEMENTS
           for tensor in graph.graph.initializer if tensor.name not in weights):
        return
    stripped = type(graph)()
    stripped.CopyFrom(graph)
    for tensor in stripped.graph.initializer:
        if tensor.name in weights:
            tensor.ClearField("raw_data")
            for field in ("float_data", "double_data", "int32_data", "int64_data"):
                tensor.ClearField(field)
    file.parent.mkdir(parents=True, exist_ok=True)
    partial = file.with_suffix(f".{os.getpid()}.partial")
    partial.write_bytes(stripped.SerializeToString())
    partial.replace(file)


def _stored_graph(graphs: Path | None, key: str, model: nn.Module):
    """The graph stored under `key` in `graphs`, now also kept in this process; None when there is none usable."""
    if graphs is None or not (graphs / f"{key}.onnx").is_file():
        return None
    import onnx

    try:
        graph = onnx.load_from_string((graphs / f"{key}.onnx").read_bytes())
    except Exception:  # noqa: BLE001 - an unreadable stored graph is exported afresh (and stored again)
        return None
    if not _weights_are_initializers(graph, model):
        return None
    _GRAPHS[key] = graph
    return graph


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


def export_and_check(model: nn.Module, inputs: torch.Tensor, path: Path, tolerance: float = PARITY_TOLERANCE,
                     graphs: Path | None = None) -> ExportResult:
    """Export (reusing a graph exported before, also by an earlier process when `graphs` is given) and check
    parity with torch on `inputs`."""
    reused = _export_or_raise(model, inputs[:2], path, graphs, reuse=True)
    max_abs_diff = check_parity(model, path, inputs, tolerance)
    if reused and max_abs_diff > tolerance:
        # A reused graph that does not fit this model is no verdict on the model: export it afresh.
        _export_or_raise(model, inputs[:2], path, graphs, reuse=False)
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


def _export_or_raise(model: nn.Module, example: torch.Tensor, path: Path, graphs: Path | None, reuse: bool) -> bool:
    try:
        return _export(model, example, path, graphs, reuse)
    except Exception as error:  # the exporter raises many internal types
        raise ExportError(f"export: ONNX export failed: {type(error).__name__}: {error}") from error
