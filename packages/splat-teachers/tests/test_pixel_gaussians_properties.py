"""Properties of the pixel-aligned Gaussian head (map -> Gaussians), independent of any network."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from teachers_helpers import random_rotation

from splat_render import Cameras, intrinsics, look_at, render
from splat_render.projection import project_gaussians, quat_to_rotmat
from splat_teachers import CARS, CHAIRS, HYDRANTS, GaussianMapSpec, gaussians_from_map
from splat_teachers.pixel_gaussians import (
    PIXEL_GROUPS,
    pixel_rays,
    quaternion_multiply,
    rotate_sh_degree1,
    rotation_matrix_to_quaternion,
)

SETTINGS = settings(max_examples=25, deadline=None)


def random_map(seed: int, height: int, width: int, *, batch: int = 1, dtype=torch.float64, spread: float = 2.0):
    generator = torch.Generator().manual_seed(seed)
    return spread * torch.randn(batch, 24, height, width, generator=generator, dtype=dtype)


@st.composite
def pinhole(draw):
    """(K [1 1 3 3] float64, height, width) with arbitrary focal lengths and principal point."""
    height, width = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    fx, fy = draw(st.floats(5.0, 300.0)), draw(st.floats(5.0, 300.0))
    cx, cy = draw(st.floats(-2.0, width + 2.0)), draw(st.floats(-2.0, height + 2.0))
    return intrinsics(fx, fy, cx, cy, dtype=torch.float64)[None, None], height, width


def cameras_for(K: torch.Tensor, height: int, width: int, world_to_cam: torch.Tensor | None = None) -> Cameras:
    if world_to_cam is None:
        world_to_cam = torch.eye(4, dtype=K.dtype)[None, None]
    return Cameras(world_to_cam, K, width, height)


def test_map_spec_layout_is_splatter_image_order():
    spec = GaussianMapSpec(height=4, width=5)
    assert spec.channels == 24 and spec.num_gaussians == 20
    starts = [spec.group_slice(name).start for name, _ in PIXEL_GROUPS]
    assert starts == [0, 1, 4, 5, 8, 12, 15]
    two = GaussianMapSpec(height=6, width=6, gaussians_per_pixel=2, padding=1)
    assert two.channels == 48 and two.group_slice("sh_rest", 1) == slice(39, 48)
    assert (two.image_height, two.image_width, two.num_gaussians) == (4, 4, 72)
    with pytest.raises(ValueError, match="unknown channel group"):
        spec.group_slice("colour")
    with pytest.raises(ValueError, match="gaussian_map must be"):
        spec.check(torch.zeros(1, 23, 4, 5))


@SETTINGS
@given(camera=pinhole(), seed=st.integers(0, 2**31 - 1))
def test_zero_offset_gaussians_lie_on_their_pixel_rays_and_project_to_pixel_centres(camera, seed):
    K, height, width = camera
    gaussian_map = random_map(seed, height, width)
    gaussian_map[:, 1:4] = 0  # no offset
    gaussian_map[:, 0].clamp_(-10, 10)
    cameras = cameras_for(K, height, width)
    gaussians = gaussians_from_map(gaussian_map, cameras, CARS)
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    centres = torch.stack([cols + 0.5, rows + 0.5], dim=-1).reshape(1, -1, 2).to(torch.float64)
    # On the ray: the mean is depth times K^-1 (pixel centre, 1).
    homogeneous = torch.cat([centres, torch.ones_like(centres[..., :1])], dim=-1)
    rays = torch.einsum("ij,bnj->bni", torch.linalg.inv(K[0, 0]), homogeneous)
    depth = gaussians.means[..., 2:]
    torch.testing.assert_close(gaussians.means, rays * depth, atol=1e-9, rtol=1e-9)
    # Through the input camera, each Gaussian projects back onto its own pixel centre.
    projection = project_gaussians(gaussians, cameras)
    torch.testing.assert_close(projection.means2d[:, 0], centres, atol=1e-8, rtol=1e-8)


@SETTINGS
@given(
    head=st.sampled_from([CARS, CHAIRS, HYDRANTS]),
    raw_depth=st.lists(st.floats(-15.0, 15.0, width=32), min_size=1, max_size=12),
    origin=st.floats(0.5, 10.0),
)
def test_depth_stays_inside_znear_zfar(head, raw_depth, origin):
    gaussian_map = torch.zeros(1, 24, 1, len(raw_depth))
    gaussian_map[0, 0, 0] = torch.tensor(raw_depth)
    cameras = cameras_for(intrinsics(50.0, 50.0, 3.0, 0.5)[None, None], 1, len(raw_depth))
    distance = torch.tensor([origin]) if head.origin_distance else None
    depth = gaussians_from_map(gaussian_map, cameras, head, origin_distance=distance).means[0, :, 2]
    shift = origin if head.origin_distance else 0.0
    assert torch.all(depth > head.znear + shift) and torch.all(depth < head.zfar + shift), (depth, head.name)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), tiny=st.booleans(), posed=st.booleans())
def test_rotations_are_unit_quaternions(seed, tiny, posed):
    gaussian_map = random_map(seed, 3, 4, dtype=torch.float32)
    if tiny:  # raw quaternions of very different norms, down to 1e-6
        gaussian_map[:, 8:12] *= torch.logspace(-6, 1, 12).reshape(1, 1, 3, 4)
    pose = torch.eye(4)[None, None]
    if posed:
        pose[0, 0, :3, :3] = random_rotation(torch.Generator().manual_seed(seed), torch.float32)
        pose[0, 0, :3, 3] = torch.tensor([0.3, -1.0, 2.0])
    cameras = cameras_for(intrinsics(4.0, 4.0, 2.0, 1.5)[None, None], 3, 4, pose)
    quats = gaussians_from_map(gaussian_map, cameras, CARS).quats
    torch.testing.assert_close(quats.norm(dim=-1), torch.ones(1, 12), atol=1e-5, rtol=0)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), flip=st.booleans())
def test_rotation_matrix_to_quaternion_inverts_quat_to_rotmat(seed, flip):
    generator = torch.Generator().manual_seed(seed)
    quats = torch.nn.functional.normalize(torch.randn(64, 4, generator=generator, dtype=torch.float64), dim=-1)
    if flip:  # rotations by nearly 180 degrees: w close to 0, the hard case for the trace formula
        quats[:, 0] *= 1e-4
        quats = torch.nn.functional.normalize(quats, dim=-1)
    recovered = rotation_matrix_to_quaternion(quat_to_rotmat(quats))
    expected = torch.where(quats[:, :1] < 0, -quats, quats)
    assert torch.all(recovered[:, 0] >= 0)
    torch.testing.assert_close(quat_to_rotmat(recovered), quat_to_rotmat(quats), atol=1e-10, rtol=0)
    close = (recovered - expected).norm(dim=-1) < 1e-8
    opposite = (recovered + expected).norm(dim=-1) < 1e-8  # w == 0 up to round-off: either sign is right
    assert torch.all(close | (opposite & (expected[:, 0].abs() < 1e-6)))


def test_quaternion_product_composes_rotations():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.nn.functional.normalize(torch.randn(2, 16, 4, generator=generator, dtype=torch.float64), dim=-1)
    torch.testing.assert_close(
        quat_to_rotmat(quaternion_multiply(a, b)), quat_to_rotmat(a) @ quat_to_rotmat(b), atol=1e-12, rtol=0
    )


def test_pixel_rays_shift_with_padding_and_skew():
    K = torch.tensor([[[10.0, 2.0, 4.0], [0.0, 20.0, 3.0], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    rays = pixel_rays(K, 8, 10, padding=2)
    pixel = torch.tensor([7 - 2 + 0.5, 5 - 2 + 0.5, 1.0], dtype=torch.float64)  # map (row 5, col 7)
    torch.testing.assert_close(rays[0, :, 5, 7], torch.linalg.inv(K[0]) @ pixel)


def test_sh_rotation_of_identity_is_identity_and_composes():
    generator = torch.Generator().manual_seed(1)
    sh = torch.randn(1, 5, 3, 3, generator=generator, dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64)[None]
    torch.testing.assert_close(rotate_sh_degree1(sh, eye), sh)
    r1, r2 = random_rotation(generator)[None], random_rotation(generator)[None]
    torch.testing.assert_close(rotate_sh_degree1(rotate_sh_degree1(sh, r2), r1), rotate_sh_degree1(sh, r1 @ r2))


def test_posed_input_camera_renders_like_the_relative_camera():
    """Gaussians placed with input pose P, seen by camera W, equal the identity-pose Gaussians seen by W P: the
    means, rotations *and degree-1 SH colours* move together (the SH rotation is physically right)."""
    generator = torch.Generator().manual_seed(2)
    size, dtype = 12, torch.float64
    gaussian_map = random_map(5, size, size, dtype=dtype, spread=0.5)
    gaussian_map[:, 4] += 2.0  # opaque
    gaussian_map[:, 5:8] += math.log(0.05)
    gaussian_map[:, 15:24] *= 4  # strong view dependence
    K = intrinsics(15.0, 15.0, size / 2, size / 2, dtype=dtype)[None, None]
    pose = torch.eye(4, dtype=dtype)
    pose[:3, :3] = random_rotation(generator)
    pose[:3, 3] = torch.tensor([0.4, -0.3, 0.8], dtype=dtype)
    posed = gaussians_from_map(gaussian_map, cameras_for(K, size, size, torch.linalg.inv(pose)[None, None]), CARS)
    plain = gaussians_from_map(gaussian_map, cameras_for(K, size, size), CARS)
    # A target camera looking at the Gaussians from the side (in the input camera's frame).
    eye = torch.tensor([0.8, -0.4, 0.2], dtype=dtype)
    target_c2w_input = look_at(
        eye, torch.tensor([0.0, 0.0, 1.3], dtype=dtype), torch.tensor([0.0, -1.0, 0.0], dtype=dtype)
    )
    world_to_target = torch.linalg.inv(pose @ target_c2w_input)  # the same camera in the posed world frame
    relative = world_to_target @ pose
    image_posed = render(posed, cameras_for(K, size, size, world_to_target[None, None]), background=1.0).rgb
    image_plain = render(plain, cameras_for(K, size, size, relative[None, None]), background=1.0).rgb
    assert image_plain.std() > 0.05  # something is drawn
    torch.testing.assert_close(image_posed, image_plain, atol=1e-8, rtol=1e-8)


def test_map_to_gaussians_to_render_runs_on_cpu_and_backpropagates():
    size = 16
    gaussian_map = random_map(3, size, size, batch=2, dtype=torch.float32, spread=0.5).requires_grad_()
    cameras = CARS.default_cameras(2)
    cameras = Cameras(
        cameras.world_to_cam, cameras.K * torch.tensor([size / 128, size / 128, 1.0])[:, None], size, size
    )
    gaussians = gaussians_from_map(gaussian_map, cameras, CARS)
    assert gaussians.num_gaussians == size * size and gaussians.sh_degree == 1
    target = Cameras(cameras.world_to_cam.clone(), cameras.K, size, size)
    target.world_to_cam[:, :, 0, 3] = 0.1
    image = render(gaussians, target, background=1.0).rgb
    assert image.shape == (2, 1, 3, size, size) and torch.isfinite(image).all()
    image.sum().backward()
    assert torch.isfinite(gaussian_map.grad).all() and gaussian_map.grad.abs().sum() > 0


def test_bad_inputs_are_clear_value_errors():
    gaussian_map = torch.zeros(1, 24, 4, 4)
    cameras = cameras_for(intrinsics(4.0, 4.0, 2.0, 2.0)[None, None].float(), 4, 4)
    with pytest.raises(ValueError, match="origin_distance"):
        gaussians_from_map(gaussian_map, cameras, HYDRANTS)
    with pytest.raises(ValueError, match="origin_distance"):
        gaussians_from_map(gaussian_map, cameras, CARS, origin_distance=torch.ones(1))
    with pytest.raises(ValueError, match="cameras are 4x4 but the images are 4x5"):
        gaussians_from_map(torch.zeros(1, 24, 4, 5), cameras, CARS)
    with pytest.raises(ValueError, match="one input view per image"):
        gaussians_from_map(torch.zeros(2, 24, 4, 4), cameras, CARS)
    with pytest.raises(ValueError, match="gaussian_map must be"):
        gaussians_from_map(torch.zeros(1, 12, 4, 4), cameras, CARS)
