"""When a promoted request leaves the training data alone, and the reason its record gives."""

from types import SimpleNamespace

from pipelines.adapters.settings import PROJECT_ROOT, Settings
from pipelines.flow.deletion import erasure_skip_reason

SERVED = SimpleNamespace(version="3", lineage=object())
EXAMPLES = [object()]


def test_the_code_checkout_is_never_committed_to_without_an_explicit_branch(tmp_path):
    reason = erasure_skip_reason(Settings(home=tmp_path, data_repo=PROJECT_ROOT), SERVED, EXAMPLES)
    assert "ERASURE_DATA_BRANCH" in reason
    assert erasure_skip_reason(Settings(home=tmp_path, data_repo=PROJECT_ROOT, data_branch="erasures"), SERVED, EXAMPLES) is None


def test_a_data_repository_of_its_own_is_erased_into(tmp_path):
    assert erasure_skip_reason(Settings(home=tmp_path, data_repo=tmp_path), SERVED, EXAMPLES) is None


def test_each_reason_to_skip_is_named(tmp_path):
    settings = Settings(home=tmp_path, data_repo=tmp_path)
    assert "ERASURE_ERASE_DATA" in erasure_skip_reason(settings.model_copy(update={"erase_data": False}), SERVED, EXAMPLES)
    assert "lineage" in erasure_skip_reason(settings, SimpleNamespace(version="3", lineage=None), EXAMPLES)
    assert "no training examples" in erasure_skip_reason(settings, SERVED, [None])
