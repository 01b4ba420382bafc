"""Geometric and compositing properties of the renderer (torch backend, CPU)."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from render_strategies import (
    orbit_cameras,
    quat_multiply,
    random_gaussians,
    random_rigid,
    rotmat_to_quat,
    seeds,
)

from splat_render import Cameras, Gaussians, intrinsics, render
from splat_render.sh import rgb_to_sh_dc

SETTINGS = settings(max_examples=20, deadline=None)


def _render(gaussians: Gaussians, cameras: Cameras, background=0.3):
    return render(gaussians, cameras, background=background, backend="torch")


@SETTINGS
@given(seed=seeds, count=st.integers(2, 80))
def test_render_is_invariant_to_gaussian_order(seed: int, count: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    gaussians = random_gaussians(generator, 2, count, sh_degree=2)
    cameras = orbit_cameras(generator, 2, 2, 24, 24)
    permutation = torch.randperm(count, generator=generator)
    shuffled = gaussians.map(lambda t: t[:, permutation])
    a, b = _render(gaussians, cameras), _render(shuffled, cameras)
    for x, y in [(a.rgb, b.rgb), (a.alpha, b.alpha), (a.depth, b.depth)]:
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(seed=seeds, count=st.integers(1, 50))
def test_zero_opacity_gives_exactly_the_background(seed: int, count: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    gaussians = random_gaussians(generator, 1, count)
    gaussians = Gaussians(
        gaussians.means, gaussians.quats, gaussians.scales, torch.zeros_like(gaussians.opacities), gaussians.sh
    )
    cameras = orbit_cameras(generator, 1, 2, 16, 12)
    background = torch.rand(3, generator=generator, dtype=torch.float64)
    out = _render(gaussians, cameras, background)
    assert torch.equal(out.rgb, background.view(1, 1, 3, 1, 1).expand_as(out.rgb))
    assert torch.equal(out.alpha, torch.zeros_like(out.alpha))
    assert torch.equal(out.depth, torch.zeros_like(out.depth))


@SETTINGS
@given(seed=seeds, count=st.integers(1, 200))
def test_alpha_is_in_unit_interval_and_colour_is_a_convex_mix(seed: int, count: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    gaussians = random_gaussians(generator, 1, count, sh_degree=0, scale_range=(0.05, 0.8), opacity_range=(0.0, 1.0))
    # colours in [0, 1] and a background in [0, 1]: the image must stay in [0, 1]
    rgb = torch.rand(1, count, 3, generator=generator, dtype=torch.float64)
    gaussians = Gaussians(
        gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities, rgb_to_sh_dc(rgb)[:, :, None]
    )
    out = _render(gaussians, orbit_cameras(generator, 1, 2, 20, 20), background=1.0)
    assert out.alpha.min() >= 0 and out.alpha.max() <= 1
    assert out.rgb.min() >= -1e-12 and out.rgb.max() <= 1 + 1e-12


def _single_gaussian(mean, scale, opacity, dtype=torch.float64) -> Gaussians:
    return Gaussians(
        means=torch.tensor(mean, dtype=dtype).view(1, 1, 3),
        quats=torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=dtype).view(1, 1, 4),
        scales=torch.full((1, 1, 3), scale, dtype=dtype),
        opacities=torch.tensor([[opacity]], dtype=dtype),
        sh=torch.zeros(1, 1, 1, 3, dtype=dtype),
    )


@SETTINGS
@given(
    row=st.integers(0, 31),
    col=st.integers(0, 23),
    depth=st.floats(0.5, 20.0),
    focal=st.floats(10.0, 60.0),
    opacity=st.floats(0.05, 1.0),
    scale=st.floats(0.001, 0.2),
)
def test_single_gaussian_peaks_at_its_projected_pixel_with_its_opacity(row, col, depth, focal, opacity, scale) -> None:
    width, height = 24, 32
    cx, cy = 11.3, 15.8
    # place the mean so that it projects exactly onto the centre of pixel (row, col)
    x = (col + 0.5 - cx) * depth / focal
    y = (row + 0.5 - cy) * depth / focal
    gaussians = _single_gaussian([x, y, depth], scale, opacity)
    K = intrinsics(focal, focal, cx, cy, dtype=torch.float64)[None, None]
    cameras = Cameras(torch.eye(4, dtype=torch.float64)[None, None], K, width, height)
    out = _render(gaussians, cameras, background=0.0)
    alpha = out.alpha[0, 0, 0]
    assert int(torch.argmax(alpha)) == row * width + col
    assert math.isclose(float(alpha[row, col]), min(opacity, 0.999), rel_tol=1e-12)
    # the depth at the peak is the camera-space z of the Gaussian (expected depth of a single Gaussian)
    assert math.isclose(float(out.depth[0, 0, 0, row, col]), depth, rel_tol=1e-12)


@SETTINGS
@given(seed=seeds, depth=st.floats(0.5, 10.0))
def test_depth_of_one_opaque_gaussian_is_its_camera_space_z(seed: int, depth: float) -> None:
    generator = torch.Generator().manual_seed(seed)
    cameras = orbit_cameras(generator, 1, 1, 16, 16)
    # a large opaque Gaussian straight ahead of the camera, `depth` along the optical axis
    c2w = cameras.cam_to_world[0, 0]
    mean = c2w[:3, :3] @ torch.tensor([0.0, 0.0, depth], dtype=torch.float64) + c2w[:3, 3]
    gaussians = _single_gaussian(mean.tolist(), 0.5 * depth, 1.0)
    out = _render(gaussians, cameras)
    covered = out.alpha[0, 0, 0] > 0
    assert covered.sum() > 100
    torch.testing.assert_close(out.depth[0, 0, 0][covered], torch.full_like(out.depth[0, 0, 0][covered], depth))


@SETTINGS
@given(seed=seeds, count=st.integers(1, 60))
def test_rigid_motion_of_scene_and_cameras_together_leaves_images_unchanged(seed: int, count: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    gaussians = random_gaussians(generator, 1, count, sh_degree=0)
    cameras = orbit_cameras(generator, 1, 3, 20, 18)
    motion = random_rigid(generator)
    rotation, translation = motion[:3, :3], motion[:3, 3]
    moved = Gaussians(
        means=gaussians.means @ rotation.T + translation,
        quats=quat_multiply(rotmat_to_quat(rotation).expand_as(gaussians.quats), gaussians.quats),
        scales=gaussians.scales,
        opacities=gaussians.opacities,
        sh=gaussians.sh,
    )
    moved_cameras = Cameras(cameras.world_to_cam @ torch.linalg.inv(motion), cameras.K, 20, 18)
    a, b = _render(gaussians, cameras), _render(moved, moved_cameras)
    for x, y in [(a.rgb, b.rgb), (a.alpha, b.alpha), (a.depth, b.depth)]:
        torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-9)


@SETTINGS
@given(seed=seeds, count=st.integers(1, 60))
def test_translation_of_scene_and_cameras_leaves_view_dependent_colour_unchanged(seed: int, count: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    gaussians = random_gaussians(generator, 1, count, sh_degree=3)
    cameras = orbit_cameras(generator, 1, 2, 20, 18)
    shift = torch.randn(3, generator=generator, dtype=torch.float64)
    moved = Gaussians(gaussians.means + shift, gaussians.quats, gaussians.scales, gaussians.opacities, gaussians.sh)
    motion = torch.eye(4, dtype=torch.float64)
    motion[:3, 3] = shift
    moved_cameras = Cameras(cameras.world_to_cam @ torch.linalg.inv(motion), cameras.K, 20, 18)
    torch.testing.assert_close(_render(gaussians, cameras).rgb, _render(moved, moved_cameras).rgb, rtol=1e-9, atol=1e-9)


@SETTINGS
@given(seed=seeds, count=st.integers(1, 40), extra=st.integers(1, 20))
def test_gaussians_behind_the_camera_or_beyond_far_are_ignored(seed: int, count: int, extra: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    scene = random_gaussians(generator, 1, count)
    cameras = Cameras(
        torch.eye(4, dtype=torch.float64)[None, None],
        intrinsics(20.0, 20.0, 10.0, 10.0, dtype=torch.float64)[None, None],
        20,
        20,
        near=0.1,
        far=6.0,
    )
    outside = random_gaussians(generator, 1, extra, scale_range=(0.1, 2.0), opacity_range=(0.5, 1.0))
    z = outside.means[..., 2]
    behind = torch.rand(1, extra, generator=generator, dtype=torch.float64) < 0.5
    z = torch.where(behind, -z.abs() * 0.3 + 0.05, 6.0 + z.abs())  # z < near, or z > far
    outside = Gaussians(
        torch.stack([outside.means[..., 0], outside.means[..., 1], z], -1),
        outside.quats,
        outside.scales,
        outside.opacities,
        outside.sh,
    )
    a = _render(scene, cameras)
    b = _render(Gaussians.cat([scene, outside]), cameras)
    for x, y in [(a.rgb, b.rgb), (a.alpha, b.alpha), (a.depth, b.depth)]:
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_transmittance_stops_compositing_like_the_cuda_kernel() -> None:
    # 12 opaque (alpha 0.999) Gaussians on the optical axis: T drops by 1e-3 each, so after the 1st T = 1e-3, and the
    # 2nd would make T = 1e-6 <= 1e-4: the kernel stops *before* it. Alpha is then exactly 0.999, colour the first's.
    count = 12
    means = torch.zeros(1, count, 3, dtype=torch.float64)
    means[..., 2] = torch.arange(count, dtype=torch.float64) + 2
    rgb = torch.rand(1, count, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gaussians = Gaussians(
        means,
        torch.tensor([1.0, 0, 0, 0], dtype=torch.float64).expand(1, count, 4),
        torch.full((1, count, 3), 1.0, dtype=torch.float64),
        torch.ones(1, count, dtype=torch.float64),
        rgb_to_sh_dc(rgb)[:, :, None],
    )
    cameras = Cameras(
        torch.eye(4, dtype=torch.float64)[None, None],
        intrinsics(4.0, 4.0, 2.5, 2.5, dtype=torch.float64)[None, None],
        5,
        5,
    )
    out = _render(gaussians, cameras, background=0.0)
    centre = out.rgb[0, 0, :, 2, 2]
    assert math.isclose(float(out.alpha[0, 0, 0, 2, 2]), 0.999, rel_tol=1e-12)
    torch.testing.assert_close(centre, 0.999 * rgb[0, 0])
