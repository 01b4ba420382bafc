"""Co3D's camera conventions: PyTorch3D → OpenCV cameras project like PyTorch3D, NDC focal lengths, and the origin
distance (relative cameras are `splat_apps.views`', tested there)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from app_co3d.data import co3d_intrinsics, opencv_world_to_cam, origin_distance
from app_co3d.synthetic import look_at_opencv, random_similarity

SIDE = 128
UP = np.array([0.0, 1.0, 0.0])


def opencv_projection(R: np.ndarray, T: np.ndarray, focal: float, point: np.ndarray) -> tuple[np.ndarray, float]:
    """Pixel and depth of a world point in the converted camera."""
    w2c = opencv_world_to_cam(torch.from_numpy(R), torch.from_numpy(T))
    K = co3d_intrinsics(torch.tensor([focal, focal], dtype=torch.float64), SIDE)
    x = w2c @ torch.tensor([*point, 1.0], dtype=torch.float64)
    return (K @ (x[:3] / x[2]))[:2].numpy(), float(x[2])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_converted_cameras_project_like_pytorch3d(seed: int) -> None:
    """PyTorch3D's own chain, written out: X_cam = X R + T (x left, y up), NDC x = f X/Z (principal point 0), NDC +1
    at the left / top edge of a square image, so u = (1 - x_ndc) W / 2, v = (1 - y_ndc) H / 2."""
    rng = np.random.default_rng(seed)
    R, T, focal = random_similarity(rng).rotation, rng.uniform(-3, 3, 3), rng.uniform(0.5, 5.0)
    camera_point = np.array([*rng.uniform(-1, 1, 2), rng.uniform(0.5, 6)])  # in front of the camera
    ndc = focal * camera_point[:2] / camera_point[2]
    pixel, depth = opencv_projection(R, T, focal, (camera_point - T) @ R.T)  # X_world = (X_cam - T) R^T
    np.testing.assert_allclose(pixel, (1 - ndc) * SIDE / 2, atol=1e-7)
    assert depth == pytest.approx(camera_point[2])  # in front: OpenCV z forward


def test_a_known_world_point_projects_to_the_expected_pixel() -> None:
    # PyTorch3D identity rotation, camera 2 units from the origin: a point up and to the camera's left (PyTorch3D +x
    # is left, +y up) appears left of and above the image centre
    pixel, depth = opencv_projection(np.eye(3), np.array([0.0, 0.0, 2.0]), 2.0, np.array([0.5, 0.25, 0.0]))
    np.testing.assert_allclose(pixel, [64 - 32, 64 - 16])
    assert depth == 2.0
    K = co3d_intrinsics(torch.tensor([[2.0, 2.0], [2.0, 3.0]]), 64)
    np.testing.assert_allclose(K[1].numpy(), [[64, 0, 32], [0, 96, 32], [0, 0, 1]])


@settings(max_examples=30, deadline=None)
@given(st.floats(0.5, 4.0), st.floats(-math.pi, math.pi), st.floats(-1.2, 1.2), st.floats(-0.3, 0.3))
def test_the_origin_distance_is_the_depth_of_the_world_origin(distance, azimuth, elevation, shift) -> None:
    direction = [math.cos(elevation) * math.sin(azimuth), math.sin(elevation), math.cos(elevation) * math.cos(azimuth)]
    pose = look_at_opencv(distance * np.array(direction), np.zeros(3), UP)
    assert float(origin_distance(torch.from_numpy(pose))) == pytest.approx(distance, rel=1e-9)
    pose[:3, 3] += shift * pose[:3, 0]  # moving along the camera's own x axis keeps the depth of the origin
    assert float(origin_distance(torch.from_numpy(pose))) == pytest.approx(distance, rel=1e-9)
    away = look_at_opencv(distance * np.array(direction), 2 * distance * np.array(direction), UP)
    assert float(origin_distance(torch.from_numpy(away))) == pytest.approx(-distance, rel=1e-9)  # behind the camera
