"""The serving graph still matches torch within the export's 1e-4; the int8 variant's parity is measured and
within its own bound; the session options are the ones serving_runtime promises."""

import onnx
import onnxruntime
import pytest
import torch

from bench import serving_runtime
from pipelines.adapters.export import PARITY_TOLERANCE, export_onnx
from unlearning.models import build_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("restorer-unet", {"width": 8, "levels": 2, "prompts": 2}).eval()
    folder = tmp_path_factory.mktemp("serving")
    path = export_onnx(model, torch.rand(2, 3, 16, 16), folder / "model.onnx")
    return model, path, folder


@pytest.fixture(scope="module")
def serving(exported):
    model, path, folder = exported
    return serving_runtime.optimize_for_serving(path, folder / "model.serving.onnx")


def test_rewritten_graph_matches_torch_within_the_export_tolerance(exported, serving):
    model, _, _ = exported
    assert serving_runtime.FP32_MAX_ABS_DIFF == PARITY_TOLERANCE
    for shape in [(1, 3, 32, 32), (3, 3, 24, 40)]:
        parity = serving_runtime.measure_parity(model, serving, torch.rand(*shape))
        assert parity.passed and parity.max_abs_diff <= 1e-4


def test_rewrites_remove_the_concats_and_keep_dynamic_axes(exported, serving):
    graph = onnx.load(str(serving)).graph
    ops = [node.op_type for node in graph.node]
    assert "Concat" not in [node.op_type for node in graph.node if any("cat" in output for output in node.output)]
    assert ops.count("Conv") == 11 + 2  # each merge block's first Conv split in two
    dims = onnxruntime.InferenceSession(str(serving)).get_inputs()[0].shape
    assert dims[1] == 3 and all(isinstance(d, str) for d in (dims[0], dims[2], dims[3]))


def test_convtranspose_rewrite_is_exact(exported, tmp_path):
    model, path, _ = exported
    rewritten = serving_runtime.optimize_for_serving(path, tmp_path / "d2s.onnx", rewrites=tuple(serving_runtime.REWRITES))
    ops = [node.op_type for node in onnx.load(str(rewritten)).graph.node]
    assert "ConvTranspose" not in ops and ops.count("DepthToSpace") == 2
    assert serving_runtime.measure_parity(model, rewritten, torch.rand(2, 3, 20, 28)).max_abs_diff <= 1e-4


def test_offline_optimised_graph_matches_torch(exported, tmp_path):
    model, path, _ = exported
    offline = serving_runtime.optimize_for_serving(path, tmp_path / "offline.onnx", offline=True)
    assert serving_runtime.saved_options(offline).graph_optimization_level == "ORT_DISABLE_ALL"
    assert serving_runtime.measure_parity(model, offline, torch.rand(1, 3, 32, 32)).max_abs_diff <= 1e-4


def test_int8_parity_is_measured_and_within_its_bound(exported, serving, tmp_path):
    model, _, _ = exported
    generator = torch.Generator().manual_seed(0)
    calibration = [torch.rand(1, 3, 32, 32, generator=generator).numpy() for _ in range(3)]
    int8 = serving_runtime.quantize_int8(serving, tmp_path / "int8.onnx", calibration)
    graph = onnx.load(str(int8)).graph
    assert any(node.op_type == "QuantizeLinear" for node in graph.node)
    inputs = torch.rand(2, 3, 32, 32, generator=generator)
    parity = serving_runtime.measure_parity(model, int8, inputs, targets=inputs, bound=serving_runtime.INT8_MAX_ABS_DIFF)
    assert 0 < parity.max_abs_diff <= serving_runtime.INT8_MAX_ABS_DIFF, parity
    assert parity.passed and parity.psnr_vs_torch_db > 40 and parity.psnr_delta_db is not None
    record = parity.as_record()
    assert record["bound"] == serving_runtime.INT8_MAX_ABS_DIFF and record["passed"] is True


def test_session_options_are_the_promised_ones(serving):
    promised = serving_runtime.ServingOptions()
    assert serving_runtime.saved_options(serving) == promised
    options = serving_runtime.session_options(promised)
    assert options.intra_op_num_threads == serving_runtime.SERVING_THREADS == 1
    assert options.inter_op_num_threads == 1
    assert options.graph_optimization_level == onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.execution_mode == onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    assert options.enable_mem_pattern and options.enable_cpu_mem_arena
    for key, value in serving_runtime.SESSION_CONFIG.items():
        assert options.get_session_config_entry(key) == value
    session = serving_runtime.load_session(serving)
    assert session.get_session_options().intra_op_num_threads == 1
