"""Every test process of the repository (and the processes its tests start) runs with downloads off: a missing
weight file is a one-line error, never a fetch (splat_train.lpips_weights)."""

import os

os.environ["LESSON_SPLATS_OFFLINE"] = "1"
