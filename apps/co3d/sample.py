"""Sample 3D Gaussians from a trained Co3D student: an input frame → N samples → `.ply` files and a turntable
animation per sample (and the teacher's prediction, for comparison).

    uv run apps/co3d/sample.py runs/co3d-cpu-demo                          # first frame of the first test sequence
    uv run apps/co3d/sample.py runs/co3d-hydrant --sequence-index 5 --num-samples 8
    uv run apps/co3d/sample.py runs/co3d-hydrant --image hydrant.png --focal 2.4 --origin-distance 2.1

An `--image` must be square (crop it centred on the principal point first, as the preprocessing does), with the
object on black (an alpha channel is composited on black); `--focal` is its focal length in NDC units (focal in
pixels / half the image side) and `--origin-distance` the depth of the object's centre along the optical axis in the
dataset's normalised units (default: the mean over the evaluation split's input frames). The turntable circles the
object's centre (the world origin) about the world's up axis (for an image: the camera's up). Samples differ only by
their starting noise (`--seed`).
"""

import sys

from app_co3d import APP
from splat_apps import sample_main

if __name__ == "__main__":
    sys.exit(sample_main(APP, __doc__))
