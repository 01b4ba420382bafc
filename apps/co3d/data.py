"""Check a preprocessed Co3D dataset: `uv run apps/co3d/data.py --check-data PATH` lists every problem with its file."""

import sys

from app_co3d.data import main

if __name__ == "__main__":
    sys.exit(main())
