import pytest

from tests.digits_world import DigitsWorld, make_digits_world


@pytest.fixture(scope="session")
def digits_world() -> DigitsWorld:
    return make_digits_world(seed=0)
