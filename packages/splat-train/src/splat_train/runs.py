"""The stage sequence of a run directory: teacher → bootstrap → multistep, each resuming from its checkpoints, and
the weights of a finished stage.

A run directory holds `checkpoints/<stage>/step_*.safetensors` (see `splat_train.checkpoint`), `metrics.jsonl` (see
`splat_train.loop`) and whatever the application adds (its config, evaluation tables, pictures).
"""

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from .batch import BatchSource
from .checkpoint import latest_checkpoint, load_checkpoint
from .loop import ProgressCallback
from .sharding import ShardedSampler
from .stages import (
    Background,
    BootstrapConfig,
    DiffusionConfig,
    MultistepConfig,
    TeacherStageConfig,
    bootstrap,
    multistep,
    train_teacher,
)
from .student import GaussianDenoiser, map_statistics
from .validation import Problem, at_least, check_config

STAGES = ("teacher", "bootstrap", "multistep")
Stage = Literal["all", "teacher", "bootstrap", "multistep", "eval"]


@dataclass(frozen=True)
class StageConfigs:
    """What the three stages of one run train with: their own configs, and the one diffusion process (both student
    stages) and background colour (every render) they share."""

    teacher: TeacherStageConfig
    bootstrap: BootstrapConfig
    multistep: MultistepConfig
    diffusion: DiffusionConfig = DiffusionConfig()
    background: Background = (1.0, 1.0, 1.0)
    normalizer_batches: int = 16  # bootstrap batches over which the map normalizer's statistics are measured

    def problems(self) -> list[Problem]:
        """What the stages' own checks cannot see: the relations between stage 2 and the shared diffusion process."""
        found = at_least(self, {"normalizer_batches": 1})
        if len(self.background) != 3 or not all(0 <= value <= 1 for value in self.background):
            found.append(("background", "must be three values in [0, 1] (R G B)"))
        low, high = self.diffusion.t_star + 1, self.diffusion.num_train_steps - 1
        if self.multistep.t_start_max is not None and not low <= self.multistep.t_start_max <= high:
            found.append(("multistep.t_start_max", f"must be in t_star + 1..T - 1 = {low}..{high} (or None)"))
        return found


def stage_weights(run_dir: str | os.PathLike, stage: str, *, ema: bool = True) -> dict[str, torch.Tensor]:
    """The (EMA) weights of the newest checkpoint of `stage` in `run_dir`; a ValueError when there is none."""
    path = latest_checkpoint(Path(run_dir) / "checkpoints" / stage)
    if path is None:
        raise ValueError(f"{run_dir}: no {stage} checkpoint yet (run that stage first: --stage {stage})")
    state = load_checkpoint(path)
    return state.ema if ema else state.model


def fit_normalizer(
    student: GaussianDenoiser, teacher: nn.Module, data: BatchSource, batches: int, seed: int = 1234
) -> None:
    """Set the student's map normalizer from the teacher's maps over `batches` training batches (fixed seed).

    Every rank measures the same batches (those of one process), so the statistics agree."""
    sampler = ShardedSampler(data.num_items, data.batch_size, seed=seed)
    teacher.eval()
    with torch.no_grad():
        maps = []
        for step in range(batches):
            plan = sampler.batch(step)
            batch = data.make_batch(list(plan.items), list(plan.seeds))
            maps.append(teacher(batch.source_images, batch.source_cameras, **batch.teacher_inputs).gaussian_map)
    student.set_normalizer(*map_statistics(maps, student.config.std_floor))


def stage_sampler(batches: BatchSource | Mapping[str, BatchSource], stage: str) -> BatchSource:
    """The data of `stage`: `batches` itself, or its entry when it maps stage names to sources (e.g. a smaller batch
    for the multi-step stage, as the paper's 100 → 10)."""
    if not isinstance(batches, Mapping):
        return batches
    if stage not in batches:
        raise ValueError(f"batches has no source for stage {stage!r} (it has {sorted(batches)})")
    return batches[stage]


def run_stages(
    stage: Stage,
    run_dir: str | os.PathLike,
    teacher: nn.Module,
    make_student: Callable[[nn.Module], GaussianDenoiser],
    batches: BatchSource | Mapping[str, BatchSource],
    configs: StageConfigs,
    *,
    train_the_teacher: bool = True,
    lpips_model: nn.Module | None = None,
    report: Callable[[str], None] = lambda message: None,
    progress: ProgressCallback | None = None,
) -> tuple[nn.Module, GaussianDenoiser | None]:
    """teacher → bootstrap → multistep in `run_dir`, each resuming from its checkpoints; `stage` runs everything up
    to and including that stage, loading the (EMA) weights of the stages before it. Returns the teacher and the
    student (None when `stage="teacher"`), both holding EMA weights.

    `train_the_teacher=False` keeps the given teacher (e.g. loaded from an official checkpoint). `batches` is one
    `BatchSource` for every stage or a mapping from stage name to source (`stage_sampler`); the map normalizer is
    fitted on bootstrap batches. Under torchrun every rank calls this; rank 0 writes.
    """
    run_dir = Path(run_dir)
    check_config(configs, f"{run_dir}: bad stage configs")
    wanted = STAGES if stage in ("all", "eval") else STAGES[: STAGES.index(stage) + 1]
    run_now = set(STAGES) if stage == "all" else {stage}
    used = [name for name in wanted if name in run_now and (name != "teacher" or train_the_teacher)]
    sources = {name: stage_sampler(batches, name) for name in used}  # a missing one fails before training
    shared = {"diffusion": configs.diffusion, "background": configs.background, "progress": progress}

    if train_the_teacher:
        if "teacher" in run_now:
            result = train_teacher(
                teacher,
                sources["teacher"],
                configs.teacher,
                run_dir,
                background=configs.background,
                lpips_model=lpips_model,
                progress=progress,
            )
            teacher.load_state_dict(result.ema)
        else:
            teacher.load_state_dict(stage_weights(run_dir, "teacher"))
    teacher.eval()
    if "bootstrap" not in wanted:
        return teacher, None

    student = make_student(teacher)
    report(
        f"teacher {sum(p.numel() for p in teacher.parameters()):,} parameters · "
        f"student {sum(p.numel() for p in student.parameters()):,}"
    )
    if "bootstrap" in run_now:
        fit_normalizer(student, teacher, sources["bootstrap"], configs.normalizer_batches)
        student.load_state_dict(
            bootstrap(student, teacher, sources["bootstrap"], configs.bootstrap, run_dir, **shared).ema
        )
    else:
        student.load_state_dict(stage_weights(run_dir, "bootstrap"))
    if "multistep" not in wanted:
        return teacher, student
    if "multistep" in run_now:
        student.load_state_dict(
            multistep(student, teacher, sources["multistep"], configs.multistep, run_dir, **shared).ema
        )
    else:
        student.load_state_dict(stage_weights(run_dir, "multistep"))
    return teacher, student
