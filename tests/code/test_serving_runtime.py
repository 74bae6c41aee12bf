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
    with torch.no_grad():  # the prompts' modulation starts at zero (the identity): give it weights to fold
        for block in model.prompt:
            block.modulate.weight.normal_(0, 0.5)
            block.modulate.bias.normal_(0, 0.5)
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
    assert ops.count("Conv") == 10 + 2  # each merge block's first Conv split in two, the head folded into a MatMul
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


@pytest.fixture(scope="module")
def int8(exported):
    _, path, folder = exported
    generator = torch.Generator().manual_seed(0)
    calibration = [torch.rand(1, 3, 32, 32, generator=generator).numpy() for _ in range(3)]
    return serving_runtime.quantize_int8(path, folder / "model.int8.onnx", calibration)


def test_int8_parity_is_measured_and_within_its_bound(exported, int8):
    model, _, _ = exported
    inputs = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    parity = serving_runtime.measure_parity(model, int8, inputs, targets=inputs, bound=serving_runtime.INT8_MAX_ABS_DIFF)
    assert 0 < parity.max_abs_diff <= serving_runtime.INT8_MAX_ABS_DIFF, parity
    assert parity.passed and parity.psnr_vs_torch_db > 40 and parity.psnr_delta_db is not None
    record = parity.as_record()
    assert record["bound"] == serving_runtime.INT8_MAX_ABS_DIFF and record["passed"] is True


def test_int8_parity_holds_at_other_sizes_and_batches(exported, int8):
    model, _, _ = exported
    for shape in [(1, 3, 40, 24), (3, 3, 30, 30)]:  # 30: padded inside to 32, cropped back
        parity = serving_runtime.measure_parity(model, int8, torch.rand(*shape), bound=serving_runtime.INT8_MAX_ABS_DIFF)
        assert parity.passed, (shape, parity)


def test_int8_keeps_every_convolution_int8_and_the_head_fp32(int8):
    graph = onnx.load(str(int8)).graph
    ops = [node.op_type for node in graph.node]
    assert "AveragePool" not in ops and "ConvTranspose" not in ops  # pooling and upsampling are convolutions now
    weights = [node.input[1] for node in graph.node if node.op_type == "Conv"]
    assert weights and all(name.endswith("_DequantizeLinear_Output") for name in weights)  # the widened RGB stem too
    assert any(node.op_type == "Pad" and node.name.endswith("_widen") for node in graph.node)
    assert not any(node.op_type == "Shape" and node.input[0].endswith("DequantizeLinear_Output") for node in graph.node)
    assert "MatMul" in ops  # the head, modulation folded in, reads fp32


def test_int8_records_its_recipe_and_options(int8):
    import json

    metadata = {prop.key: prop.value for prop in onnx.load(str(int8)).metadata_props}
    recipe = json.loads(metadata[serving_runtime.INT8_RECIPE_KEY])
    assert recipe == serving_runtime.Int8Recipe().as_record()
    assert recipe["rewrites"] == list(serving_runtime.INT8_REWRITES) and recipe["quant_format"] == "QDQ"
    assert serving_runtime.saved_options(int8) == serving_runtime.ServingOptions()


@pytest.mark.parametrize("rewrite", serving_runtime.INT8_REWRITES)
def test_int8_rewrites_are_exact_in_fp32(exported, tmp_path, rewrite):
    model, path, _ = exported
    rewritten = serving_runtime.optimize_for_serving(path, tmp_path / f"{rewrite}.onnx", rewrites=(rewrite,))
    for shape in [(2, 3, 20, 28), (1, 3, 16, 16)]:
        assert serving_runtime.measure_parity(model, rewritten, torch.rand(*shape)).max_abs_diff <= 1e-4


def test_modulation_fold_leaves_wide_convolutions_alone(exported, tmp_path):
    _, path, _ = exported
    rewritten = serving_runtime.optimize_for_serving(path, tmp_path / "fold.onnx", rewrites=("fold_modulation_into_1x1_conv",))
    ops = [node.op_type for node in onnx.load(str(rewritten)).graph.node]
    assert ops.count("MatMul") == 2 + 2  # the head's two, beside each prompt block's own component mix
    assert ops.count("ConvTranspose") == 2  # the 2x2 upsampling after the first prompt block is not a 1x1 head


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
