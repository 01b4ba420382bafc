"""Reading a generated dataset back gives exactly what was written; cameras follow SRN's conventions; examples,
examples and the evaluation protocol pick the right views (the generic view toolkit is tested in splat-apps)."""

import json
import math

import pytest
import torch

from app_srn.data import (
    RENDER_FAR,
    RENDER_NEAR,
    SRN_EVAL_INPUT_VIEW,
    SRNDataset,
    default_input_view,
    read_intrinsics,
)
from app_srn.synthetic import generate_object, synthetic_intrinsics, to_uint8
from splat_apps import collate
from splat_render import rigid_inverse


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
        assert dataset.category == tiny_options.dataset_category and (dataset.near, dataset.far) == (0.8, 1.8)
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
    native_K = read_intrinsics(tiny_root / "synthetic_cars_train" / native.object_id / "intrinsics.txt").matrix()
    torch.testing.assert_close(small.K[0], native_K * torch.tensor([[0.5, 0, 0.5], [0, 0.5, 0.5], [0, 0, 1]]))
    # antialiased: each output pixel is a weighted mean of a neighbourhood, so block means are close to it
    blocks = torch.nn.functional.avg_pool2d(native.images, 2)
    assert (small.images - blocks).abs().mean() < 0.03
    assert (small.images - native.images[..., ::2, ::2]).abs().mean() > (small.images - blocks).abs().mean()


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
    assert (example.target_cameras.near, example.target_cameras.far) == (RENDER_NEAR, RENDER_FAR)
    assert example.target_cameras.width == example.target_cameras.height == 16


def test_evaluation_protocol_uses_the_input_view_and_every_other_view(tiny_root) -> None:
    assert SRN_EVAL_INPUT_VIEW == 64 and default_input_view(251) == 64 and default_input_view(9) == 2
    dataset = SRNDataset(tiny_root, "test")
    views = dataset[0]
    example = dataset.evaluation_example(0, input_view=default_input_view(9))
    assert example.input_view == 2 and example.target_views.tolist() == [0, 1, 3, 4, 5, 6, 7, 8]
    torch.testing.assert_close(example.input_image, views.images[2], atol=0, rtol=0)
    torch.testing.assert_close(example.target_images, views.images[example.target_views], atol=0, rtol=0)
    with pytest.raises(ValueError, match="input_view"):
        dataset.evaluation_example(0)  # view 64 does not exist in a 9-view spiral
    scored = dataset.evaluation_example(0, input_view=2, score_input=True)  # the input view last, scored on its own
    assert scored.target_views.tolist() == [0, 1, 3, 4, 5, 6, 7, 8, 2]


def test_an_example_with_the_input_among_targets_gives_an_identity_target(tiny_root) -> None:
    dataset = SRNDataset(tiny_root, "val")
    example = dataset.example(dataset[0], 3, [3, 0, 4])
    torch.testing.assert_close(example.target_cameras.world_to_cam[0, 0], torch.eye(4), atol=1e-6, rtol=0)
    assert example.target_views.tolist() == [3, 0, 4]


def test_training_batches_are_view_batches_on_the_rendering_planes(tiny_root) -> None:
    dataset = SRNDataset(tiny_root, "train")
    generator = torch.Generator().manual_seed(5)
    batch = collate([dataset.training_example(i % 2, 4, generator) for i in range(3)])
    assert batch.source_images.shape == (3, 3, 16, 16) and batch.target_images.shape == (3, 4, 3, 16, 16)
    assert (batch.target_cameras.near, batch.target_cameras.far) == (RENDER_NEAR, RENDER_FAR)
    assert batch.teacher_inputs == {}
