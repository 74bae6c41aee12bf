import pytest

from tests.digits_world import DigitsWorld, make_digits_world
from tests.gan_world import GanWorld, make_gan_world
from tests.world_cache import shared_world


@pytest.fixture(scope="session")
def digits_world() -> DigitsWorld:
    return make_digits_world(seed=0)


@pytest.fixture(scope="session")
def gan_world(tmp_path_factory) -> GanWorld:
    return shared_world("gan-seed0", lambda: make_gan_world(seed=0), tmp_path_factory)
