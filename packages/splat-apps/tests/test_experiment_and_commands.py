"""The shared experiment config and command plumbing: which fields define a run, the stage configs an experiment
trains with, device setup, the teacher's LPIPS model, a run directory's trained models, the student built on the
teacher's map, and one-line errors with exit status 1."""

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from rich.console import Console

from splat_apps import Experiment, commands, training_fields
from splat_apps.experiment import EvalOptions, load_trained_models, prepare_device, student_unet
from splat_teachers import UNetConfig
from splat_teachers.pixel_gaussians import GaussianMapSpec
from splat_train import DiffusionConfig, NonFiniteLossError, TeacherStageConfig
from splat_train.checkpoint import TrainingState, save_checkpoint
from splat_train.perceptual import LPIPSWeightsMissing


@dataclass(frozen=True)
class Eval(EvalOptions):
    split: str = "test"


@dataclass(frozen=True)
class ToyExperiment(Experiment):
    teacher_weights: Path | None = None
    data: int = 1
    model: int = 2
    eval: Eval = Eval()

    @property
    def given_teacher(self) -> Path | None:
        return self.teacher_weights


def test_training_fields_are_all_but_where_a_run_executes_and_how_it_is_evaluated() -> None:
    fields = training_fields(ToyExperiment)
    assert {"preset", "teacher_weights", "data", "model", "teacher", "bootstrap", "multistep"} <= set(fields)
    assert {"diffusion", "background", "normalizer_batches"} <= set(fields)
    assert not {"eval", "device", "run_dir", "stage", "threads"} & set(fields)


def test_the_stages_share_the_experiments_one_diffusion_process_and_background() -> None:
    experiment = ToyExperiment(diffusion=DiffusionConfig(t_star=30), background=(0.0, 0.0, 0.0), normalizer_batches=3)
    stages = experiment.stages
    assert stages.teacher is experiment.teacher and stages.bootstrap is experiment.bootstrap
    assert stages.diffusion.t_star == 30 and stages.background == (0.0, 0.0, 0.0) and stages.normalizer_batches == 3


def test_prepare_device_sets_threads_and_refuses_missing_cuda() -> None:
    before = torch.get_num_threads()
    try:
        prepare_device("cpu", 1)
        assert torch.get_num_threads() == 1
        prepare_device("cpu", None)
        assert torch.get_num_threads() == 1  # None leaves torch's setting alone
    finally:
        torch.set_num_threads(before)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--device cuda:1: CUDA is not available"):
            prepare_device("cuda:1", None)


def test_the_teacher_lpips_model_is_loaded_only_for_a_teacher_stage_that_uses_it(monkeypatch) -> None:
    calls = []

    def missing():
        calls.append(1)
        raise LPIPSWeightsMissing("no VGG16 weights")

    monkeypatch.setattr(commands, "load_lpips", missing)
    lpips_on = TeacherStageConfig(lpips_start_step=10)
    experiment = ToyExperiment(teacher=lpips_on, stage="bootstrap")
    assert commands.teacher_lpips_model(experiment, train_the_teacher=True) is None
    assert commands.teacher_lpips_model(ToyExperiment(teacher=lpips_on), train_the_teacher=False) is None
    assert commands.teacher_lpips_model(ToyExperiment(), train_the_teacher=True) is None
    assert not calls
    with pytest.raises(ValueError, match=r"no VGG16 weights \(or pass --teacher.lpips-start-step None\)"):
        commands.teacher_lpips_model(ToyExperiment(teacher=lpips_on, stage="teacher"), train_the_teacher=True)
    assert calls == [1]
    monkeypatch.setattr(commands, "load_lpips", lambda: torch.nn.Identity())
    model = commands.teacher_lpips_model(ToyExperiment(teacher=lpips_on), train_the_teacher=True)
    assert isinstance(model, torch.nn.Identity)


def _save(run_dir: Path, stage: str, module: torch.nn.Module, ema_value: float) -> None:
    ema = {k: torch.full_like(v, ema_value) for k, v in module.state_dict().items()}
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1).state_dict()
    state = TrainingState(step=1, model=module.state_dict(), ema=ema, optimizer=optimizer, rng={}, config={})
    save_checkpoint(run_dir / "checkpoints" / stage, state)


def test_load_trained_models_takes_the_ema_weights_of_the_run(tmp_path: Path) -> None:
    _save(tmp_path, "teacher", torch.nn.Linear(2, 2), 1.0)
    _save(tmp_path, "multistep", torch.nn.Linear(2, 3), 2.0)
    built = []

    def build_student(teacher: torch.nn.Module) -> torch.nn.Module:
        built.append(teacher)
        return torch.nn.Linear(2, 3)

    experiment = ToyExperiment(run_dir=tmp_path)
    teacher, student = load_trained_models(experiment, torch.nn.Linear(2, 2), build_student)
    assert built == [teacher] and not teacher.training and not student.training
    assert teacher.weight.eq(1.0).all() and student.weight.eq(2.0).all()
    given = torch.nn.Linear(2, 2)
    original = given.weight.detach().clone()
    teacher, _ = load_trained_models(ToyExperiment(run_dir=tmp_path, teacher_weights=Path("t")), given, build_student)
    assert torch.equal(teacher.weight, original)  # given weights (an official checkpoint) are kept
    with pytest.raises(ValueError, match="no multistep checkpoint"):
        load_trained_models(ToyExperiment(run_dir=tmp_path / "empty", teacher_weights=Path("t")), given, build_student)


def test_the_student_unet_is_sized_from_the_teachers_map_and_refuses_an_attention_level_it_lacks() -> None:
    spec = GaussianMapSpec(height=40, width=56, gaussians_per_pixel=2, padding=4)
    unet = student_unet(UNetConfig(channel_mult=(1, 2, 2, 2), attn_resolutions=(5,), noise_embedding=True), spec)
    assert (unet.resolution, unet.width, unet.in_channels, unet.out_channels) == (40, 56, 3 + 48, 48)
    square = GaussianMapSpec(height=32, width=32)
    assert student_unet(UNetConfig(channel_mult=(1, 2), attn_resolutions=(16,)), square).width is None
    with pytest.raises(ValueError, match=r"attn-resolutions \[7\]: not a level of the 40x56 map"):
        student_unet(UNetConfig(channel_mult=(1, 2, 2, 2), attn_resolutions=(7,)), spec)


@pytest.mark.parametrize(
    ("error", "status"),
    [(None, 0), (ValueError("bad --data.root"), 1), (NonFiniteLossError("loss is nan at step 3"), 1)],
)
def test_commands_turn_errors_into_one_line_and_exit_status_one(error: Exception | None, status: int) -> None:
    console = Console(record=True, width=200)

    def run() -> None:
        if error is not None:
            raise error

    assert commands.one_line_errors(run, console) == status
    assert console.export_text() == ("" if error is None else f"error: {error}\n")


def test_other_errors_are_not_hidden() -> None:
    def run() -> None:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        commands.one_line_errors(run, Console(quiet=True))
