"""What the apps' `train.py`, `eval.py` and `sample.py` share: an experiment's run-directory fields and stage configs,
a command's device setup, the teacher stage's LPIPS model, a run directory's trained models, evaluation overrides,
and `main`'s distributed setup with one-line errors.

An experiment is an app's frozen config with `teacher`, `bootstrap`, `multistep` (the stage configs) and
`normalizer_batches` fields (see apps/srn/experiment.py)."""

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch
from rich.console import Console

from splat_train import distributed
from splat_train.loop import NonFiniteLossError
from splat_train.perceptual import LPIPSWeightsMissing, load_lpips_vgg
from splat_train.runs import StageConfigs, run_stages, stage_weights
from splat_train.stages import BootstrapConfig, MultistepConfig, TeacherStageConfig

Experiment = TypeVar("Experiment")
Teacher = TypeVar("Teacher", bound=torch.nn.Module)
Student = TypeVar("Student", bound=torch.nn.Module)


@runtime_checkable
class StagedExperiment(Protocol):
    """An app experiment: the three stage configs and the normalizer's batch count."""

    teacher: TeacherStageConfig
    bootstrap: BootstrapConfig
    multistep: MultistepConfig
    normalizer_batches: int


def training_fields(teacher_source: str) -> tuple[str, ...]:
    """The fields that define what a run learns: a run directory refuses a config that differs in any of them (apart
    from loop lengths and logging, see `splat_train.runs.save_run_config`). `teacher_source` names the field that
    points at given teacher weights (`teacher_checkpoint`, `teacher_weights`)."""
    return ("preset", teacher_source, "normalizer_batches", "data", "model", "teacher", "bootstrap", "multistep")


def stage_configs(experiment: StagedExperiment) -> StageConfigs:
    """The experiment's three stage configs and normalizer batches, as `run_stages` takes them."""
    return StageConfigs(experiment.teacher, experiment.bootstrap, experiment.multistep, experiment.normalizer_batches)


def prepare_device(device: str, threads: int | None) -> None:
    """Set torch's CPU threads (None: torch's default) and refuse `--device cuda` on a machine without CUDA."""
    if threads is not None:
        torch.set_num_threads(threads)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")


def teacher_lpips_model(
    stage: str, teacher: TeacherStageConfig, device: str, *, train_the_teacher: bool
) -> torch.nn.Module | None:
    """LPIPS-VGG for the teacher stage's LPIPS phase, when this run trains the teacher and the phase is on (else
    None); missing VGG16 weights become a ValueError that says how to skip the phase."""
    if not train_the_teacher or stage not in ("all", "teacher") or teacher.lpips_start_step is None:
        return None
    try:
        return load_lpips_vgg().to(device)
    except LPIPSWeightsMissing as error:
        raise ValueError(f"{error} (or pass --teacher.lpips-start-step None)") from None


def train_stages(
    experiment: Any,
    teacher: Teacher,
    make_student: Callable[[Teacher], Student],
    batches: Any,
    console: Console,
    *,
    train_the_teacher: bool,
) -> tuple[Teacher, Student] | None:
    """`run_stages` for `experiment.stage` in `experiment.run_dir`, with the experiment's stage configs and the teacher
    stage's LPIPS model. Returns the trained (EMA) teacher and student when this process evaluates next (stage `all` or
    `eval`, rank 0), else None."""
    stage = experiment.stage
    lpips_model = teacher_lpips_model(stage, experiment.teacher, experiment.device, train_the_teacher=train_the_teacher)
    teacher, student = run_stages(
        stage,
        experiment.run_dir,
        teacher,
        make_student,
        batches,
        stage_configs(experiment),
        train_the_teacher=train_the_teacher,
        lpips_model=lpips_model,
        report=console.print,
    )
    if stage not in ("all", "eval") or not distributed.is_main():
        return None
    return teacher, student


def load_trained_models(
    run_dir: str | Path, teacher: Teacher, build_student: Callable[[Teacher], Student], *, trained_teacher: bool
) -> tuple[Teacher, Student]:
    """A run directory's models in eval mode: the teacher (its last checkpoint's EMA when the run trained it, else
    as given) and the student built on it with the final multi-step checkpoint's EMA."""
    if trained_teacher:
        teacher.load_state_dict(stage_weights(run_dir, "teacher"))
    student = build_student(teacher)
    student.load_state_dict(stage_weights(run_dir, "multistep"))
    return teacher.eval(), student.eval()


def with_eval_overrides(experiment: Experiment, run_dir: Path, device: str | None, **overrides: Any) -> Experiment:
    """The saved experiment for a re-evaluation: its run directory, `device` (None: the saved one) and every
    `eval` field in `overrides` that is not None."""
    experiment = replace(experiment, run_dir=run_dir, device=device or experiment.device)
    given = {name: value for name, value in overrides.items() if value is not None}
    return replace(experiment, eval=replace(experiment.eval, **given))


def run_main(run: Callable[[Experiment, Console], None], experiment: Experiment, console: Console) -> int:
    """A training command's `main`: start the process group under torchrun (a no-op otherwise), let rank 0 alone
    print, run, and turn a ValueError or a non-finite loss into one red line and exit status 1 (0 on success); the
    process group is shut down in every case."""
    try:
        distributed.init_distributed(experiment.device)
        console.quiet = not distributed.is_main()
        run(experiment, console)
    except (ValueError, NonFiniteLossError) as error:
        console.print(f"[red]error:[/red] {error}")
        return 1
    finally:
        distributed.shutdown()
    return 0
