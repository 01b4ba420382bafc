"""Reading a generated dataset back gives exactly what was written; cameras follow SRN's conventions; examples,
relative cameras, collation and the evaluation protocol pick and transform the right views."""

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from synthetic import CATEGORY, generate_object, synthetic_intrinsics, to_uint8

from data import (
    SRN_EVAL_INPUT_VIEW,
    SRNDataset,
    collate,
    default_input_view,
    evaluation_view_indices,
    make_example,
    read_intrinsics,
    relative_world_to_cam,
    sample_view_indices,
)
from splat_render import intrinsics, look_at, rigid_inverse


def project(w2c: torch.Tensor, K: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Pixel coordinates [..., 2] and camera depth of world points [N 3] in cameras w2c [... 4 4], K [... 3 3]."""
    homogeneous = torch.cat([points, torch.ones_like(points[:, :1])], dim=-1)
    cam = (w2c[..., None, :3, :] @ homogeneous[..., None])[..., 0]  # [... N 3]
    pixels = (K[..., None, :, :] @ cam[..., None])[..., 0]
    return pixels[..., :2] / pixels[..., 2:], cam[..., 2]


def test_reader_returns_exactly_the_written_images_poses_and_intrinsics(tiny_root, tiny_options) -> None:
    manifest = json.loads((tiny_root.parent / "manifest.json").read_text())
    for split in ("train", "val", "test"):
        dataset = SRNDataset(tiny_root, split)
        assert dataset.category == CATEGORY and (dataset.near, dataset.far) == (0.8, 1.8)
        assert list(dataset.object_ids) == sorted(manifest["objects"][split])
        for index in range(tiny_options.objects(split)):
            object_id, _, poses, render = generate_object(tiny_options, split, index)
            loaded = dataset[dataset.object_ids.index(object_id)]
            written = torch.from_numpy(to_uint8(render.rgb)).permute(0, 3, 1, 2).float() / 255
            assert loaded.object_id == object_id
            assert loaded.images.shape == (tiny_options.views(split), 3, 16, 16)
            torch.testing.assert_close(loaded.images, written, atol=0, rtol=0)
            torch.testing.assert_close(loaded.cam_to_world, poses.float(), atol=0, rtol=0)
            K = synthetic_intrinsics(tiny_options.resolution).float().expand_as(loaded.K)
            torch.testing.assert_close(loaded.K, K, atol=0, rtol=0)
            assert loaded.view_indices.tolist() == list(range(tiny_options.views(split)))


def test_intrinsics_file_has_srn_focal_at_128() -> None:
    K = synthetic_intrinsics(128)
    assert math.isclose(float(K[0, 0]), 131.25, rel_tol=1e-12) and float(K[0, 2]) == 64.0


@pytest.mark.parametrize("resolution", [None, 8, 32])
def test_cameras_project_the_world_origin_to_the_image_centre(tiny_root, resolution) -> None:
    for split in ("train", "test"):
        dataset = SRNDataset(tiny_root, split, resolution=resolution)
        size = resolution or 16
        for index in range(len(dataset)):
            views = dataset[index]
            assert views.images.shape[-2:] == (size, size)
            pixels, depth = project(rigid_inverse(views.cam_to_world), views.K, torch.zeros(1, 3))
            torch.testing.assert_close(pixels, torch.full_like(pixels, size / 2), atol=1e-4, rtol=0)
            torch.testing.assert_close(depth, torch.full_like(depth, 1.3), atol=1e-5, rtol=0)


def test_resolution_option_resizes_with_antialiasing_and_scales_K(tiny_root) -> None:
    native = SRNDataset(tiny_root, "train")[0]
    small = SRNDataset(tiny_root, "train", resolution=8)[0]
    native_K = read_intrinsics(tiny_root / "synthetic_train" / native.object_id / "intrinsics.txt").matrix()
    torch.testing.assert_close(small.K[0], native_K * torch.tensor([[0.5, 0, 0.5], [0, 0.5, 0.5], [0, 0, 1]]))
    # antialiased: each output pixel is a weighted mean of a neighbourhood, so block means are close to it
    blocks = torch.nn.functional.avg_pool2d(native.images, 2)
    assert (small.images - blocks).abs().mean() < 0.03
    assert (small.images - native.images[..., ::2, ::2]).abs().mean() > (small.images - blocks).abs().mean()


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
    relative = relative_world_to_cam(poses[0], poses)
    torch.testing.assert_close(relative[0], torch.eye(4, dtype=torch.float64), atol=1e-12, rtol=0)
    K = intrinsics(30.0, 30.0, 16.0, 16.0, dtype=torch.float64).expand(5, 3, 3)
    in_input_frame = project(rigid_inverse(poses[0]), torch.eye(3, dtype=torch.float64), world_points)
    input_cam_points = in_input_frame[0] * in_input_frame[1][:, None]
    input_cam_points = torch.cat([input_cam_points, in_input_frame[1][:, None]], dim=-1)
    before, depth_before = project(rigid_inverse(poses), K, world_points)
    after, depth_after = project(relative, K, input_cam_points)
    torch.testing.assert_close(depth_after, depth_before, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(after, before, atol=1e-6, rtol=1e-6)


def test_training_example_cameras_are_relative_to_the_input_view(tiny_root) -> None:
    dataset = SRNDataset(tiny_root, "train")
    views = dataset[1]
    example = dataset.training_example(1, 3, torch.Generator().manual_seed(0))
    w2c_input = rigid_inverse(views.cam_to_world[example.input_view].double())
    torch.testing.assert_close(example.input_camera.world_to_cam, torch.eye(4)[None, None], atol=0, rtol=0)
    torch.testing.assert_close(example.input_cam_to_world, views.cam_to_world[example.input_view])
    points = torch.rand(7, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) - 0.5
    original, _ = project(rigid_inverse(views.cam_to_world[example.target_views].double()), views.K[0].double(), points)
    moved = (w2c_input[:3, :3] @ points.T).T + w2c_input[:3, 3]
    relative, _ = project(example.target_cameras.world_to_cam[0].double(), example.target_cameras.K[0].double(), moved)
    torch.testing.assert_close(relative, original, atol=1e-3, rtol=0)
    torch.testing.assert_close(example.target_images, views.images[example.target_views], atol=0, rtol=0)
    torch.testing.assert_close(example.input_image, views.images[example.input_view], atol=0, rtol=0)
    assert (example.target_cameras.near, example.target_cameras.far) == (0.8, 1.8)
    assert example.target_cameras.width == example.target_cameras.height == 16


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


def test_collate_stacks_examples_batch_first(tiny_root) -> None:
    dataset = SRNDataset(tiny_root, "train")
    generator = torch.Generator().manual_seed(5)
    examples = [dataset.training_example(i % 2, 4, generator) for i in range(3)]
    batch = collate(examples)
    assert batch.input_images.shape == (3, 3, 16, 16) and batch.target_images.shape == (3, 4, 3, 16, 16)
    assert batch.input_cameras.world_to_cam.shape == (3, 1, 4, 4) and batch.target_cameras.K.shape == (3, 4, 3, 3)
    assert batch.target_views.shape == (3, 4) and batch.input_views.shape == (3,)
    for i, example in enumerate(examples):
        assert batch.object_ids[i] == example.object_id
        torch.testing.assert_close(batch.target_images[i], example.target_images, atol=0, rtol=0)
        torch.testing.assert_close(batch.target_cameras.world_to_cam[i], example.target_cameras.world_to_cam[0])
        torch.testing.assert_close(batch.input_cam_to_world[i], example.input_cam_to_world)
    assert batch.to("cpu").input_images is not None
    with pytest.raises(ValueError, match="number of targets"):
        collate([examples[0], dataset.training_example(0, 2, generator)])


def test_evaluation_protocol_uses_the_input_view_and_every_other_view(tiny_root) -> None:
    assert evaluation_view_indices(251) == (64, [v for v in range(251) if v != 64])
    assert len(evaluation_view_indices(251)[1]) == 250 and SRN_EVAL_INPUT_VIEW == 64
    assert default_input_view(251) == 64 and default_input_view(9) == 2
    dataset = SRNDataset(tiny_root, "test")
    views = dataset[0]
    example = dataset.evaluation_example(0, input_view=default_input_view(9))
    assert example.input_view == 2 and example.target_views.tolist() == [0, 1, 3, 4, 5, 6, 7, 8]
    torch.testing.assert_close(example.input_image, views.images[2], atol=0, rtol=0)
    torch.testing.assert_close(example.target_images, views.images[example.target_views], atol=0, rtol=0)
    with pytest.raises(ValueError, match="input_view"):
        dataset.evaluation_example(0)  # view 64 does not exist in a 9-view spiral


def test_make_example_with_the_input_among_targets_gives_an_identity_target(tiny_root) -> None:
    views = SRNDataset(tiny_root, "val")[0]
    example = make_example(views, 3, [3, 0, 4], 0.8, 1.8)
    torch.testing.assert_close(example.target_cameras.world_to_cam[0, 0], torch.eye(4), atol=1e-6, rtol=0)
    assert example.target_views.tolist() == [3, 0, 4]
