"""SalUn's saliency mask: exactly the most salient weights may change, never a zero-gradient one."""

import copy

import torch
from torch import nn

from unlearning.data.pairs import PairSet
from unlearning.methods import UnlearningProblem, create_method
from unlearning.methods.salun import saliency_mask
from unlearning.tasks import Classification

CPU = torch.device("cpu")


def problem_with_dead_units() -> UnlearningProblem:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    with torch.no_grad():
        model[0].bias[:12] = -100.0  # 12 of 16 hidden units never fire: their weights get no gradient
    model.config = None
    inputs = torch.rand(40, 8)
    forget = PairSet("forget", inputs[:20], torch.randint(3, (20,)).float())
    retain = PairSet("retain", inputs[20:], torch.randint(3, (20,)).float())
    return UnlearningProblem(model=model, forget=forget, retain=retain, device=CPU, task=Classification(3))


def test_mask_keeps_the_requested_share_and_no_zero_gradient_weight():
    problem = problem_with_dead_units()
    mask = saliency_mask(problem, fraction=0.1, batch_size=8)
    total = sum(m.numel() for m in mask.values())
    assert sum(m.sum().item() for m in mask.values()) == round(0.1 * total)
    assert mask["0.weight"][:12].sum() == 0 and mask["0.bias"][:12].sum() == 0  # dead units: never salient
    # Asking for more than there is gradient for: only the weights with a gradient.
    everything = saliency_mask(problem, fraction=1.0, batch_size=8)
    assert 0 < sum(m.sum().item() for m in everything.values()) < total


def test_salun_moves_only_masked_weights():
    problem = problem_with_dead_units()
    original = copy.deepcopy(problem.model.state_dict())
    method = create_method("salun", {"steps": 20, "learning_rate": 1e-2, "mask_fraction": 0.1}, task_kind="classification")
    method.run(problem, show_progress=False)
    moved = {name: (problem.model.state_dict()[name] != original[name]).float() for name in original}
    assert all((moved[name] * (1 - method.mask[name])).sum() == 0 for name in original)
    assert sum(moved[name].sum().item() for name in original) > 0
