"""Verification is a pure function of scores and thresholds."""

from unlearning.metrics import RestorationScores
from unlearning.verify import RestorationThresholds, verify_restoration


def scores(psnr, input_psnr=13.0):
    return RestorationScores(psnr=psnr, ssim=0.5, input_psnr=input_psnr, input_ssim=0.4)


BEFORE = {"haze": scores(21.0), "noise": scores(25.0, 20.0), "rain": scores(27.0, 20.0)}


def test_forgotten_at_do_nothing_level_and_kept_elsewhere_passes():
    after = {"haze": scores(13.2), "noise": scores(24.9, 20.0), "rain": scores(27.1, 20.0)}
    verdict = verify_restoration(BEFORE, after, ["haze"], RestorationThresholds())
    assert verdict.passed
    assert len(verdict.checks) == 3


def test_noop_unlearning_fails_the_forgetting_check():
    verdict = verify_restoration(BEFORE, BEFORE, ["haze"], RestorationThresholds())
    assert not verdict.passed
    failed = [c.name for c in verdict.checks if not c.passed]
    assert failed == ["forget.haze.psnr_gain_over_input_db"]


def test_retention_loss_beyond_tolerance_fails_and_says_which():
    after = {"haze": scores(13.0), "noise": scores(24.0, 20.0), "rain": scores(27.0, 20.0)}
    verdict = verify_restoration(BEFORE, after, ["haze"], RestorationThresholds(retain_max_drop_db=0.3))
    assert not verdict.passed
    assert any("retain.noise" in reason and "fails" in reason for reason in verdict.reasons)


def test_no_checks_is_not_a_pass():
    assert not verify_restoration({}, {}, [], RestorationThresholds()).passed
