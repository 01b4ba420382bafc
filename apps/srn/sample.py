"""Sample 3D Gaussians from a trained SRN student: an image (+ optional camera) → N samples → `.ply` files and a
turntable animation per sample (and the teacher's prediction, for comparison).

    uv run apps/srn/sample.py runs/srn-cpu-demo                       # input view of the first test object
    uv run apps/srn/sample.py runs/srn-cars --image car.png --num-samples 8
    uv run apps/srn/sample.py runs/srn-cars --image car.png --intrinsics intrinsics.txt --format mp4

The image is resized to the model's resolution and composited on white if it has alpha; without `--intrinsics` (an
SRN `intrinsics.txt`) the dataset head's fixed field of view is used. Samples differ only by their starting noise
(`--seed`, then seed + 1, ...).
"""

import sys

from app_srn import APP
from splat_apps import sample_main

if __name__ == "__main__":
    sys.exit(sample_main(APP, __doc__))
