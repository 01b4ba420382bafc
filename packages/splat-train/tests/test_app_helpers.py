"""The apps' shared helpers: run-directory fields, stage configs, device setup, the teacher's LPIPS model, loading a
run directory's models, evaluation overrides and `run_main`'s exit status and one-line errors."""

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from rich.console import Console

from splat_train import BootstrapConfig, MultistepConfig, NonFiniteLossError, TeacherStageConfig, app, distributed
from splat_train.checkpoint import TrainingState, save_checkpoint
from splat_train.perceptual import LPIPSWeightsMissing
from splat_train.runs import save_run_config


@dataclass(frozen=True)
class Eval:
    split: str = "test"
    num_samples: int = 4
    lpips: bool = True


@dataclass(frozen=True)
class Experiment:
    preset: str = "demo"
    run_dir: Path = Path("runs/demo")
    device: str = "cpu"
    teacher_checkpoint: Path | None = None
    normalizer_batches: int = 3
    data: int = 1
    model: int = 2
    teacher: TeacherStageConfig = TeacherStageConfig(learning_rate=1e-3)
    bootstrap: BootstrapConfig = BootstrapConfig()
    multistep: MultistepConfig = MultistepConfig()
    eval: Eval = field(default_factory=Eval)


def test_training_fields_name_the_teacher_source_and_every_stage() -> None:
    fields = app.training_fields("teacher_weights")
    assert "teacher_weights" in fields and "teacher_checkpoint" not in fields
    assert {"preset", "data", "model", "teacher", "bootstrap", "multistep", "normalizer_batches"} <= set(fields)
    assert "eval" not in fields and "device" not in fields and "run_dir" not in fields


def test_a_run_directory_refuses_another_teacher_source_but_not_another_evaluation(tmp_path: Path) -> None:
    fields = app.training_fields("teacher_checkpoint")
    save_run_config(tmp_path, Experiment(run_dir=tmp_path), fields)
    save_run_config(tmp_path, Experiment(run_dir=tmp_path, eval=Eval(num_samples=1)), fields)
    with pytest.raises(ValueError, match="teacher_checkpoint"):
        save_run_config(tmp_path, Experiment(run_dir=tmp_path, teacher_checkpoint=Path("t.pth")), fields)


def test_stage_configs_are_the_experiments_own() -> None:
    experiment = Experiment()
    configs = app.stage_configs(experiment)
    assert configs.teacher is experiment.teacher and configs.bootstrap is experiment.bootstrap
    assert configs.multistep is experiment.multistep and configs.normalizer_batches == 3


def test_prepare_device_sets_threads_and_refuses_missing_cuda() -> None:
    before = torch.get_num_threads()
    try:
        app.prepare_device("cpu", 1)
        assert torch.get_num_threads() == 1
        app.prepare_device("cpu", None)
        assert torch.get_num_threads() == 1  # None leaves torch's setting alone
    finally:
        torch.set_num_threads(before)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--device cuda:1: CUDA is not available"):
            app.prepare_device("cuda:1", None)


def test_the_teacher_lpips_model_is_loaded_only_for_a_teacher_stage_that_uses_it(monkeypatch) -> None:
    calls = []

    def missing():
        calls.append(1)
        raise LPIPSWeightsMissing("no VGG16 weights")

    monkeypatch.setattr(app, "load_lpips_vgg", missing)
    lpips_on = TeacherStageConfig(lpips_start_step=10)
    assert app.teacher_lpips_model("bootstrap", lpips_on, "cpu", train_the_teacher=True) is None
    assert app.teacher_lpips_model("all", lpips_on, "cpu", train_the_teacher=False) is None
    assert app.teacher_lpips_model("all", TeacherStageConfig(), "cpu", train_the_teacher=True) is None
    assert not calls
    with pytest.raises(ValueError, match=r"no VGG16 weights \(or pass --teacher.lpips-start-step None\)"):
        app.teacher_lpips_model("teacher", lpips_on, "cpu", train_the_teacher=True)
    assert calls == [1]
    monkeypatch.setattr(app, "load_lpips_vgg", lambda: torch.nn.Identity())
    assert isinstance(app.teacher_lpips_model("all", lpips_on, "cpu", train_the_teacher=True), torch.nn.Identity)


def _save(run_dir: Path, stage: str, module: torch.nn.Module, ema_value: float) -> None:
    ema = {k: torch.full_like(v, ema_value) for k, v in module.state_dict().items()}
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1).state_dict()
    state = TrainingState(step=1, model=module.state_dict(), ema=ema, optimizer=optimizer, rng={}, config={}, extra={})
    save_checkpoint(run_dir / "checkpoints" / stage, state)


def test_load_trained_models_takes_the_ema_weights_of_the_run(tmp_path: Path) -> None:
    _save(tmp_path, "teacher", torch.nn.Linear(2, 2), 1.0)
    _save(tmp_path, "multistep", torch.nn.Linear(2, 3), 2.0)
    built = []

    def build_student(teacher: torch.nn.Module) -> torch.nn.Module:
        built.append(teacher)
        return torch.nn.Linear(2, 3)

    teacher, student = app.load_trained_models(tmp_path, torch.nn.Linear(2, 2), build_student, trained_teacher=True)
    assert built == [teacher] and not teacher.training and not student.training
    assert teacher.weight.eq(1.0).all() and student.weight.eq(2.0).all()
    given = torch.nn.Linear(2, 2)
    original = given.weight.detach().clone()
    teacher, _ = app.load_trained_models(tmp_path, given, build_student, trained_teacher=False)
    assert torch.equal(teacher.weight, original)  # given weights (an official checkpoint) are kept
    with pytest.raises(ValueError, match="no multistep checkpoint"):
        app.load_trained_models(tmp_path / "empty", given, build_student, trained_teacher=False)


def test_eval_overrides_replace_only_the_given_fields() -> None:
    experiment = Experiment(device="cuda")
    changed = app.with_eval_overrides(experiment, Path("elsewhere"), None, split="val", num_samples=None, lpips=False)
    assert changed.run_dir == Path("elsewhere") and changed.device == "cuda"
    assert changed.eval == Eval(split="val", num_samples=4, lpips=False)
    assert app.with_eval_overrides(experiment, Path("x"), "cpu").device == "cpu"
    with pytest.raises(TypeError):
        app.with_eval_overrides(experiment, Path("x"), None, not_a_field=1)


@pytest.mark.parametrize(
    ("error", "status"),
    [(None, 0), (ValueError("bad --data.root"), 1), (NonFiniteLossError("loss is nan at step 3"), 1)],
)
def test_run_main_turns_errors_into_one_line_and_exit_status_one(error: Exception | None, status: int) -> None:
    console = Console(record=True, width=200)
    seen = []

    def run(experiment: Experiment, console: Console) -> None:
        seen.append((experiment, console.quiet))
        if error is not None:
            raise error

    assert app.run_main(run, Experiment(), console) == status
    assert seen == [(Experiment(), False)]  # one process: it is rank 0 and prints
    assert not distributed.is_distributed()
    text = console.export_text()
    assert text == ("" if error is None else f"error: {error}\n")


def test_run_main_lets_other_errors_through() -> None:
    def run(experiment: Experiment, console: Console) -> None:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        app.run_main(run, Experiment(), Console(quiet=True))
