"""Co3D hydrant experiments of "A Lesson in Splats": teacher → stage 1 (bootstrap) → stage 2 (multi-step) → evaluation.

    uv run apps/co3d/train.py                                  # cpu-demo: built-in synthetic data, ~15 min on 2 cores
    uv run apps/co3d/train.py --preset hydrant --data /data/co3d_gs/co3d_hydrant_for_gs
    uv run apps/co3d/train.py --preset hydrant --data /data/co3d_gs/co3d_hydrant_for_gs \
        --teacher-checkpoint model_hydrants.pth               # the official Splatter Image teacher
    torchrun --nproc-per-node 4 apps/co3d/train.py --preset hydrant --data /data/co3d_gs/co3d_hydrant_for_gs  # 4 GPUs
"""

import sys

from app_co3d import APP
from splat_apps import train_main

if __name__ == "__main__":
    sys.exit(train_main(APP, __doc__))
