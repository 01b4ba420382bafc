"""The experiment wiring: presets, the command line (and the flags of older versions), origin distances as teacher
inputs, official checkpoints, the student on the teacher's map, and the run directory's config round trip."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from co3d_fixtures import random_sequence_arrays, write_sequence
from safetensors.torch import save_file

from app_co3d import APP
from app_co3d.app import build_teacher, teacher_config, training_batches
from app_co3d.data import Co3DDataset
from app_co3d.experiment import BLACK, PRESETS, Co3DExperiment, ModelConfig, preset
from splat_apps import build_student, collate
from splat_apps.cli import parse_experiment
from splat_apps.run_dir import load_run_config, save_run_config
from splat_teachers import SplatterImage, unet_preset

SIDE = 16


def parse(argv: list[str]) -> Co3DExperiment:
    """train.py's command line (`splat_apps.train_main` parses it the same way)."""
    return parse_experiment(
        APP.experiment_type,
        APP.presets,
        argv,
        default_preset=APP.default_preset,
        description="",
        aliases=APP.aliases,
        run_dir_pattern=f"runs/{APP.name}-{{preset}}",
    )


def tiny(experiment: Co3DExperiment, root: Path | None = None) -> Co3DExperiment:
    """The experiment with 8-channel, one-block networks (and `root` as its data)."""
    model = ModelConfig(
        teacher_unet=replace(experiment.model.teacher_unet, model_channels=8, num_blocks=1),
        student_unet=replace(experiment.model.student_unet, model_channels=8, num_blocks=1),
    )
    return replace(experiment, model=model, data=replace(experiment.data, root=root))


@pytest.fixture
def hydrant_root(tmp_path: Path) -> Path:
    """A preprocessed co3d_hydrant_for_gs folder: two train sequences of 5 views at 16 px (cameras at distance 2-3)."""
    root = tmp_path / "co3d_hydrant_for_gs"
    for index, distance in enumerate((2.0, 3.0)):
        images, focal, R, T = random_sequence_arrays(5, side=SIDE, seed=index)
        T = T * (distance / 2.0)  # orbit_RT puts cameras at distance 2
        write_sequence(root / "train", f"90{index}_1_1", images, focal, R, T)
    return root


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_renders_every_stage_on_black(name: str) -> None:
    experiment = preset(name)
    assert experiment.background == BLACK and experiment.stages.background == BLACK
    assert Co3DExperiment().background == BLACK and Co3DExperiment().stages.background == BLACK


def test_the_hydrant_preset_is_the_papers_setting() -> None:
    experiment = preset("hydrant")
    assert experiment.data.resolution is None  # preprocessed Co3D is stored at 128 px
    assert experiment.model.teacher_unet == unet_preset("splatter-image")
    assert experiment.model.student_unet == unet_preset("medium")
    config = teacher_config(experiment, 128)
    assert config.head.name == "hydrants" and config.head.origin_distance
    assert (config.head.znear, config.head.zfar) == (-2.0, 2.0)
    assert experiment.teacher.lpips_start_step == 800_000 and experiment.teacher.loop.max_steps == 900_000


def test_the_command_line_starts_from_the_preset_and_accepts_overrides() -> None:
    default = parse([])
    assert default.preset == "cpu-demo" and default.data.root is None and default.run_dir == Path("runs/co3d-cpu-demo")
    assert default.data.synthetic.resolution == 32
    experiment = parse(["--preset", "hydrant", "--data", "/data/co3d_hydrant_for_gs", "--eval.num-samples", "2"])
    assert experiment.preset == "hydrant" and experiment.run_dir == Path("runs/co3d-hydrant")
    assert experiment.data.root == Path("/data/co3d_hydrant_for_gs") and experiment.eval.num_samples == 2
    assert experiment.model.student_unet == unet_preset("medium")


def test_the_flags_of_older_versions_set_the_shared_diffusion_and_background() -> None:
    old = ["--multistep.diffusion.ddim-steps", "3", "--bootstrap.diffusion.t-star", "7"]
    experiment = parse([*old, "--multistep.background", "1", "1", "1", "--eval.max-sequences", "3"])
    assert experiment.diffusion.ddim_steps == 3 and experiment.diffusion.t_star == 7
    assert experiment.background == (1.0, 1.0, 1.0) and experiment.eval.max_sequences == 3


def test_batches_carry_the_origin_distance_of_the_source_and_of_every_target(hydrant_root: Path) -> None:
    dataset = Co3DDataset(hydrant_root, "train")
    generator = torch.Generator().manual_seed(3)
    examples = [dataset.training_example(index, 3, generator) for index in (0, 1, 1, 0)]
    batch = collate(examples)
    # oracle, independent of the reader: the world origin sits at X_cam = 0 R + T, so its depth is T_z (PyTorch3D
    # and OpenCV share the z axis)
    with np.load(hydrant_root / "train" / "camera_Ts.npz") as archive:
        T = {name: archive[name] for name in archive.files}
    expected_source = [T[e.item][e.input_view, 2] for e in examples]
    expected_targets = [[T[e.item][int(v), 2] for v in e.target_views] for e in examples]
    torch.testing.assert_close(batch.teacher_inputs["origin_distance"], torch.tensor(expected_source))
    torch.testing.assert_close(batch.target_teacher_inputs["origin_distance"], torch.tensor(expected_targets))
    assert batch.source_cameras.world_to_cam.eq(torch.eye(4)).all()  # cameras relative to the input view


def test_training_batches_draw_each_sequences_views_from_its_own_seed(hydrant_root: Path) -> None:
    experiment = tiny(preset("cpu-demo"), hydrant_root)
    batches = training_batches(Co3DDataset(hydrant_root, "train"), experiment)
    assert batches.num_items == 2 and batches.batch_size == experiment.data.batch_size
    forward, backward = batches.make_batch([0, 1], [3, 4]), batches.make_batch([1, 0], [4, 3])
    # sequence 0 with seed 3 is the same example at position 0 of one batch and at position 1 of the other (so it
    # trains the same on whichever rank it lands)
    for inputs, flipped in (
        (forward.teacher_inputs, backward.teacher_inputs),
        (forward.target_teacher_inputs, backward.target_teacher_inputs),
    ):
        torch.testing.assert_close(inputs["origin_distance"], flipped["origin_distance"].flip(0))
    torch.testing.assert_close(forward.target_images, backward.target_images.flip(0))
    reseeded = batches.make_batch([0, 1], [3, 5])
    assert not torch.equal(reseeded.target_images[1], forward.target_images[1])  # another seed, other views
    with pytest.raises(ValueError):
        batches.make_batch([0, 1], [3])


def test_the_teacher_takes_the_origin_distance_as_a_depth_offset(hydrant_root: Path) -> None:
    experiment = tiny(preset("cpu-demo"), hydrant_root)
    batch = training_batches(Co3DDataset(hydrant_root, "train"), experiment).make_batch([0, 1], [0, 1])
    teacher = build_teacher(experiment, SIDE)
    with pytest.raises(ValueError, match="origin_distance"):
        teacher(batch.source_images, batch.source_cameras)
    with torch.no_grad():
        output = teacher(batch.source_images, batch.source_cameras, **batch.teacher_inputs)
        shifted = teacher(
            batch.source_images, batch.source_cameras, origin_distance=batch.teacher_inputs["origin_distance"] + 1
        )
    # moving the world origin 1 unit further moves every Gaussian 1 unit further along its pixel ray (z = 1 rays)
    torch.testing.assert_close(
        shifted.gaussians.means[..., 2] - output.gaussians.means[..., 2],
        torch.ones_like(output.gaussians.means[..., 2]),
    )
    student = build_student(experiment, teacher)
    assert student.config.unet.resolution == SIDE  # the student's size and channels come from the teacher's map
    assert student.config.unet.in_channels == 3 + teacher.map_spec.channels
    assert student.config.unet.out_channels == teacher.map_spec.channels


def test_an_official_checkpoint_is_loaded_with_the_hydrants_head(tmp_path: Path) -> None:
    experiment = tiny(preset("cpu-demo"))
    original = SplatterImage(teacher_config(experiment, SIDE), generator=torch.Generator().manual_seed(5))
    path = tmp_path / "model_hydrants.safetensors"
    save_file({k: v.contiguous() for k, v in original.state_dict().items()}, path)
    loaded = build_teacher(replace(experiment, teacher_checkpoint=path), SIDE)
    assert loaded.head.name == "hydrants" and loaded.head.origin_distance
    for name, value in original.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value)
    with pytest.raises(ValueError, match="set --data.resolution 16"):
        build_teacher(replace(experiment, teacher_checkpoint=path), 32)


def test_the_run_config_round_trips(tmp_path: Path) -> None:
    for name in PRESETS:
        experiment = replace(preset(name), run_dir=tmp_path / name, data=replace(preset(name).data, root=tmp_path))
        save_run_config(experiment.run_dir, experiment)
        assert load_run_config(tmp_path / name, Co3DExperiment) == experiment
