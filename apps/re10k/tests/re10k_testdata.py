"""What the RealEstate10K tests share (a helper module: a unique name, since pytest imports every test folder's
helpers into one process): the small synthetic dataset's options, and reprojection of a frame into another."""

import numpy as np

from app_re10k.synthetic import SyntheticOptions

SMALL = SyntheticOptions(
    height=32, width=48, train_scenes=3, test_scenes=2, frames=40, scenes_per_chunk=2, split_every=10
)


def reproject(
    depth: np.ndarray, K_source: np.ndarray, K_target: np.ndarray, source_to_target: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the pixel centres of a source frame, at their camera depth [height width], land in a target frame: its
    pixel coordinates u, v and camera depth z (flat), for pixel intrinsics and the 4×4 source-to-target camera map."""
    height, width = depth.shape
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    pixels = np.stack([cols + 0.5, rows + 0.5, np.ones((height, width))], axis=-1).reshape(-1, 3)
    points = pixels @ np.linalg.inv(K_source).T * depth.reshape(-1, 1)
    projected = (points @ source_to_target[:3, :3].T + source_to_target[:3, 3]) @ K_target.T
    z = projected[:, 2]
    return projected[:, 0] / np.maximum(z, 1e-9), projected[:, 1] / np.maximum(z, 1e-9), z
