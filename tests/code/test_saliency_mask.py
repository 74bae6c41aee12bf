"""SalUn's saliency mask: exactly the most salient weights may change, never a zero-gradient one."""

import copy

import torch
from torch import nn

from unlearning.data.pairs import PairSet
from unlearning.methods import UnlearningProblem, create_method
from unlearning.methods.salun import saliency_mask
from unlearning.models import build_model
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


def restoration_problem(model) -> UnlearningProblem:
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(24, 3, 8, 8, generator=generator)
    noisy = (images + 0.2 * torch.randn(images.shape, generator=generator)).clamp(0, 1)
    return UnlearningProblem(model=copy.deepcopy(model), forget=PairSet("forget", noisy[:12], images[:12]),
                             retain=PairSet("retain", noisy[12:], images[12:]), device=CPU)


def trained_restorer() -> nn.Module:
    """A tiny restorer that denoises better than doing nothing, so bounded ascent has something to undo."""
    torch.manual_seed(0)
    model = build_model("restorer-unet", {"width": 4, "levels": 1})
    problem = restoration_problem(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    inputs, targets = torch.cat([problem.forget.inputs, problem.retain.inputs]), torch.cat([problem.forget.targets, problem.retain.targets])
    for _ in range(60):
        optimizer.zero_grad()
        problem.task.loss(model(inputs), targets).mean().backward()
        optimizer.step()
    return model.eval()


def weights_moved(model: nn.Module, base: nn.Module) -> int:
    return int(sum((a != b).sum().item() for a, b in zip(model.parameters(), base.parameters())))


def run(name: str, problem: UnlearningProblem, **params) -> nn.Module:
    method = create_method(name, {"steps": 5, "learning_rate": 1e-3, "batch_size": 4, **params}, task_kind="restoration")
    method.run(problem, show_progress=False)
    return problem.model


def test_on_a_restorer_salun_with_every_reachable_weight_masked_in_is_bounded_ascent():
    # Why bench.plateau saw SalUn (mask 0.5) give bounded ascent's numbers: ReLU channels that never fire on the
    # forget set get exactly zero gradient (~60 % of the demo restorer's weights),
    # so a 0.5 mask held every weight the forget loss reaches, and ascent moves no other weight on its own
    # (only the retain term does, and a dead channel ascent revives). A sparser mask is a different method.
    base = trained_restorer()
    # Two steps: later, ascent can revive a dead channel (upstream weights moved), which a fixed mask keeps frozen;
    # on the demo restorer that left SalUn within 0.01 dB of ascent after 200 steps.
    ascent = run("gradient_ascent", restoration_problem(base), bound="do_nothing", retain_weight=0.0, steps=2)
    full = run("salun", restoration_problem(base), mask_fraction=1.0, retain_weight=0.0, steps=2)
    sparse = run("salun", restoration_problem(base), mask_fraction=0.1, retain_weight=0.0)
    mask = saliency_mask(restoration_problem(base), 1.0, batch_size=4)
    held = sum(m.sum().item() for m in mask.values()) / sum(p.numel() for p in base.parameters())
    assert 0.2 < held < 0.9  # the dead channels are left out of even a "100 %" mask
    assert all(torch.equal(a, b) for a, b in zip(ascent.parameters(), full.parameters()))
    total = sum(p.numel() for p in base.parameters())
    assert weights_moved(ascent, base) > 0.2 * total  # not vacuous: bounded ascent pushed (the base beats doing nothing)
    assert 0 < weights_moved(sparse, base) <= round(0.1 * total)
    assert not all(torch.equal(a, b) for a, b in zip(ascent.parameters(), sparse.parameters()))

