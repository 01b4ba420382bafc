"""Evaluate a RealEstate10K run on Flash3D's protocol: teacher vs student (one sample, and N samples).

Rows of a split file `key src tgt5 tgt10 tgt_rand` (Flash3D `splits/re10k_mine_filtered/test_files.txt`, or one
written by `protocol.py`); per row the source frame is the input and the three targets are rendered with cameras
relative to it, at the run's image size (Flash3D: 256×384), on grey. PSNR (unclamped prediction), SSIM and LPIPS-VGG
on both images cropped by 5% per side; means over all rows per target slot (+5, +10, random ±30), the source view as
its own slot.

    uv run apps/re10k/eval.py runs/re10k-cpu-demo                  # evaluate a run directory
    uv run apps/re10k/eval.py runs/re10k --max-rows 500 --split-file test_files.txt

Writes `eval/<split>/scores.json` (per slot, and per row under `per_item`), `eval/<split>/table.md` and comparison grids
(source | teacher | student samples | ground truth, one row per target slot) as PNG.
"""

import sys

from app_re10k import APP
from splat_apps import eval_main

if __name__ == "__main__":
    sys.exit(eval_main(APP, __doc__))
