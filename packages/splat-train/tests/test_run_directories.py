"""Run directories: configs round-trip through JSON, and one directory never mixes two experiments."""

import pathlib
from dataclasses import dataclass, field, replace

import pytest
import train_fixtures as F

from splat_train import BootstrapConfig, DiffusionConfig, LoopConfig, MultistepConfig, TeacherStageConfig
from splat_train.runs import StageConfigs, load_run_config, run_stages, save_run_config, stage_weights


@dataclass(frozen=True)
class Experiment:
    name: str = "x"
    path: pathlib.Path | None = None
    sizes: tuple[int, ...] = (1, 2)
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    teacher: TeacherStageConfig = field(default_factory=TeacherStageConfig)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    multistep: MultistepConfig = field(default_factory=MultistepConfig)


FIELDS = ("name", "path", "sizes", "teacher", "bootstrap", "multistep")


def test_config_round_trips_through_the_run_directory(tmp_path: pathlib.Path) -> None:
    experiment = Experiment(
        path=pathlib.Path("/data/x"), sizes=(3, 4, 5), multistep=MultistepConfig(render_steps="final")
    )
    save_run_config(tmp_path, experiment, FIELDS)
    assert load_run_config(tmp_path, Experiment) == experiment


def test_a_run_directory_accepts_longer_training_but_not_another_experiment(tmp_path: pathlib.Path) -> None:
    experiment = Experiment()
    save_run_config(tmp_path, experiment, FIELDS)
    longer = replace(experiment, bootstrap=replace(experiment.bootstrap, loop=LoopConfig(max_steps=10**6)))
    save_run_config(tmp_path, longer, FIELDS)
    assert load_run_config(tmp_path, Experiment).bootstrap.loop.max_steps == 10**6
    other = replace(experiment, teacher=replace(experiment.teacher, learning_rate=1.0))
    with pytest.raises(ValueError, match=r"different configuration \(teacher differ\)"):
        save_run_config(tmp_path, other, FIELDS)


def test_missing_config_and_missing_stage_are_clear_errors(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="no config.json"):
        load_run_config(tmp_path, Experiment)
    with pytest.raises(ValueError, match="no bootstrap checkpoint yet"):
        stage_weights(tmp_path, "bootstrap")


def test_run_stages_takes_one_sampler_per_stage(tmp_path: pathlib.Path) -> None:
    """A mapping stage → sampler feeds each stage (and the normalizer, bootstrap batches) its own batches."""
    calls: list[tuple[str, int]] = []

    def sampler(stage: str, objects: list[int]):
        def sample(step: int, generator) -> object:
            calls.append((stage, len(objects)))
            return F.batch(objects, angles=(0.0, 40.0))

        return sample

    loop = LoopConfig(max_steps=1, log_every=1, progress=False, ema_start=0)
    diffusion = DiffusionConfig(ddim_steps=2)
    configs = StageConfigs(
        TeacherStageConfig(loop=loop),
        BootstrapConfig(loop=loop, diffusion=diffusion),
        MultistepConfig(loop=loop, diffusion=diffusion),
        normalizer_batches=2,
    )
    samplers = {"teacher": sampler("teacher", [0, 1, 2]), "bootstrap": sampler("bootstrap", [0, 1])}
    with pytest.raises(ValueError, match="no sampler for stage 'multistep'"):
        run_stages("all", tmp_path, F.tiny_teacher(), F.tiny_student, samplers, configs)
    assert calls == [] and not (tmp_path / "checkpoints").exists()  # refused before training anything
    samplers["multistep"] = sampler("multistep", [3])
    _, student = run_stages("all", tmp_path / "run", F.tiny_teacher(), F.tiny_student, samplers, configs)
    assert student is not None
    assert calls == [("teacher", 3), ("bootstrap", 2), ("bootstrap", 2), ("bootstrap", 2), ("multistep", 1)]
