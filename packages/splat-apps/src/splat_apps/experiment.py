"""The experiment config every app shares, and the models a run is made of.

An app's experiment is a frozen dataclass subclassing `Experiment` (where and how a run trains: run directory,
stage, device, the three stage configs and the one diffusion process and background colour they share) and adding
its own `data`, `model` (with at least `student_unet`) and `eval` (an `EvalOptions`) fields, plus the path of given
teacher weights (`teacher_checkpoint` or `teacher_weights`, exposed as `given_teacher`).
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from splat_teachers import GaussianMapSpec, UNetConfig
from splat_train import (
    Background,
    BootstrapConfig,
    DiffusionConfig,
    GaussianDenoiser,
    LoopConfig,
    MultistepConfig,
    StageConfigs,
    StudentConfig,
    TeacherStageConfig,
    stage_weights,
)
from splat_train.runs import Stage
from splat_train.validation import Problem, at_least, check_config

E = TypeVar("E", bound="Experiment")
RUN_FIELDS = ("run_dir", "stage", "device", "threads", "eval")
"""Where and how a run is executed and evaluated; every other field defines what the run learns."""


@dataclass(frozen=True)
class EvalOptions:
    """Evaluation settings every protocol shares (an app subclasses it with its item counts, or narrows `split`)."""

    split: str = "test"  # the dataset split evaluated (results go to <run_dir>/eval/<split>/)
    num_samples: int = 4  # student samples per item (sample 0 is "student"; all of them "student mean of N")
    t_start: int = 30  # the teacher's prediction is noised to t_start, then denoised by DDIM
    lpips: bool = True  # LPIPS-VGG (needs the VGG16 weights in the torch hub cache; skipped with a note otherwise)
    grid_views: int = 4  # novel views per comparison grid
    view_chunk: int = 64  # views rendered and scored per call

    def problems(self) -> list[Problem]:
        """Counts of at least one (`num_samples`, `view_chunk`, an app's `batch_size` and `max_*` limits) or zero
        (`grid_*`); `t_start` against the diffusion process is the experiment's check."""
        names = [f.name for f in fields(self) if f.name != "t_start" and isinstance(getattr(self, f.name), int)]
        counts = {
            name: 0 if name.startswith("grid_") else 1 for name in names if not isinstance(getattr(self, name), bool)
        }
        return at_least(self, counts)


@dataclass(frozen=True)
class Experiment:
    """What every app's experiment holds besides its data, model and evaluation configs."""

    preset: str = "cpu-demo"  # the named defaults this run started from (see --help for the app's presets)
    run_dir: Path = Path("runs/experiment")  # config, checkpoints, metrics.jsonl, eval tables and pictures
    stage: Stage = "all"  # run everything (resuming what is done), or one stage
    device: str = "cpu"  # cpu or cuda
    threads: int | None = None  # torch CPU threads (None: torch's default; 1 is faster on a busy shared machine)
    normalizer_batches: int = 16  # training batches over which the map normalizer's statistics are measured
    diffusion: DiffusionConfig = DiffusionConfig()  # the student's diffusion process (stage 1, stage 2, sampling)
    background: Background = (1.0, 1.0, 1.0)  # RGB behind every render: training stages and evaluation
    teacher: TeacherStageConfig = TeacherStageConfig()
    bootstrap: BootstrapConfig = BootstrapConfig()
    multistep: MultistepConfig = MultistepConfig()

    def problems(self) -> list[Problem]:
        """Where the run executes, the relations between the stages (`StageConfigs.problems`) and the evaluation's
        start time, which DDIM needs in ddim_steps..T − 1; each stage config checks itself (`check_experiment`)."""
        found = at_least(self, {"threads": 1}) + self.stages.problems()
        if not re.fullmatch(r"cpu|cuda(:\d+)?", self.device):
            found.append(("device", "must be cpu, cuda or cuda:N"))
        low, high = self.diffusion.ddim_steps, self.diffusion.num_train_steps - 1
        evaluation = getattr(self, "eval", None)  # an app's experiment adds its `eval` options
        if isinstance(evaluation, EvalOptions) and not low <= evaluation.t_start <= high:
            found.append(("eval.t_start", f"must be in ddim_steps..T - 1 = {low}..{high}"))
        return found

    @property
    def given_teacher(self) -> Path | None:
        """Teacher weights given instead of training a teacher (the app names the field); None: train one."""
        return None

    @property
    def stages(self) -> StageConfigs:
        return StageConfigs(
            self.teacher, self.bootstrap, self.multistep, self.diffusion, self.background, self.normalizer_batches
        )


def check_experiment(experiment: Experiment) -> None:
    """Every option of an experiment, all stages at once, before any data or training work and before `config.json`
    is written: one ValueError listing each bad option by its flag."""
    check_config(experiment, "bad options (nothing was written or trained; fix them and run again)")


def demo_loop(max_steps: int, checkpoint_every: int, ema_decay: float, ema_start: int) -> LoopConfig:
    """A CPU demo stage's loop: a checkpoint every `checkpoint_every` steps, EMA every step from `ema_start` on."""
    return LoopConfig(
        max_steps=max_steps, checkpoint_every=checkpoint_every, ema_decay=ema_decay, ema_every=1, ema_start=ema_start
    )


def training_fields(experiment_type: type) -> tuple[str, ...]:
    """The fields that define what a run learns: all but where it runs and how it is evaluated (`RUN_FIELDS`)."""
    return tuple(f.name for f in fields(experiment_type) if f.name not in RUN_FIELDS)


def student_unet(unet: UNetConfig, spec: GaussianMapSpec) -> UNetConfig:
    """The student's U-Net on the teacher's map grid: size, input (image + map) and output channels from the map."""
    config = replace(
        unet,
        resolution=spec.height,
        width=None if spec.width == spec.height else spec.width,
        in_channels=3 + spec.channels,
        out_channels=spec.channels,
    )
    unknown = sorted(set(config.attn_resolutions) - set(config.level_resolutions))
    if unknown:
        raise ValueError(
            f"--model.student-unet.attn-resolutions {unknown}: not a level of the {spec.height}x{spec.width} map "
            f"(level heights {list(config.level_resolutions)})"
        )
    return config


def build_student(experiment: Any, teacher: nn.Module) -> GaussianDenoiser:
    """The experiment's student (`model.student_unet`) on `teacher`'s Gaussian map."""
    unet = student_unet(experiment.model.student_unet, teacher.map_spec)
    diffusion = experiment.diffusion
    config = StudentConfig(
        unet=unet,
        num_train_steps=diffusion.num_train_steps,
        prediction=diffusion.prediction,
        skip_sigma=diffusion.skip_sigma,
        schedule=diffusion.schedule,
    )
    return GaussianDenoiser(config, teacher.map_spec).to(experiment.device)


def load_trained_models(
    experiment: Any, teacher: nn.Module, make_student: Callable[[nn.Module], nn.Module] | None = None
) -> tuple[nn.Module, nn.Module]:
    """A run directory's models in eval mode: the teacher (its last checkpoint's EMA when the run trained it, else
    as given) and the student built on it with the final multi-step checkpoint's EMA."""
    if experiment.given_teacher is None:
        teacher.load_state_dict(stage_weights(experiment.run_dir, "teacher"))
    student = (make_student or (lambda t: build_student(experiment, t)))(teacher)
    student.load_state_dict(stage_weights(experiment.run_dir, "multistep"))
    return teacher.eval(), student.eval()


def prepare_device(device: str, threads: int | None) -> None:
    """Set torch's CPU threads (None: torch's default) and refuse `--device cuda` on a machine without CUDA."""
    if threads is not None and threads < 1:
        raise ValueError(f"--threads {threads}: must be >= 1 (or leave it out for torch's default)")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise ValueError(f"--device {device}: must be cpu, cuda or cuda:N")
    if threads is not None:
        torch.set_num_threads(threads)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
