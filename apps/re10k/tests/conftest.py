"""Put apps/re10k on sys.path (the app's modules import each other as siblings, as under `uv run apps/re10k/...`)
and shape-check them like the packages: the app modules are imported through jaxtyping's import hook with beartype.
Also a small synthetic dataset shared by the tests (generated once per session into a temporary folder)."""

import sys
from pathlib import Path

import pytest
from jaxtyping import install_import_hook

APP = Path(__file__).resolve().parents[1]
if str(APP) not in sys.path:
    sys.path.insert(0, str(APP))

# unsorted: ruff would call `data` first-party whenever a data/ folder exists at the repository root
# isort: off
APP_MODULES = ["data", "protocol", "synthetic", "experiment", "eval", "train", "sample"]
with install_import_hook(APP_MODULES, "beartype.beartype"):
    import data  # noqa: F401
    import protocol  # noqa: F401
    import synthetic
    import experiment  # noqa: F401
    import eval  # noqa: F401
    import train  # noqa: F401
    import sample  # noqa: F401
# isort: on

SMALL = synthetic.SyntheticOptions(
    height=32, width=48, train_scenes=3, test_scenes=2, frames=40, scenes_per_chunk=2, split_every=10
)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> synthetic.SyntheticDataset:
    return synthetic.generate_synthetic(SMALL, tmp_path_factory.mktemp("synthetic"))
