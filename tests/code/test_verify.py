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


from unlearning.verify import ClassificationScores, ClassificationThresholds, average_gap, verify_classification  # noqa: E402

ORIGINAL = ClassificationScores(forget_accuracy=0.96, retain_accuracy=0.99, test_accuracy=0.97, mia=0.62)


def test_classifier_that_forgot_the_class_and_kept_the_rest_passes():
    after = ClassificationScores(forget_accuracy=0.0, retain_accuracy=0.98, test_accuracy=0.955, mia=0.51)
    verdict = verify_classification(ORIGINAL, after, ClassificationThresholds(), reference_mia=0.50)
    assert verdict.passed and len(verdict.checks) == 3


def test_noop_on_a_classifier_fails_forgetting_and_mia():
    verdict = verify_classification(ORIGINAL, ORIGINAL, ClassificationThresholds(), reference_mia=0.50)
    failed = {c.name for c in verdict.checks if not c.passed}
    assert failed == {"forget.accuracy", "forget.mia_excess_over_reference"}


def test_kept_accuracy_drop_beyond_tolerance_fails():
    after = ClassificationScores(forget_accuracy=0.0, retain_accuracy=0.9, test_accuracy=0.93)
    verdict = verify_classification(ORIGINAL, after, ClassificationThresholds(test_max_drop=0.03))
    assert [c.name for c in verdict.checks if not c.passed] == ["retain.test_accuracy_drop"]


def test_average_gap_is_the_mean_absolute_difference_over_shared_metrics():
    gap = average_gap({"ua": 1.0, "ra": 0.9, "ta": 0.8, "mia": None}, {"ua": 0.9, "ra": 1.0, "ta": 0.8, "mia": 0.5})
    assert abs(gap - (0.1 + 0.1 + 0.0) / 3) < 1e-9
