from pathlib import Path

import pytest
from co3d_fixtures import write_hydrants


@pytest.fixture
def hydrants(tmp_path: Path) -> Path:
    """A preprocessed co3d_hydrant_for_gs folder: the two `co3d_fixtures.HYDRANTS` sequences in every split."""
    return write_hydrants(tmp_path / "co3d_hydrant_for_gs")
