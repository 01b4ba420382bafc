"""The experiment's pieces: the student takes its grid and channels from the teacher's map spec (padded, non-square,
2 Gaussians per pixel), batches put the source first with cameras relative to it, each stage gets its batch size, and
the fly-through starts at the source camera."""

from dataclasses import replace

import pytest
import torch

from splat_teachers import Flash3DConfig

# sibling modules of apps/re10k; left unsorted because ruff would call `data` first-party whenever a data/ folder
# exists at the repository root
# isort: off
from data import TrainingExamples
from experiment import (
    RE10KExperiment,
    batch_samplers,
    build_student,
    build_teacher,
    example_config,
    preset,
    student_unet,
    to_view_batch,
)
from sample import fly_through_cameras
# isort: on


def _with_teacher(experiment: RE10KExperiment, **changes) -> RE10KExperiment:
    return replace(experiment, model=replace(experiment.model, teacher=replace(experiment.model.teacher, **changes)))


@pytest.mark.parametrize("name", ["cpu-demo", "re10k"])
def test_the_student_unet_takes_grid_and_channels_from_the_teachers_map(name: str) -> None:
    experiment = preset(name)
    spec = experiment.model.teacher.map_spec
    unet = student_unet(experiment, spec)
    assert (unet.resolution, unet.width) == (spec.height, spec.width)
    assert (unet.in_channels, unet.out_channels) == (3 + spec.channels, spec.channels)
    assert spec.gaussians_per_pixel == 2 and unet.noise_embedding
    if name == "re10k":  # Flash3D's 256x384 frames padded by 32 px: 2 x 24 channels over 320x448
        assert (unet.resolution, unet.width, unet.in_channels) == (320, 448, 51)
        assert experiment.image_size == (256, 384) and experiment.device == "cuda"
    else:
        assert experiment.image_size == (64, 96) and experiment.device == "cpu"


def test_a_padded_non_square_student_denoises_maps_of_the_teachers_layout() -> None:
    experiment = preset("cpu-demo")
    experiment = _with_teacher(experiment, height=32, width=64, padding=32)
    experiment = replace(
        experiment,
        model=replace(
            experiment.model,
            student_unet=replace(experiment.model.student_unet, model_channels=8, attn_resolutions=(12,)),
        ),
    )
    teacher = build_teacher(experiment).eval()
    student = build_student(experiment, teacher).eval()
    spec = teacher.map_spec
    assert (spec.height, spec.width) == (96, 128)
    images = torch.rand(2, 3, 32, 64, generator=torch.Generator().manual_seed(0))
    noisy = torch.randn(2, spec.channels, spec.height, spec.width, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        denoised = student(noisy, torch.tensor([5, 60]), images)
    assert denoised.shape == noisy.shape and torch.isfinite(denoised).all()


def test_attention_at_a_level_the_map_does_not_have_is_a_value_error() -> None:
    experiment = preset("cpu-demo")
    experiment = replace(
        experiment,
        model=replace(experiment.model, student_unet=replace(experiment.model.student_unet, attn_resolutions=(24,))),
    )
    with pytest.raises(ValueError, match=r"attn-resolutions \[24\]: not a level of the 64x96 map"):
        student_unet(experiment, experiment.model.teacher.map_spec)
    spec = Flash3DConfig(height=32, width=64, padding=32).map_spec  # levels 96, 48, 24, 12 rows
    padded = replace(experiment.model.student_unet, attn_resolutions=(12,))
    assert student_unet(replace(experiment, model=replace(experiment.model, student_unet=padded)), spec).width == 128


def test_view_batches_hold_the_source_first_with_an_identity_camera(small_dataset) -> None:
    experiment = _with_teacher(preset("cpu-demo"), height=32, width=64)  # the small dataset is 32x48: resized
    examples = TrainingExamples(small_dataset.open("train"), example_config(experiment))
    batch = examples.sample_batch(3, torch.Generator().manual_seed(0))
    with_source = to_view_batch(batch, "cpu")
    assert with_source.source_images.shape == (3, 3, 32, 64) and with_source.num_views == 4
    torch.testing.assert_close(with_source.target_images[:, 0], with_source.source_images)
    torch.testing.assert_close(with_source.source_cameras.world_to_cam, torch.eye(4).expand(3, 1, 4, 4))
    novel = to_view_batch(batch, "cpu", render_source=False)
    assert novel.num_views == 3
    torch.testing.assert_close(novel.target_images, batch.images[:, 1:])
    torch.testing.assert_close(novel.target_cameras.world_to_cam, batch.cameras.world_to_cam[:, 1:])


def test_each_stage_samples_its_own_batch_size(small_dataset) -> None:
    experiment = _with_teacher(preset("cpu-demo"), height=32, width=64)
    experiment = replace(experiment, data=replace(experiment.data, batch_size=3, multistep_batch_size=1))
    samplers = batch_samplers(TrainingExamples(small_dataset.open("train"), example_config(experiment)), experiment)
    sizes = {
        stage: batches.make_batch([0] * batches.batch_size, [5] * batches.batch_size).batch_size
        for stage, batches in samplers.items()
    }
    assert sizes == {"teacher": 3, "bootstrap": 3, "multistep": 1}
    first, again, other = (
        samplers["teacher"].make_batch([0, 1, 2], seeds) for seeds in ([4, 5, 6], [4, 5, 6], [7, 8, 9])
    )
    torch.testing.assert_close(first.target_images, again.target_images)  # all randomness from the seeds
    assert not torch.equal(first.target_images, other.target_images)


def test_the_fly_through_starts_at_the_source_camera_and_moves_into_the_scene() -> None:
    K = torch.tensor([[60.0, 0.0, 48.0], [0.0, 60.0, 32.0], [0.0, 0.0, 1.0]])
    cameras = fly_through_cameras(K, 96, 64, depth=4.0, frames=8)
    assert cameras.num_views == 8
    torch.testing.assert_close(cameras.world_to_cam[0, 0], torch.eye(4))
    centres = cameras.centers[0]
    assert centres[4, 2] == pytest.approx(1.2) and centres[:, 2].min() >= 0  # 0.3 x depth forward at the far end
    assert centres[2, 0] == pytest.approx(0.4) and centres[6, 0] == pytest.approx(-0.4)  # ±0.1 x depth sideways
