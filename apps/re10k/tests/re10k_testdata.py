"""The small synthetic dataset the RealEstate10K tests share (a helper module: a unique name, since pytest imports
every test folder's helpers into one process)."""

from app_re10k.synthetic import SyntheticOptions

SMALL = SyntheticOptions(
    height=32, width=48, train_scenes=3, test_scenes=2, frames=40, scenes_per_chunk=2, split_every=10
)
