"""RealEstate10K's camera conventions: the 18-number rows, normalized K → pixels, and the frames read back through the
reader, photometrically consistent under its relative cameras (`splat_apps.views`', tested in the toolkit)."""

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from re10k_testdata import reproject

from app_re10k.data import ChunkDataset, cameras_from_rows, load_example, pixel_intrinsics, rows_from_cameras
from app_re10k.synthetic import generate_scene, render_depth

DOUBLE = {"dtype": torch.float64}


def test_camera_row_layout_matches_the_realestate10k_txt_columns() -> None:
    # fx fy cx cy 0 0, then [R|t] row-major: row r of the 3x4 matrix is columns 6 + 4r .. 9 + 4r
    K, world_to_cam = cameras_from_rows(torch.tensor([[0.47, 0.84, 0.5, 0.49, 0, 0, *range(1, 13)]], **DOUBLE))
    torch.testing.assert_close(K[0], torch.tensor([[0.47, 0, 0.5], [0, 0.84, 0.49], [0, 0, 1]], **DOUBLE))
    expected = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [0, 0, 0, 1]], **DOUBLE)
    torch.testing.assert_close(world_to_cam[0], expected)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), views=st.integers(1, 6))
def test_rows_round_trip_through_cameras(seed: int, views: int) -> None:
    rows = torch.randn(views, 18, generator=torch.Generator().manual_seed(seed), **DOUBLE)
    rows[:, 4:6] = 0
    torch.testing.assert_close(rows_from_cameras(*cameras_from_rows(rows)), rows, rtol=0, atol=0)


def test_normalized_intrinsics_scale_per_axis_to_pixels() -> None:
    normalized = torch.tensor([[0.5, 0.0, 0.5], [0.0, 0.75, 0.5], [0.0, 0.0, 1.0]])
    K = pixel_intrinsics(normalized, 64, 96)
    torch.testing.assert_close(K, torch.tensor([[48.0, 0.0, 48.0], [0.0, 48.0, 32.0], [0.0, 0.0, 1.0]]))
    # the principal point (0.5, 0.5) is the image centre: the corner between the four central pixels
    pixel = K @ torch.tensor([0.0, 0.0, 3.0])  # a point on the optical axis
    torch.testing.assert_close(pixel[:2] / pixel[2], torch.tensor([48.0, 32.0]))
    # a 16:9 camera resized to 3:2 (Flash3D's 360x640 -> 256x384) keeps the normalized K, so both axes stretch
    torch.testing.assert_close(pixel_intrinsics(normalized, 256, 384)[:2, :2], torch.diag(torch.tensor([192.0, 192.0])))
    torch.testing.assert_close(pixel_intrinsics(normalized, 360, 640)[:2, :2], torch.diag(torch.tensor([320.0, 270.0])))


def _photometric_error(
    images: torch.Tensor, K: torch.Tensor, depth_source: np.ndarray, relative: torch.Tensor
) -> tuple[float, float]:
    """Mean colour difference between source pixels and their reprojections into view 1 (over the points landing
    inside view 1), and the fraction of source pixels landing inside it."""
    height, width = depth_source.shape
    K = K.double().numpy()
    u, v, z = reproject(depth_source, K[0], K[1], relative[1].double().numpy())
    inside = (z > 0.1) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    if not inside.any():
        return math.inf, 0.0
    source = images[0].numpy().transpose(1, 2, 0).reshape(-1, 3)
    target = images[1].numpy().transpose(1, 2, 0)
    sampled = target[np.clip(v, 0, height - 1).astype(int), np.clip(u, 0, width - 1).astype(int)]
    return float(np.abs(sampled - source).mean(axis=1)[inside].mean()), float(inside.mean())


def test_synthetic_frames_read_back_are_photometrically_consistent_under_the_relative_cameras(small_dataset) -> None:
    """Through the chunk reader: source pixels, unprojected with the generator's depth and reprojected with the
    reader's relative cameras and pixel K, land on the same colours in a target frame 8 frames away (shading is
    view-independent); transposed rotations (a w2c/c2w mix-up) or OpenGL axes (y up, z backward) do not."""
    options = small_dataset.options
    scene = generate_scene(options, "test", 0)
    example = load_example(
        ChunkDataset(small_dataset.chunks, "test")[scene.key], [12, 20], (options.height, options.width)
    )
    images, reader_K = example.target_images, example.target_cameras.K[0]
    relative = example.target_cameras.world_to_cam[0]  # views 12 (the source, rendered too) and 20
    K = pixel_intrinsics(scene.path.intrinsics[12:13], options.height, options.width)
    depth = render_depth(scene.scene, scene.path.cam_to_world[12:13], K, options.height, options.width)[0].numpy()
    good, overlap = _photometric_error(images, reader_K, depth, relative)
    assert overlap > 0.5 and good < 0.06
    transposed = relative.clone()
    transposed[1, :3, :3] = transposed[1, :3, :3].T
    opengl = relative.clone()
    opengl[1] = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0])) @ opengl[1]
    for wrong in (transposed, opengl):
        error, wrong_overlap = _photometric_error(images, reader_K, depth, wrong)
        assert error > 2 * good or wrong_overlap < 0.1
