"""ONNX export keeps batch (and image height, width) dynamic and matches torch within 1e-4."""

import numpy as np
import onnxruntime
import pytest
import torch

from pipelines.adapters.export import ExportError, check_parity, export_and_check
from unlearning.models import build_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("restorer-unet", {"width": 8, "levels": 2})
    result = export_and_check(model, torch.rand(4, 3, 16, 16), tmp_path_factory.mktemp("onnx") / "model.onnx")
    return model, result


def test_parity_on_the_export_batch(exported):
    _, result = exported
    assert result.parity_passed and result.max_abs_diff <= 1e-4
    assert len(result.sha256) == 64


@pytest.mark.parametrize("shape", [(1, 3, 16, 16), (5, 3, 32, 48), (2, 3, 64, 20)])
def test_other_batch_and_image_sizes_run_with_parity(exported, shape):
    model, result = exported
    assert check_parity(model, result.path, torch.rand(*shape)) <= 1e-4


def test_graph_declares_dynamic_axes(exported):
    _, result = exported
    dims = onnxruntime.InferenceSession(str(result.path)).get_inputs()[0].shape
    assert dims[1] == 3 and all(isinstance(d, str) for d in (dims[0], dims[2], dims[3]))


def test_divergent_export_is_an_error(exported, tmp_path):
    model, _ = exported
    with pytest.raises(ExportError, match="differs from torch"):
        export_and_check(model, torch.rand(2, 3, 16, 16), tmp_path / "m.onnx", tolerance=-1.0)
    assert np.isfinite(check_parity(model, tmp_path / "m.onnx", torch.rand(1, 3, 16, 16)))


def test_classifier_exports_with_a_dynamic_batch(tmp_path):
    torch.manual_seed(0)
    model = build_model("digits-mlp", {"hidden": 32})
    result = export_and_check(model, torch.rand(6, 64), tmp_path / "classifier.onnx")
    dims = onnxruntime.InferenceSession(str(result.path)).get_inputs()[0].shape
    assert isinstance(dims[0], str) and dims[1] == 64
    assert check_parity(model, result.path, torch.rand(1, 64)) <= 1e-4
    assert check_parity(model, result.path, torch.rand(33, 64)) <= 1e-4


def test_a_model_with_an_exported_graph_reuses_it_and_gets_the_bytes_of_a_fresh_export(tmp_path, monkeypatch):
    from pipelines.adapters import export

    monkeypatch.setattr(export, "_GRAPHS", {})
    torch.manual_seed(1)
    first, second = (build_model("restorer-unet", {"width": 8, "levels": 2}) for _ in range(2))
    example = torch.rand(2, 3, 16, 16)
    export.export_onnx(first, example, tmp_path / "first.onnx")

    def no_exporter(*args, **kwargs):
        raise AssertionError("torch.onnx.export ran for a graph already exported")

    with monkeypatch.context() as patched:
        patched.setattr(torch.onnx, "export", no_exporter)
        reused = export.export_onnx(second, example, tmp_path / "reused.onnx").read_bytes()
    monkeypatch.setattr(export, "_GRAPHS", {})
    fresh = export.export_onnx(second, example, tmp_path / "fresh.onnx").read_bytes()
    assert reused == fresh
    assert reused != (tmp_path / "first.onnx").read_bytes()
    assert check_parity(second, tmp_path / "reused.onnx", torch.rand(3, 3, 24, 20)) <= 1e-4


def test_another_architecture_is_exported_afresh(tmp_path, monkeypatch):
    from pipelines.adapters import export

    monkeypatch.setattr(export, "_GRAPHS", {})
    export.export_onnx(build_model("restorer-unet", {"width": 8, "levels": 2}), torch.rand(2, 3, 16, 16), tmp_path / "a.onnx")
    wider = build_model("restorer-unet", {"width": 4, "levels": 2})
    result = export_and_check(wider, torch.rand(2, 3, 16, 16), tmp_path / "b.onnx")
    assert result.parity_passed and len(export._GRAPHS) == 2
