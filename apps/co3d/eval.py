"""Evaluate a Co3D run: teacher vs student (one sample, and the mean over N samples) with PSNR / SSIM / LPIPS on the
Splatter Image Co3D protocol (`app_co3d.protocol`): test split; input = the first frame of each sequence; targets =
every other frame whose ground truth is not all black; full images on a black background; per-sequence means over
novel views, then the mean over sequences; the input view reported separately.

    uv run apps/co3d/eval.py runs/co3d-cpu-demo                    # evaluate a run directory
    uv run apps/co3d/eval.py runs/co3d-hydrant --max-sequences 20  # a subset

Writes `eval/<split>/scores.json` (per sequence), `eval/<split>/table.md` and comparison grids (input | teacher |
student samples | ground truth) as PNG.
"""

import sys

from app_co3d import APP
from splat_apps import eval_main

if __name__ == "__main__":
    sys.exit(eval_main(APP, __doc__))
