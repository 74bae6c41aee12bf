"""An exported graph is stored without its weights and reused by a later process: the bytes of a fresh export."""

import onnx
import pytest
import torch

from pipelines.adapters import export
from pipelines.adapters.export import check_parity, export_and_check
from unlearning.models import build_model


def restorer(seed: int):
    torch.manual_seed(seed)
    model = build_model("restorer-unet", {"width": 8, "levels": 2, "prompts": 2})
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))  # non-zero everywhere, as a trained model is
    return model


def test_a_stored_graph_is_reused_by_a_later_process_with_the_bytes_of_a_fresh_export(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "_GRAPHS", {})
    first, second = restorer(1), restorer(2)
    example = torch.rand(2, 3, 16, 16)
    export.export_onnx(first, example, tmp_path / "first.onnx", graphs=tmp_path / "graphs")
    assert len(list((tmp_path / "graphs").glob("*.onnx"))) == 1
    monkeypatch.setattr(export, "_GRAPHS", {})  # a later process: nothing exported in it yet

    def no_exporter(*args, **kwargs):
        raise AssertionError("torch.onnx.export ran for a stored graph")

    with monkeypatch.context() as patched:
        patched.setattr(torch.onnx, "export", no_exporter)
        reused = export.export_onnx(second, example, tmp_path / "reused.onnx", graphs=tmp_path / "graphs").read_bytes()
    monkeypatch.setattr(export, "_GRAPHS", {})
    fresh = export.export_onnx(second, example, tmp_path / "fresh.onnx").read_bytes()
    assert reused == fresh
    assert check_parity(second, tmp_path / "reused.onnx", torch.rand(3, 3, 24, 20)) <= 1e-4


def test_a_stored_graph_holds_no_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "_GRAPHS", {})
    model = restorer(3)
    export.export_onnx(model, torch.rand(2, 3, 16, 16), tmp_path / "m.onnx", graphs=tmp_path / "graphs")
    stored = onnx.load(str(next((tmp_path / "graphs").glob("*.onnx"))))
    weights = {t.name: t for t in stored.graph.initializer if t.name in model.state_dict()}
    assert len(weights) == len(model.state_dict())
    assert all(not t.raw_data and not t.float_data for t in weights.values())
    head = model.state_dict()["head.weight"].numpy().tobytes()
    assert head not in next((tmp_path / "graphs").glob("*.onnx")).read_bytes()


def test_a_stored_graph_that_does_not_fit_is_exported_afresh(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "_GRAPHS", {})
    model, inputs = restorer(4), torch.rand(4, 3, 16, 16)
    export.export_onnx(model, inputs[:2], tmp_path / "m.onnx", graphs=tmp_path / "graphs")
    stored_file = next((tmp_path / "graphs").glob("*.onnx"))
    broken = onnx.load(str(stored_file))
    relu = next(node for node in broken.graph.node if node.op_type == "Relu")
    relu.op_type = "Neg"  # a graph that computes something else
    stored_file.write_bytes(broken.SerializeToString())
    monkeypatch.setattr(export, "_GRAPHS", {})
    result = export_and_check(model, inputs, tmp_path / "again.onnx", graphs=tmp_path / "graphs")
    assert result.parity_passed
    assert onnx.load(str(stored_file)) != broken  # stored again from the fresh export


def test_an_unreadable_stored_graph_is_exported_afresh(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "_GRAPHS", {})
    model, inputs = restorer(5), torch.rand(2, 3, 16, 16)
    export.export_onnx(model, inputs, tmp_path / "m.onnx", graphs=tmp_path / "graphs")
    next((tmp_path / "graphs").glob("*.onnx")).write_bytes(b"not onnx")
    monkeypatch.setattr(export, "_GRAPHS", {})
    assert export_and_check(model, inputs, tmp_path / "again.onnx", graphs=tmp_path / "graphs").parity_passed
