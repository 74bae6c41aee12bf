"""Forgetting and retention checks: pure functions from scores and thresholds to a verdict with reasons."""

from __future__ import annotations

from dataclasses import dataclass, field

from unlearning.metrics import RestorationScores


@dataclass(frozen=True)
class RestorationThresholds:
    """forget_max_gain_db: the forgotten degradation may be restored at most this much better than
    doing nothing (the oracle-free rule: a model retrained without it does no better than the input).
    retain_max_drop_db: every kept degradation may lose at most this much PSNR against the original."""

    forget_max_gain_db: float = 0.5
    retain_max_drop_db: float = 0.3


@dataclass(frozen=True)
class Check:
    name: str
    value: float
    threshold: float
    comparator: str
    passed: bool
    meaning: str


@dataclass(frozen=True)
class Verdict:
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [
            f"{c.name} = {c.value:.3f} {'meets' if c.passed else 'fails'} {c.comparator} {c.threshold:.3f}: {c.meaning}"
            for c in self.checks
        ]


def verify_restoration(
    before: dict[str, RestorationScores],
    after: dict[str, RestorationScores],
    forgotten: list[str],
    thresholds: RestorationThresholds,
) -> Verdict:
    """One forgetting check per forgotten degradation, one retention check per kept degradation."""
    checks = []
    for name in sorted(after):
        if name in forgotten:
            gain = after[name].psnr - after[name].input_psnr
            checks.append(
                Check(
                    name=f"forget.{name}.psnr_gain_over_input_db",
                    value=gain,
                    threshold=thresholds.forget_max_gain_db,
                    comparator="<=",
                    passed=gain <= thresholds.forget_max_gain_db,
                    meaning=f"{name} restored no better than leaving the input as is",
                )
            )
        else:
            drop = before[name].psnr - after[name].psnr
            checks.append(
                Check(
                    name=f"retain.{name}.psnr_drop_db",
                    value=drop,
                    threshold=thresholds.retain_max_drop_db,
                    comparator="<=",
                    passed=drop <= thresholds.retain_max_drop_db,
                    meaning=f"{name} restoration kept within tolerance of the original model",
                )
            )
    return Verdict(checks)
