"""GUIDE's baseline (its paper, table 1): the identity's latent is sent to w_avg, with the local loss only
(no adjacency, no global preservation). Everything else is GUIDE's loop."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from unlearning.methods.base import register
from unlearning.methods.guide import Guide, GuideParams


class GuideBaselineParams(GuideParams):
    target: Literal["opposite", "average"] = "average"
    adjacency_weight: float = Field(0.0, ge=0)
    global_weight: float = Field(0.0, ge=0)
    inverted_weight: float = Field(0.0, ge=0)


@register
class GuideBaseline(Guide):
    name = "guide_baseline"
    Params = GuideBaselineParams
