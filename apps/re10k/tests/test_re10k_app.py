"""The app's pieces: the presets (Flash3D's padded 2-Gaussian map, grey background), the stages' batches (the source
first with an identity camera, targets within ±30 drawn from the seeds, each stage its batch size, the source
rendered or not), and the fly-through starting at the source camera."""

from dataclasses import replace

import pytest
import torch

from app_re10k.app import APP, fly_through_cameras
from app_re10k.experiment import GREY, PRESETS
from splat_apps.experiment import student_unet


@pytest.mark.parametrize(("name", "size", "device"), [("cpu-demo", (64, 96), "cpu"), ("re10k", (256, 384), "cuda")])
def test_the_presets_run_at_the_teachers_size_on_grey_with_two_gaussians_per_pixel(name, size, device) -> None:
    experiment = PRESETS[name]()
    spec = experiment.model.teacher.map_spec
    assert experiment.image_size == size and experiment.device == device and spec.gaussians_per_pixel == 2
    assert experiment.background == GREY == (0.5, 0.5, 0.5)  # Flash3D evaluates on grey; every stage uses it too
    unet = student_unet(experiment.model.student_unet, spec)  # attention at a level of the map
    if name == "re10k":  # Flash3D's 256x384 frames padded by 32 px: 2 x 24 channels over 320x448
        assert (unet.resolution, unet.width, unet.in_channels) == (320, 448, 51)


def test_the_stages_batches_put_the_source_first_and_draw_targets_from_their_seeds(experiment, sequence) -> None:
    experiment = replace(experiment, data=replace(experiment.data, batch_size=3, multistep_batch_size=1))
    sources, description = APP.training_data(experiment, APP.data(experiment))
    assert "3 training clips, 120 source frames · 32x64" in description
    assert {stage: b.batch_size for stage, b in sources.items()} == {"teacher": 3, "bootstrap": 3, "multistep": 1}
    batch = sources["teacher"].make_batch([0, 50, 119], [1, 2, 3])
    assert batch.source_images.shape == (3, 3, 32, 64) and batch.num_views == 4  # the source + 3 targets
    assert 0 <= batch.target_images.min() and batch.target_images.max() <= 1
    assert (batch.target_cameras.near, batch.target_cameras.far) == (0.01, 100.0)
    torch.testing.assert_close(batch.target_images[:, 0], batch.source_images)
    torch.testing.assert_close(batch.source_cameras.world_to_cam, torch.eye(4).expand(3, 1, 4, 4), atol=0, rtol=0)
    torch.testing.assert_close(batch.target_cameras.world_to_cam[:, 0], torch.eye(4).expand(3, 4, 4), atol=1e-6, rtol=0)
    again, other = (sources["teacher"].make_batch([0, 50, 119], seeds) for seeds in ([1, 2, 3], [4, 5, 6]))
    assert torch.equal(again.target_images, batch.target_images)  # all randomness from the seeds
    assert not torch.equal(other.target_images, batch.target_images)
    # item 0 is the first clip's frame 0; each target is its frame, its camera made relative to the source (float64)
    example = sources["teacher"].example(0, torch.Generator().manual_seed(1))
    assert (example.item, example.input_view) == (sequence.key, 0)
    offsets = example.target_views[1:] - example.input_view
    assert ((offsets != 0) & (offsets.abs() <= 30)).all()
    target = int(example.target_views[1])
    torch.testing.assert_close(batch.target_images[0, 1], sequence.image(target, (32, 64)))
    world_to_cam = sequence.world_to_cam.double()
    expected = (world_to_cam[target] @ torch.linalg.inv(world_to_cam[0])).float()
    torch.testing.assert_close(batch.target_cameras.world_to_cam[0, 1], expected, atol=1e-7, rtol=0)
    novel = replace(experiment, data=replace(experiment.data, render_source=False))
    without = APP.training_data(novel, APP.data(novel))[0]["teacher"].make_batch([0, 50, 119], [1, 2, 3])
    torch.testing.assert_close(without.target_images, batch.target_images[:, 1:])
    torch.testing.assert_close(without.target_cameras.world_to_cam, batch.target_cameras.world_to_cam[:, 1:])


def test_the_fly_through_starts_at_the_source_camera_and_moves_into_the_scene() -> None:
    K = torch.tensor([[60.0, 0.0, 48.0], [0.0, 60.0, 32.0], [0.0, 0.0, 1.0]])
    cameras = fly_through_cameras(K, 96, 64, depth=4.0, frames=8)
    assert cameras.num_views == 8
    torch.testing.assert_close(cameras.world_to_cam[0, 0], torch.eye(4))
    centres = cameras.centers[0]
    assert centres[4, 2] == pytest.approx(1.2) and centres[:, 2].min() >= 0  # 0.3 x depth forward at the far end
    assert centres[2, 0] == pytest.approx(0.4) and centres[6, 0] == pytest.approx(-0.4)  # ±0.1 x depth sideways
