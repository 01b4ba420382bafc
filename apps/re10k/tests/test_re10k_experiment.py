"""The experiment's pieces: the student takes its grid and channels from the teacher's map spec (padded, non-square,
2 Gaussians per pixel), the stages' batches put the source first with cameras relative to it, each stage gets its
batch size, old flags and old config.json files still work, and the fly-through starts at the source camera."""

import json
from dataclasses import replace

import pytest
import torch

from app_re10k.app import APP, build_teacher, fly_through_cameras
from app_re10k.experiment import GREY, PRESETS, RE10KExperiment
from splat_apps import build_student
from splat_apps.cli import parse_experiment
from splat_apps.experiment import student_unet
from splat_apps.run_dir import load_run_config
from splat_teachers import Flash3DConfig
from splat_teachers.config_io import to_jsonable


def _with_teacher(experiment: RE10KExperiment, **changes) -> RE10KExperiment:
    return replace(experiment, model=replace(experiment.model, teacher=replace(experiment.model.teacher, **changes)))


def _on(experiment: RE10KExperiment, small_dataset) -> RE10KExperiment:
    """The experiment reading the tests' small synthetic dataset."""
    data = replace(experiment.data, synthetic=small_dataset.options, cache_dir=small_dataset.root.parent)
    return replace(experiment, data=data)


@pytest.mark.parametrize("name", ["cpu-demo", "re10k"])
def test_the_student_unet_takes_grid_and_channels_from_the_teachers_map(name: str) -> None:
    experiment = PRESETS[name]()
    spec = experiment.model.teacher.map_spec
    unet = student_unet(experiment.model.student_unet, spec)
    assert (unet.resolution, unet.width) == (spec.height, spec.width)
    assert (unet.in_channels, unet.out_channels) == (3 + spec.channels, spec.channels)
    assert spec.gaussians_per_pixel == 2 and unet.noise_embedding
    assert experiment.background == GREY == (0.5, 0.5, 0.5)  # Flash3D evaluates on grey; every stage uses it too
    if name == "re10k":  # Flash3D's 256x384 frames padded by 32 px: 2 x 24 channels over 320x448
        assert (unet.resolution, unet.width, unet.in_channels) == (320, 448, 51)
        assert experiment.image_size == (256, 384) and experiment.device == "cuda"
    else:
        assert experiment.image_size == (64, 96) and experiment.device == "cpu"


def test_a_padded_non_square_student_denoises_maps_of_the_teachers_layout() -> None:
    experiment = _with_teacher(PRESETS["cpu-demo"](), height=32, width=64, padding=32)
    unet = replace(experiment.model.student_unet, model_channels=8, attn_resolutions=(12,))
    experiment = replace(experiment, model=replace(experiment.model, student_unet=unet))
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
    experiment = PRESETS["cpu-demo"]()
    unet = replace(experiment.model.student_unet, attn_resolutions=(24,))
    with pytest.raises(ValueError, match=r"attn-resolutions \[24\]: not a level of the 64x96 map"):
        student_unet(unet, experiment.model.teacher.map_spec)
    spec = Flash3DConfig(height=32, width=64, padding=32).map_spec  # levels 96, 48, 24, 12 rows
    assert student_unet(replace(unet, attn_resolutions=(12,)), spec).width == 128


def test_stage_batches_hold_the_source_first_with_an_identity_camera(small_dataset) -> None:
    experiment = _on(_with_teacher(PRESETS["cpu-demo"](), height=32, width=64), small_dataset)  # 32x48: resized
    sources, description = APP.training_data(experiment, APP.data(experiment))
    assert "3 training clips, 120 source frames · 32x64" in description
    batch = sources["teacher"].make_batch([0, 50, 119], [1, 2, 3])
    assert batch.source_images.shape == (3, 3, 32, 64) and batch.num_views == 4  # the source + 3 targets
    torch.testing.assert_close(batch.target_images[:, 0], batch.source_images)
    torch.testing.assert_close(batch.source_cameras.world_to_cam, torch.eye(4).expand(3, 1, 4, 4), atol=0, rtol=0)
    torch.testing.assert_close(batch.target_cameras.world_to_cam[:, 0], torch.eye(4).expand(3, 4, 4), atol=1e-6, rtol=0)
    novel = replace(experiment, data=replace(experiment.data, render_source=False))
    without = APP.training_data(novel, APP.data(novel))[0]["teacher"].make_batch([0, 50, 119], [1, 2, 3])
    assert without.num_views == 3
    torch.testing.assert_close(without.target_images, batch.target_images[:, 1:])
    torch.testing.assert_close(without.target_cameras.world_to_cam, batch.target_cameras.world_to_cam[:, 1:])


def test_each_stage_samples_its_own_batch_size(small_dataset) -> None:
    experiment = _on(_with_teacher(PRESETS["cpu-demo"](), height=32, width=64), small_dataset)
    experiment = replace(experiment, data=replace(experiment.data, batch_size=3, multistep_batch_size=1))
    sources, _ = APP.training_data(experiment, APP.data(experiment))
    sizes = {
        stage: batches.make_batch([0] * batches.batch_size, [5] * batches.batch_size).batch_size
        for stage, batches in sources.items()
    }
    assert sizes == {"teacher": 3, "bootstrap": 3, "multistep": 1}
    first, again, other = (
        sources["teacher"].make_batch([0, 1, 2], seeds) for seeds in ([4, 5, 6], [4, 5, 6], [7, 8, 9])
    )
    torch.testing.assert_close(first.target_images, again.target_images)  # all randomness from the seeds
    assert not torch.equal(first.target_images, other.target_images)


def test_the_flags_of_older_versions_set_the_one_diffusion_and_background() -> None:
    argv = ["--multistep.diffusion.ddim-steps", "3", "--bootstrap.diffusion.ddim-steps", "3"]
    argv += ["--eval.background", "0.2", "0.2", "0.2", "--data", "/somewhere", "--preset", "re10k"]
    experiment = parse_experiment(
        RE10KExperiment, PRESETS, argv, default_preset="cpu-demo", description="", aliases=APP.aliases
    )
    assert experiment.diffusion.ddim_steps == 3 and experiment.background == (0.2, 0.2, 0.2)
    assert str(experiment.data.root) == "/somewhere" and experiment.preset == "re10k"


def test_a_config_json_of_the_older_layout_loads_as_the_same_experiment(tmp_path) -> None:
    """Before the port every stage (and `eval`) had its own background and each student stage its diffusion."""
    experiment = PRESETS["cpu-demo"]()
    old = to_jsonable(experiment)
    diffusion, background = old.pop("diffusion"), old.pop("background")
    for stage in ("teacher", "bootstrap", "multistep"):
        old[stage]["background"] = background
    old["bootstrap"]["diffusion"] = old["multistep"]["diffusion"] = diffusion
    old["eval"] = {k: v for k, v in old["eval"].items() if k not in ("grid_views", "view_chunk", "split_file")}
    old["eval"]["background"] = background
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert load_run_config(tmp_path, RE10KExperiment) == experiment


def test_the_fly_through_starts_at_the_source_camera_and_moves_into_the_scene() -> None:
    K = torch.tensor([[60.0, 0.0, 48.0], [0.0, 60.0, 32.0], [0.0, 0.0, 1.0]])
    cameras = fly_through_cameras(K, 96, 64, depth=4.0, frames=8)
    assert cameras.num_views == 8
    torch.testing.assert_close(cameras.world_to_cam[0, 0], torch.eye(4))
    centres = cameras.centers[0]
    assert centres[4, 2] == pytest.approx(1.2) and centres[:, 2].min() >= 0  # 0.3 x depth forward at the far end
    assert centres[2, 0] == pytest.approx(0.4) and centres[6, 0] == pytest.approx(-0.4)  # ±0.1 x depth sideways
