"""The PromptIR-style prompt block: image-chosen mixing of learned prompts, starting as the identity."""

import torch

from unlearning.models import build_model
from unlearning.models.restorer import PromptBlock


def test_a_fresh_prompt_block_leaves_features_unchanged():
    features = torch.rand(2, 8, 5, 7)
    assert torch.equal(PromptBlock(8, 3)(features), features)


def test_the_prompt_mix_depends_on_each_image():
    torch.manual_seed(0)
    block = PromptBlock(8, 3)
    torch.nn.init.normal_(block.modulate.weight)
    dark, bright = torch.zeros(1, 8, 4, 4), torch.ones(1, 8, 4, 4)
    together = block(torch.cat([dark, bright]))
    assert torch.allclose(together[0:1], block(dark), atol=1e-6) and not torch.allclose(together[0] - dark[0], together[1] - bright[0])


def test_prompts_zero_builds_the_plain_unet_so_older_weights_still_load():
    plain = build_model("restorer-unet", {"width": 8, "levels": 2})
    explicit = build_model("restorer-unet", {"width": 8, "levels": 2, "prompts": 0})
    assert plain.state_dict().keys() == explicit.state_dict().keys()
    assert not any(key.startswith("prompt") for key in plain.state_dict())
    prompted = build_model("restorer-unet", {"width": 8, "levels": 2, "prompts": 4})
    assert {key.split(".")[0] for key in prompted.state_dict()} - {key.split(".")[0] for key in plain.state_dict()} == {"prompt"}
