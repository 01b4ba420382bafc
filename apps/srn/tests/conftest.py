"""A tiny synthetic SRN dataset shared by the tests (generated once per session)."""

from pathlib import Path

import pytest

from app_srn.synthetic import SyntheticOptions, generate_synthetic

TINY = SyntheticOptions(
    resolution=16,
    train_objects=2,
    val_objects=1,
    test_objects=2,
    train_views=6,
    val_views=5,
    test_views=9,
    seed=3,
    supersampling=2,
)


@pytest.fixture(scope="session")
def tiny_options() -> SyntheticOptions:
    return TINY


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic SRN dataset (generated once per session; tests must not modify it)."""
    return generate_synthetic(TINY, tmp_path_factory.mktemp("synthetic"))
