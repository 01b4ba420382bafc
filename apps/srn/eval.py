"""Evaluate an SRN run: teacher vs student (one sample, and N samples) with PSNR / SSIM / LPIPS on the
pixelNeRF / Splatter Image protocol (input view 64 of the 251-view test spiral, every other view a target; per-object
means over novel views, then the mean over objects; the input view reported separately).

    uv run apps/srn/eval.py runs/srn-cpu-demo                 # evaluate a run directory
    uv run apps/srn/eval.py runs/srn-cars --max-objects 100   # a subset

Writes `eval/<split>/scores.json` (per object), `eval/<split>/table.md` and comparison grids
(input | teacher | student samples | ground truth) as PNG.
"""

import sys

from app_srn import APP
from splat_apps import eval_main

if __name__ == "__main__":
    sys.exit(eval_main(APP, __doc__))
