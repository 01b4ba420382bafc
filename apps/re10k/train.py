"""RealEstate10K experiments of "A Lesson in Splats": Flash3D-style teacher → stage 1 (bootstrap) → stage 2
(multi-step) → evaluation on Flash3D's protocol (+5 / +10 / ±30 frames).

    uv run apps/re10k/train.py                                # cpu-demo: built-in synthetic rooms, ~15 min on 2 cores
    uv run apps/re10k/train.py --preset re10k --data /path/to/re10k --data.split-file test_files.txt
    uv run apps/re10k/train.py --preset re10k --data /path/to/re10k --teacher-weights teacher.safetensors
    torchrun --nproc-per-node 4 apps/re10k/train.py --preset re10k --data /path/to/re10k   # 4 GPUs (DDP)
"""

import sys

from app_re10k import APP
from splat_apps import train_main

if __name__ == "__main__":
    sys.exit(train_main(APP, __doc__))
