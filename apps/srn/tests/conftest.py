"""The app modules import each other as plain siblings (`uv run apps/srn/train.py` puts `apps/srn` first on
sys.path), so the tests do the same. The app modules are not a package named in `--jaxtyping-packages`, so their
annotations are shape-checked here with jaxtyping's import hook, installed before any of them is imported."""

import sys
from pathlib import Path

import pytest
from jaxtyping import install_import_hook

APP_DIR = Path(__file__).resolve().parents[1]
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))

install_import_hook(["data", "synthetic", "experiment", "eval", "train", "sample"], "beartype.beartype")

from synthetic import SyntheticOptions, generate_synthetic  # noqa: E402

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
