"""The restorer takes photos of any size: in torch, through the MLflow pyfunc and in onnxruntime."""

import numpy as np
import onnxruntime
import pytest
import torch

from pipelines.adapters.export import check_parity, export_and_check
from pipelines.adapters.registry import SERVING_CODE, write_model_files
from pipelines.adapters.settings import PROJECT_ROOT
from unlearning.models import build_model

ODD = (5, 3, 97, 131)


@pytest.fixture(scope="module", params=[0, 3], ids=["plain", "prompts"])
def restorer(request):
    torch.manual_seed(0)
    return build_model("restorer-unet", {"width": 8, "levels": 2, "prompts": request.param}).eval()


@pytest.mark.parametrize("shape", [ODD, (1, 3, 97, 131), (2, 3, 33, 18), (1, 3, 3, 2), (1, 3, 1, 1)])
def test_output_has_the_input_size(restorer, shape):
    with torch.no_grad():
        assert restorer(torch.rand(*shape)).shape == shape


def test_each_image_in_a_batch_is_restored_as_if_alone(restorer):
    images = torch.rand(*ODD)
    with torch.no_grad():
        batch = restorer(images)
        alone = torch.cat([restorer(image[None]) for image in images])
    assert torch.allclose(batch, alone, atol=1e-5)


def test_sizes_already_a_multiple_are_not_padded():
    # So weights trained on 32 px patches before padding existed behave exactly as they did.
    from unlearning.models.restorer import pad_to_multiple

    images = torch.rand(2, 3, 32, 48)
    assert torch.equal(pad_to_multiple(images, 4), images)


def test_padding_reflects_then_replicates_when_the_image_is_too_small():
    from unlearning.models.restorer import pad_to_multiple

    image = torch.arange(6.0).reshape(1, 1, 2, 3)
    padded = pad_to_multiple(image, 4)
    assert padded.shape == (1, 1, 4, 4)
    assert padded[0, 0, 0].tolist() == [0.0, 1.0, 2.0, 1.0]  # reflect
    assert padded[0, 0, :, 0].tolist() == [0.0, 3.0, 0.0, 0.0]  # reflect by 1 (all a 2-row image allows), then replicate


@pytest.fixture(scope="module")
def exported(restorer, tmp_path_factory):
    result = export_and_check(restorer, torch.rand(4, 3, 32, 32), tmp_path_factory.mktemp("onnx") / "model.onnx")
    return restorer, result


@pytest.mark.parametrize("shape", [ODD, (1, 3, 97, 131), (3, 3, 50, 7), (1, 3, 1, 1)])
def test_onnx_matches_torch_at_odd_sizes(exported, shape):
    model, result = exported
    assert check_parity(model, result.path, torch.rand(*shape)) <= 1e-4


def test_onnx_graph_leaves_batch_height_and_width_free(exported):
    _, result = exported
    dims = onnxruntime.InferenceSession(str(result.path)).get_inputs()[0].shape
    assert dims[1] == 3 and all(isinstance(d, str) for d in (dims[0], dims[2], dims[3]))


def test_mlflow_pyfunc_serves_an_odd_sized_batch(restorer, tmp_path):
    import mlflow.pyfunc

    weights, architecture, _ = write_model_files(restorer, "restorer-unet", tmp_path / "files")
    mlflow.pyfunc.save_model(
        path=str(tmp_path / "pyfunc"),
        python_model=str(SERVING_CODE),
        artifacts={"weights": str(weights), "architecture": str(architecture)},
        code_paths=[str(PROJECT_ROOT / "unlearning")],
        pip_requirements=["torch", "safetensors", "numpy"],
    )
    served = mlflow.pyfunc.load_model(str(tmp_path / "pyfunc"))
    images = np.random.default_rng(0).random(ODD, dtype=np.float32)
    restored = served.predict(images)
    with torch.no_grad():
        expected = restorer(torch.from_numpy(images)).numpy()
    assert restored.shape == ODD
    assert np.max(np.abs(restored - expected)) <= 1e-5
