"""PyTorch3D → OpenCV camera conversion, NDC focal lengths, origin distance and relative cameras (the toolkit's
`make_example` through the reader's `sequence_example`)."""

import math

import numpy as np
import pytest
import torch
from co3d_fixtures import orbit_RT
from hypothesis import given, settings
from hypothesis import strategies as st

from app_co3d.data import (
    Co3DSequence,
    co3d_intrinsics,
    focal_ndc_to_pixels,
    opencv_world_to_cam,
    origin_distance,
    pytorch3d_from_opencv,
    sequence_example,
)
from app_co3d.synthetic import look_at_opencv
from splat_apps.views import relative_world_to_cam
from splat_render import rigid_inverse

SIDE = 128


@st.composite
def pytorch3d_cameras(draw):
    """(R [3 3], T [3], focal_ndc, world point in front of the camera) with R a random rotation."""
    quaternion = np.array(draw(st.lists(st.floats(-1, 1), min_size=4, max_size=4)))
    if np.linalg.norm(quaternion) < 0.1:
        quaternion = np.array([1.0, 0.2, -0.3, 0.1])
    w, x, y, z = quaternion / np.linalg.norm(quaternion)
    R = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )
    T = np.array(draw(st.lists(st.floats(-3, 3), min_size=3, max_size=3)))
    focal = draw(st.floats(0.5, 5.0))
    camera_point = np.array([draw(st.floats(-1, 1)), draw(st.floats(-1, 1)), draw(st.floats(0.5, 6))])
    world_point = (camera_point - T) @ R.T  # X_cam = X_world R + T  =>  X_world = (X_cam - T) R^T
    return R, T, focal, world_point


def pytorch3d_screen_projection(R, T, focal, point):
    """PyTorch3D's own chain, written out: X_cam = X R + T (x left, y up), NDC x = f X/Z (principal point 0),
    NDC +1 at the left / top edge of a square image, so u = (1 - x_ndc) W / 2, v = (1 - y_ndc) H / 2."""
    camera = point @ R + T
    ndc = focal * camera[:2] / camera[2]
    return np.array([(1 - ndc[0]) * SIDE / 2, (1 - ndc[1]) * SIDE / 2])


def opencv_projection(world_to_cam: torch.Tensor, K: torch.Tensor, point: np.ndarray) -> np.ndarray:
    x = world_to_cam @ torch.tensor([*point, 1.0], dtype=torch.float64)
    return (K @ (x[:3] / x[2]))[:2].numpy()


@settings(max_examples=60, deadline=None)
@given(pytorch3d_cameras())
def test_converted_cameras_project_like_pytorch3d(camera):
    R, T, focal, point = camera
    w2c = opencv_world_to_cam(torch.from_numpy(R), torch.from_numpy(T))
    K = co3d_intrinsics(torch.tensor([focal, focal], dtype=torch.float64), SIDE)
    np.testing.assert_allclose(
        opencv_projection(w2c, K, point), pytorch3d_screen_projection(R, T, focal, point), atol=1e-7
    )
    assert float((w2c @ torch.tensor([*point, 1.0], dtype=torch.float64))[2]) > 0  # in front: OpenCV z forward


@settings(max_examples=30, deadline=None)
@given(pytorch3d_cameras())
def test_pytorch3d_from_opencv_inverts_the_conversion(camera):
    R, T, _, _ = camera
    R_back, T_back = pytorch3d_from_opencv(opencv_world_to_cam(torch.from_numpy(R), torch.from_numpy(T)))
    np.testing.assert_allclose(R_back.numpy(), R, atol=1e-12)
    np.testing.assert_allclose(T_back.numpy(), T, atol=1e-12)


def test_known_world_point_projects_to_the_expected_pixel():
    # PyTorch3D identity rotation, camera 2 units from the origin: a point up and to the camera's left (PyTorch3D +x
    # is left, +y up) appears left of and above the image centre.
    R, T = torch.eye(3, dtype=torch.float64), torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64)
    w2c = opencv_world_to_cam(R, T)
    K = co3d_intrinsics(torch.tensor([2.0, 2.0], dtype=torch.float64), SIDE)  # 128 px focal
    np.testing.assert_allclose(opencv_projection(w2c, K, np.array([0.5, 0.25, 0.0])), [64 - 32, 64 - 16])
    np.testing.assert_allclose(K.numpy(), [[128, 0, 64], [0, 128, 64], [0, 0, 1]])
    np.testing.assert_allclose(focal_ndc_to_pixels(torch.tensor([2.0, 3.0]), 64).numpy(), [64, 96])


def test_origin_distance_of_known_poses():
    ahead = look_at_opencv(np.array([0.0, 0.0, -3.0]), np.zeros(3), np.array([0.0, 1.0, 0.0]))
    behind = look_at_opencv(np.array([0.0, 0.0, -3.0]), np.array([0.0, 0.0, -6.0]), np.array([0.0, 1.0, 0.0]))
    beside = ahead.copy()
    beside[:3, 3] = [1.5, -0.5, -3.0]  # same optical axis direction, shifted sideways: depth of the origin still 3
    poses = torch.from_numpy(np.stack([ahead, behind, beside]))
    np.testing.assert_allclose(origin_distance(poses).numpy(), [3.0, -3.0, 3.0], atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.floats(0.5, 4.0), st.floats(-math.pi, math.pi), st.floats(-1.2, 1.2), st.floats(-0.3, 0.3))
def test_origin_distance_is_the_distance_for_cameras_aiming_at_the_origin(distance, azimuth, elevation, shift):
    eye = distance * np.array(
        [math.cos(elevation) * math.sin(azimuth), math.sin(elevation), math.cos(elevation) * math.cos(azimuth)]
    )
    pose = look_at_opencv(eye, np.zeros(3), np.array([0.0, 1.0, 0.0]))
    assert float(origin_distance(torch.from_numpy(pose))) == pytest.approx(distance, rel=1e-9)
    pose[:3, 3] += shift * pose[:3, 0]  # moving along the camera's own x axis keeps the depth of the origin
    assert float(origin_distance(torch.from_numpy(pose))) == pytest.approx(distance, rel=1e-9)


def _sequence(count: int = 5) -> Co3DSequence:
    R, T = orbit_RT(count, distance=2.5, seed=4)
    w2c = opencv_world_to_cam(torch.from_numpy(R), torch.from_numpy(T)).float()
    focal = torch.full((count, 2), 2.2)
    return Co3DSequence(
        name="seq",
        images=torch.rand(count, 3, 16, 16),
        focal_ndc=focal,
        world_to_cam=w2c,
        K=co3d_intrinsics(focal, 16),
        views=torch.arange(count),
        frame_names=tuple(f"{i:05d}.png" for i in range(count)),
    )


def test_relative_cameras_make_the_input_camera_identity_and_keep_projections():
    sequence = _sequence()
    example = sequence_example(sequence, 2, [2, 0, 4])
    torch.testing.assert_close(example.input_camera.world_to_cam[0, 0], torch.eye(4))
    torch.testing.assert_close(example.target_cameras.world_to_cam[0, 0], torch.eye(4), atol=1e-6, rtol=0)
    world = torch.tensor([0.1, -0.2, 0.3, 1.0], dtype=torch.float64)
    in_input_frame = sequence.world_to_cam[2].double() @ world  # the example's world is the input camera's frame
    for slot, view in enumerate([2, 0, 4]):
        before = sequence.world_to_cam[view].double() @ world
        after = example.target_cameras.world_to_cam[0, slot].double() @ in_input_frame
        torch.testing.assert_close(after, before, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        example.input_cam_to_world.double(), rigid_inverse(sequence.world_to_cam[2].double()), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        relative_world_to_cam(example.input_cam_to_world, sequence.world_to_cam[2:3])[0],
        torch.eye(4),
        atol=1e-6,
        rtol=0,
    )
    # the float32 cameras are w2c_target @ c2w_input computed in float64 from the float32 poses, c2w by rigid inverse
    c2w_input = rigid_inverse(sequence.world_to_cam[2].double()).float()
    expected = (sequence.world_to_cam[[2, 0, 4]].double() @ c2w_input.double()).float()
    assert example.target_cameras.world_to_cam.dtype == torch.float32
    assert torch.equal(example.target_cameras.world_to_cam[0], expected)
    assert torch.equal(example.input_cam_to_world, c2w_input)


def test_origin_distance_comes_from_the_world_frame_not_the_relative_one():
    sequence = _sequence()
    example = sequence_example(sequence, 1, [3, 4])
    world = origin_distance(rigid_inverse(sequence.world_to_cam.double()))
    input_distance = example.teacher_inputs["origin_distance"]
    assert input_distance.shape == () and float(input_distance) == pytest.approx(float(world[1]), rel=1e-5)
    target_distances = example.target_teacher_inputs["origin_distance"]
    torch.testing.assert_close(target_distances.double(), world[[3, 4]], rtol=1e-5, atol=1e-6)
    assert float(input_distance) > 2.0  # the relative input camera would give 0
