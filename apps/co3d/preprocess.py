"""Raw Co3D v2 → the Splatter Image preprocessed layout (`app_co3d.preprocess`), without PyTorch3D:
`uv run apps/co3d/preprocess.py --co3d-root /data/co3d --out /data/co3d_gs` (`--help` for every option)."""

import sys

from app_co3d.preprocess import main

if __name__ == "__main__":
    sys.exit(main())
