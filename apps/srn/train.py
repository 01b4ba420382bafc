"""ShapeNet-SRN experiments of "A Lesson in Splats": teacher → stage 1 (bootstrap) → stage 2 (multi-step) → evaluation.

uv run apps/srn/train.py                                  # cpu-demo: built-in synthetic data, ~15 min on 2 cores
uv run apps/srn/train.py --preset cars --data /path/to/srn_cars
uv run apps/srn/train.py --preset cars --data /path/to/srn_cars --teacher-checkpoint model_cars.pth
torchrun --nproc-per-node 4 apps/srn/train.py --preset cars --data /path/to/srn_cars   # 4 GPUs (DDP)
"""

import sys

from app_srn import APP
from splat_apps import train_main

if __name__ == "__main__":
    sys.exit(train_main(APP, __doc__))
