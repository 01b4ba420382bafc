"""apps/co3d modules import each other as plain siblings (`uv run apps/co3d/train.py` puts apps/co3d first on
sys.path); the tests do the same."""

import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[1]
if str(APP) not in sys.path:
    sys.path.insert(0, str(APP))
