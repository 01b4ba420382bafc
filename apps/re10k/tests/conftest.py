"""A small synthetic RealEstate10K dataset shared by the tests (generated once per session into a temporary folder).
Shape checking of `app_re10k` comes from pytest's `--jaxtyping-packages` (see noxfile.py)."""

import pytest
from re10k_testdata import SMALL

from app_re10k.synthetic import SyntheticDataset, generate_synthetic


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    return generate_synthetic(SMALL, tmp_path_factory.mktemp("synthetic"))
