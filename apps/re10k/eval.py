"""Evaluate a RealEstate10K run on Flash3D's protocol: teacher vs student (one sample, and N samples) on the rows
`key src tgt5 tgt10 tgt_rand` of a split file, scored per target slot (+5, +10, ±30; the source view on its own) on
5%-border-cropped images at the run's image size, on grey.

    uv run apps/re10k/eval.py runs/re10k-cpu-demo                  # evaluate a run directory
    uv run apps/re10k/eval.py runs/re10k --max-rows 500 --split-file test_files.txt

Writes `eval/<split>/scores.json`, `table.md` and comparison grids (one row per target slot).
"""

import sys

from app_re10k import APP
from splat_apps import eval_main

if __name__ == "__main__":
    sys.exit(eval_main(APP, __doc__))
