"""The camera and view toolkit: relative cameras make the input camera the identity and preserve projections,
examples pick the right views, collation stacks batch-first into a `ViewBatch` (teacher inputs included), and the
protocols' view choices are distinct, seeded and complete."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from splat_apps.views import (
    collate,
    evaluation_view_indices,
    input_batch,
    make_example,
    relative_world_to_cam,
    sample_view_indices,
)
from splat_render import Cameras, intrinsics, look_at, rigid_inverse


def project(w2c: torch.Tensor, K: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates [..., 2] and camera depth of world points [N 3] in cameras w2c [... 4 4], K [... 3 3]."""
    homogeneous = torch.cat([points, torch.ones_like(points[:, :1])], dim=-1)
    cam = (w2c[..., None, :3, :] @ homogeneous[..., None])[..., 0]  # [... N 3]
    pixels = (K[..., None, :, :] @ cam[..., None])[..., 0]
    return pixels[..., :2] / pixels[..., 2:], cam[..., 2]


@st.composite
def camera_poses(draw: st.DrawFn, views: int) -> torch.Tensor:
    """Random camera-to-world poses looking roughly at the origin from distance 1-3 (float64)."""
    values = draw(st.lists(st.floats(-1, 1), min_size=6 * views, max_size=6 * views))
    numbers = torch.tensor(values, dtype=torch.float64).reshape(views, 6)
    eye = torch.nn.functional.normalize(numbers[:, :3] + torch.tensor([0.0, 0.0, 1e-3]), dim=-1)
    eye = eye * (2 + numbers[:, 3:4])
    target = 0.2 * numbers[:, 3:]
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand_as(eye)
    degenerate = torch.linalg.cross(target - eye, up).norm(dim=-1) < 1e-3
    up = torch.where(degenerate[:, None], torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), up)
    return look_at(eye, target, up)


@settings(max_examples=30, deadline=None)
@given(poses=camera_poses(5), points=st.lists(st.floats(-0.5, 0.5), min_size=12, max_size=12))
def test_relative_cameras_make_the_input_identity_and_preserve_projections(poses, points) -> None:
    """w2c_j @ c2w_input maps input-camera coordinates of a point to view j exactly as w2c_j maps its world
    coordinates: projections agree once the point is moved into the input-camera frame."""
    world_points = torch.tensor(points, dtype=torch.float64).reshape(4, 3)
    relative = relative_world_to_cam(poses[0], rigid_inverse(poses))
    torch.testing.assert_close(relative[0], torch.eye(4, dtype=torch.float64), atol=1e-12, rtol=0)
    K = intrinsics(30.0, 30.0, 16.0, 16.0, dtype=torch.float64).expand(5, 3, 3)
    in_input_frame = project(rigid_inverse(poses[0]), torch.eye(3, dtype=torch.float64), world_points)
    input_cam_points = in_input_frame[0] * in_input_frame[1][:, None]
    input_cam_points = torch.cat([input_cam_points, in_input_frame[1][:, None]], dim=-1)
    before, depth_before = project(rigid_inverse(poses), K, world_points)
    after, depth_after = project(relative, K, input_cam_points)
    torch.testing.assert_close(depth_after, depth_before, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(after, before, atol=1e-6, rtol=1e-6)


def test_relative_cameras_broadcast_over_a_batch_of_inputs() -> None:
    poses = look_at(
        torch.randn(2, 3, 3, dtype=torch.float64) + 3,
        torch.zeros(2, 3, 3, dtype=torch.float64),
        torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(2, 3, 3),
    )
    relative = relative_world_to_cam(poses[:, 0], rigid_inverse(poses))
    for b in range(2):
        torch.testing.assert_close(relative[b], relative_world_to_cam(poses[b, 0], rigid_inverse(poses[b])))


def _views(count: int = 5, size: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    eye = torch.randn(count, 3, generator=g, dtype=torch.float64) + torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64)
    poses = look_at(
        eye,
        torch.zeros(count, 3, dtype=torch.float64),
        torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64).expand(count, 3),
    )
    K = intrinsics(10.0, 10.0, size / 2, size / 2).expand(count, 3, 3).clone()
    images = torch.rand(count, 3, size, size, generator=g)
    distances = torch.rand(count, generator=g)
    return images, rigid_inverse(poses), poses, K, distances


def test_an_example_takes_the_chosen_views_and_the_input_among_targets_is_the_identity() -> None:
    images, w2c, c2w, K, distances = _views()
    example = make_example(
        "item", images, w2c, K, 3, [3, 0, 4], near=0.1, far=9.0, per_view_inputs={"origin_distance": distances}
    )
    torch.testing.assert_close(example.input_camera.world_to_cam, torch.eye(4)[None, None], atol=0, rtol=0)
    torch.testing.assert_close(example.target_cameras.world_to_cam[0, 0], torch.eye(4), atol=1e-6, rtol=0)
    assert example.target_views.tolist() == [3, 0, 4] and example.input_view == 3
    torch.testing.assert_close(example.target_images, images[[3, 0, 4]], atol=0, rtol=0)
    torch.testing.assert_close(example.input_cam_to_world, c2w[3], atol=1e-12, rtol=0)
    assert example.teacher_inputs["origin_distance"] == distances[3]
    torch.testing.assert_close(example.target_teacher_inputs["origin_distance"], distances[[3, 0, 4]])
    assert (example.target_cameras.near, example.target_cameras.far) == (0.1, 9.0)
    assert example.target_cameras.world_to_cam.dtype == K.dtype


def test_collate_stacks_examples_batch_first_into_a_view_batch() -> None:
    examples = []
    for seed in range(3):
        images, w2c, _, K, distances = _views(seed=seed)
        examples.append(
            make_example(
                f"i{seed}", images, w2c, K, 0, [0, 2], near=0.1, far=9.0, per_view_inputs={"origin_distance": distances}
            )
        )
    batch = collate(examples)
    assert batch.source_images.shape == (3, 3, 8, 8) and batch.target_images.shape == (3, 2, 3, 8, 8)
    assert batch.source_cameras.world_to_cam.shape == (3, 1, 4, 4) and batch.target_cameras.K.shape == (3, 2, 3, 3)
    assert batch.teacher_inputs["origin_distance"].shape == (3,)
    assert batch.target_teacher_inputs["origin_distance"].shape == (3, 2)
    for i, example in enumerate(examples):
        torch.testing.assert_close(batch.target_images[i], example.target_images, atol=0, rtol=0)
        torch.testing.assert_close(batch.target_cameras.world_to_cam[i], example.target_cameras.world_to_cam[0])
    images, w2c, _, K, _ = _views()
    with pytest.raises(ValueError, match="number of targets"):
        collate([examples[0], make_example("x", images, w2c, K, 0, [1], near=0.1, far=9.0)])


def test_an_input_batch_renders_its_own_view() -> None:
    image = torch.rand(1, 3, 8, 8)
    cameras = Cameras(torch.eye(4)[None, None], intrinsics(10.0, 10.0, 4.0, 4.0)[None, None], 8, 8)
    batch = input_batch(image, cameras, origin_distance=torch.tensor([2.0]))
    assert batch.num_views == 1 and torch.equal(batch.target_images[:, 0], image)
    assert batch.target_teacher_inputs["origin_distance"].shape == (1, 1)


@pytest.mark.parametrize("include_input", [True, False])
def test_training_views_are_distinct_random_and_seeded(include_input) -> None:
    draws = set()
    for seed in range(40):
        input_view, targets = sample_view_indices(6, 4, torch.Generator().manual_seed(seed), include_input)
        again = sample_view_indices(6, 4, torch.Generator().manual_seed(seed), include_input)
        assert (input_view, targets) == again
        assert len(targets) == 4 and len(set(targets)) == 4 and all(0 <= t < 6 for t in targets)
        assert (input_view in targets) == include_input
        if include_input:
            assert targets[0] == input_view  # Splatter Image: the input is the first of the rendered frames
        draws.add((input_view, tuple(targets)))
    assert len(draws) > 20
    with pytest.raises(ValueError, match="num_targets"):
        sample_view_indices(6, 6, torch.Generator(), include_input_in_targets=False)


def test_the_single_view_protocol_takes_every_other_view_as_a_target() -> None:
    assert evaluation_view_indices(251, 64) == (64, [v for v in range(251) if v != 64])
    with pytest.raises(ValueError, match="input_view must be in"):
        evaluation_view_indices(9, 64)
