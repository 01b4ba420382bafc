"""apps/co3d modules import each other as plain siblings (`uv run apps/co3d/train.py` puts apps/co3d first on
sys.path); the tests do the same. The app modules are not a package named in `--jaxtyping-packages`, so their
annotations are shape-checked here with jaxtyping's import hook, installed before any of them is imported."""

import sys
from pathlib import Path

from jaxtyping import install_import_hook

APP = Path(__file__).resolve().parents[1]
if str(APP) not in sys.path:
    sys.path.insert(0, str(APP))

install_import_hook(["data", "preprocess", "synthetic", "experiment", "eval", "train", "sample"], "beartype.beartype")
