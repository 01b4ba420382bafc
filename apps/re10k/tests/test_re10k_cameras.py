"""Camera conventions: the 18-number rows, normalized K → pixels, relative poses (RealEstate10K's world-to-camera
matrices through `splat_apps.views.relative_world_to_cam`, as the reader uses it), a point projected through them."""

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from app_re10k.data import ChunkDataset, cameras_from_rows, load_example, pixel_intrinsics, rows_from_cameras
from app_re10k.synthetic import generate_scene, render_depth
from splat_apps.views import relative_world_to_cam
from splat_render import intrinsics, look_at, rigid_inverse

seeds = st.integers(0, 2**31 - 1)


def random_rigid(generator: torch.Generator, count: int) -> torch.Tensor:
    """Random rotations (normalized Gaussian quaternions) and translations as [count, 4, 4] float64."""
    q = torch.nn.functional.normalize(torch.randn(count, 4, generator=generator, dtype=torch.float64), dim=-1)
    w, x, y, z = q.unbind(-1)
    rotation = torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(count, 3, 3)
    pose = torch.eye(4, dtype=torch.float64).repeat(count, 1, 1)
    pose[:, :3, :3] = rotation
    pose[:, :3, 3] = torch.randn(count, 3, generator=generator, dtype=torch.float64) * 2
    return pose


def project(K: torch.Tensor, world_to_cam: torch.Tensor, point: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates and depth of a world point."""
    camera = (world_to_cam @ torch.cat([point, point.new_ones(1)]))[:3]
    pixel = K @ camera
    return pixel[:2] / pixel[2], camera[2]


def test_camera_row_layout_matches_the_realestate10k_txt_columns() -> None:
    # fx fy cx cy 0 0, then [R|t] row-major: row r of the 3x4 matrix is columns 6 + 4r .. 9 + 4r
    row = torch.tensor([[0.47, 0.84, 0.5, 0.49, 0, 0, *range(1, 13)]], dtype=torch.float64)
    K, world_to_cam = cameras_from_rows(row)
    torch.testing.assert_close(K[0], torch.tensor([[0.47, 0, 0.5], [0, 0.84, 0.49], [0, 0, 1]], dtype=torch.float64))
    expected = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [0, 0, 0, 1]], dtype=torch.float64)
    torch.testing.assert_close(world_to_cam[0], expected)


@settings(max_examples=20, deadline=None)
@given(seed=seeds, views=st.integers(1, 6))
def test_rows_round_trip_through_cameras(seed: int, views: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randn(views, 18, generator=generator, dtype=torch.float64)
    rows[:, 4:6] = 0
    torch.testing.assert_close(rows_from_cameras(*cameras_from_rows(rows)), rows, rtol=0, atol=0)


def test_normalized_intrinsics_scale_per_axis_to_pixels() -> None:
    normalized = torch.tensor([[0.5, 0.0, 0.5], [0.0, 0.75, 0.5], [0.0, 0.0, 1.0]])
    K = pixel_intrinsics(normalized, 64, 96)
    torch.testing.assert_close(K, torch.tensor([[48.0, 0.0, 48.0], [0.0, 48.0, 32.0], [0.0, 0.0, 1.0]]))
    # the principal point (0.5, 0.5) is the image centre: the corner between the four central pixels
    pixel, _ = project(
        K.double(), torch.eye(4, dtype=torch.float64), torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64)
    )
    torch.testing.assert_close(pixel, torch.tensor([48.0, 32.0], dtype=torch.float64))
    # a 16:9 camera resized to 3:2 (Flash3D's 360x640 -> 256x384) keeps the normalized K, so both axes stretch
    torch.testing.assert_close(pixel_intrinsics(normalized, 256, 384)[:2, :2], torch.diag(torch.tensor([192.0, 192.0])))
    torch.testing.assert_close(pixel_intrinsics(normalized, 360, 640)[:2, :2], torch.diag(torch.tensor([320.0, 270.0])))


@settings(max_examples=25, deadline=None)
@given(seed=seeds, views=st.integers(1, 5))
def test_relative_cameras_make_the_source_the_identity_and_ignore_the_world_frame(seed: int, views: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    world_to_cam = random_rigid(generator, views)
    relative = relative_world_to_cam(rigid_inverse(world_to_cam[0]), world_to_cam)
    torch.testing.assert_close(relative[0], torch.eye(4, dtype=torch.float64))
    # moving the whole world (w2c_j -> w2c_j G for a rigid G) changes no relative pose
    change = random_rigid(generator, 1)[0]
    moved = world_to_cam @ change
    torch.testing.assert_close(relative_world_to_cam(rigid_inverse(moved[0]), moved), relative)
    # a world point seen by the source at p_src is seen by camera j at relative_j p_src
    point = torch.randn(4, generator=generator, dtype=torch.float64)
    point[3] = 1
    torch.testing.assert_close(relative @ (world_to_cam[0] @ point), world_to_cam @ point)


def test_a_point_in_front_of_the_source_projects_where_expected_in_the_target() -> None:
    # source at the origin looking down +z (OpenCV), target 1 m to the right of it and 2 m forward; then the
    # whole scene is moved by a random rigid transform, which the relative cameras must undo
    K = intrinsics(100.0, 100.0, 64.0, 48.0, dtype=torch.float64)
    source_c2w = torch.eye(4, dtype=torch.float64)
    target_c2w = torch.eye(4, dtype=torch.float64)
    target_c2w[:3, 3] = torch.tensor([1.0, 0.0, 2.0])
    world = random_rigid(torch.Generator().manual_seed(7), 1)[0]  # camera frames expressed in a different world
    world_to_cam = rigid_inverse(torch.stack([world @ source_c2w, world @ target_c2w]))
    relative = relative_world_to_cam(rigid_inverse(world_to_cam[0]), world_to_cam)
    point_in_source = torch.tensor([0.0, 0.5, 5.0], dtype=torch.float64)  # 5 m ahead, 0.5 m below the axis
    pixel, depth = project(K, relative[1], point_in_source)
    # in the target the point is 1 m to the left (x = -1) and 3 m ahead: u = 64 + 100 * (-1 / 3), v = 48 + 100 * 0.5/3
    torch.testing.assert_close(pixel, torch.tensor([64 - 100 / 3, 48 + 50 / 3], dtype=torch.float64))
    torch.testing.assert_close(depth, torch.tensor(3.0, dtype=torch.float64))
    # and the source camera sees it on its own ray: u = 64, v = 48 + 100 * 0.5 / 5
    torch.testing.assert_close(
        project(K, relative[0], point_in_source)[0], torch.tensor([64.0, 58.0], dtype=torch.float64)
    )


def test_look_at_camera_written_as_rows_projects_its_target_to_the_image_centre() -> None:
    eye, target = (
        torch.tensor([1.0, -2.0, 1.5], dtype=torch.float64),
        torch.tensor([0.3, 0.4, 1.2], dtype=torch.float64),
    )
    c2w = look_at(eye, target, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    normalized = torch.tensor([[[0.6, 0, 0.5], [0, 0.9, 0.5], [0, 0, 1]]], dtype=torch.float64)
    rows = rows_from_cameras(normalized, rigid_inverse(c2w)[None])
    K_norm, world_to_cam = cameras_from_rows(rows)
    pixel, depth = project(pixel_intrinsics(K_norm[0], 64, 96), world_to_cam[0], target)
    torch.testing.assert_close(pixel, torch.tensor([48.0, 32.0], dtype=torch.float64))
    torch.testing.assert_close(depth, torch.linalg.norm(target - eye))


def _photometric_error(
    images: torch.Tensor, K: torch.Tensor, depth_source: np.ndarray, relative: torch.Tensor
) -> tuple[float, float]:
    """Mean colour difference between source pixels and their reprojections into view 1 (over the points landing
    inside view 1), and the fraction of source pixels landing inside it."""
    height, width = depth_source.shape
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    pixels = np.stack([cols + 0.5, rows + 0.5, np.ones_like(rows, dtype=float)], axis=-1).reshape(-1, 3)
    K = K.double().numpy()
    points = (pixels @ np.linalg.inv(K[0]).T) * depth_source.reshape(-1, 1)
    homogeneous = np.concatenate([points, np.ones((len(points), 1))], axis=1)
    camera = homogeneous @ relative[1].double().numpy().T
    projected = camera[:, :3] @ K[1].T
    z = projected[:, 2]
    u, v = projected[:, 0] / np.maximum(z, 1e-9), projected[:, 1] / np.maximum(z, 1e-9)
    inside = (z > 0.1) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    if not inside.any():
        return math.inf, 0.0
    source = images[0].numpy().transpose(1, 2, 0).reshape(-1, 3)
    target = images[1].numpy().transpose(1, 2, 0)
    sampled = target[np.clip(v, 0, height - 1).astype(int), np.clip(u, 0, width - 1).astype(int)]
    return float(np.abs(sampled - source).mean(axis=1)[inside].mean()), float(inside.mean())


def test_synthetic_frames_read_back_are_photometrically_consistent_under_the_relative_cameras(small_dataset) -> None:
    """End to end through the chunk reader: source pixels, unprojected with the generator's depth and reprojected with
    the reader's relative cameras and pixel K, land on the same colours in a target frame 8 frames away (shading is
    view-independent); transposed rotations (a w2c/c2w mix-up) or OpenGL axes (y up, z backward) do not."""
    options = small_dataset.options
    dataset = ChunkDataset(small_dataset.chunks, "test")
    scene = generate_scene(options, "test", 0)
    sequence = dataset[scene.key]
    example = load_example(sequence, [12, 20], (options.height, options.width))
    images, reader_K = example.target_images, example.target_cameras.K[0]
    relative = example.target_cameras.world_to_cam[0]  # views 12 (the source, rendered too) and 20
    torch.testing.assert_close(example.input_camera.world_to_cam[0, 0], torch.eye(4))
    K = pixel_intrinsics(scene.path.intrinsics[12:13], options.height, options.width)
    depth = render_depth(scene.scene, scene.path.cam_to_world[12:13], K, options.height, options.width)[0].numpy()
    good, overlap = _photometric_error(images, reader_K, depth, relative)
    assert overlap > 0.5
    transposed = relative.clone()
    transposed[1, :3, :3] = transposed[1, :3, :3].T
    opengl = relative.clone()
    opengl[1] = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0])) @ opengl[1]
    assert good < 0.06
    for wrong in (transposed, opengl):
        error, wrong_overlap = _photometric_error(images, reader_K, depth, wrong)
        assert error > 2 * good or wrong_overlap < 0.1
