"""Run directories shared by the apps: the experiment config as JSON (refusing to mix two experiments in one
directory), typed reloading of that config, the weights of a finished stage, and the stage sequence
teacher → bootstrap → multistep with resuming.

A run directory holds `config.json`, `checkpoints/<stage>/step_*.safetensors` (see `splat_train.checkpoint`),
`metrics.jsonl` (see `splat_train.loop`) and whatever the app adds (evaluation tables, pictures).
"""

import argparse
import dataclasses
import json
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from .batch import BatchSource
from .checkpoint import latest_checkpoint, load_checkpoint
from .distributed import on_main
from .loop import to_jsonable
from .sharding import ShardedSampler
from .stages import (
    Batches,
    BootstrapConfig,
    MultistepConfig,
    TeacherStageConfig,
    bootstrap,
    multistep,
    train_teacher,
)
from .student import GaussianDenoiser, map_statistics

STAGES = ("teacher", "bootstrap", "multistep")
Stage = Literal["all", "teacher", "bootstrap", "multistep", "eval"]
# Loop fields that may change between invocations of one run: training longer, checkpointing or logging differently.
RESUMABLE_LOOP_FIELDS = ("max_steps", "checkpoint_every", "keep_checkpoints", "log_every", "progress", "bf16")


def _training_view(config: dict[str, Any], training_fields: Sequence[str]) -> dict[str, Any]:
    view = {name: config.get(name) for name in training_fields}
    for name, value in view.items():
        if isinstance(value, dict) and isinstance(value.get("loop"), dict):
            loop = {k: v for k, v in value["loop"].items() if k not in RESUMABLE_LOOP_FIELDS}
            view[name] = {**value, "loop": loop}
    return view


def save_run_config(run_dir: str | os.PathLike, config: Any, training_fields: Sequence[str]) -> Path:
    """Write `run_dir/config.json`. If the directory already holds a run whose `training_fields` differ (apart from
    the loop fields that may change when resuming), raise a ValueError naming them instead.

    Under torchrun only rank 0 reads and writes the file; every rank returns its path or raises its error."""
    return on_main(lambda: _save_run_config(Path(run_dir), config, training_fields))


def _save_run_config(run_dir: Path, config: Any, training_fields: Sequence[str]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.json"
    current = to_jsonable(config)
    if path.is_file():
        saved = _training_view(json.loads(path.read_text()), training_fields)
        mine = _training_view(current, training_fields)
        changed = [name for name in training_fields if saved.get(name) != mine.get(name)]
        if changed:
            raise ValueError(
                f"{run_dir} holds a run with a different configuration ({', '.join(changed)} differ); "
                "use another --run-dir or the same options"
            )
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(current, indent=1) + "\n")
    os.replace(temporary, path)
    return path


def load_run_config(run_dir: str | os.PathLike, cls: type) -> Any:
    """The config of type `cls` saved in `run_dir/config.json` (a ValueError when there is none)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ValueError(f"{run_dir}: no config.json (not a run directory)")
    return from_jsonable(cls, json.loads(path.read_text()))


def from_jsonable(cls: Any, value: Any) -> Any:
    """Rebuild a value of (nested frozen dataclass) type `cls` from `to_jsonable` output."""
    if value is None:
        return None
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        return cls(**{name: from_jsonable(hints[name], item) for name, item in value.items() if name in hints})
    origin = typing.get_origin(cls)
    if origin in (typing.Union, types.UnionType):
        options = [option for option in typing.get_args(cls) if option is not type(None)]
        return from_jsonable(options[0], value) if len(options) == 1 else value
    if cls is Path:
        return Path(value)
    if origin is tuple or cls is tuple:
        args = typing.get_args(cls)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_jsonable(args[0], item) for item in value)
        if args:
            return tuple(from_jsonable(arg, item) for arg, item in zip(args, value, strict=True))
        return tuple(value)
    return value


def cli_with_presets(
    cls: type,
    presets: dict[str, Callable[[], Any]],
    argv: Sequence[str],
    *,
    default_preset: str,
    description: str,
    aliases: dict[str, str] | None = None,
    run_dir_pattern: str | None = None,
) -> Any:
    """Parse a config of dataclass type `cls` whose defaults come from `--preset NAME` (read first); every field can
    then be overridden with tyro flags. `aliases` maps short flags to tyro ones (`{"--data": "--data.root"}`);
    `run_dir_pattern` (e.g. "runs/srn-{preset}") names the run directory after the preset unless `--run-dir` is given.
    """
    import tyro

    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--preset", default=default_preset, choices=sorted(presets))
    known, _ = early.parse_known_args(list(argv))
    arguments = []
    for argument in argv:
        for short, full in (aliases or {}).items():
            if argument == short:
                argument = full
            elif argument.startswith(short + "="):
                argument = full + argument[len(short) :]
        arguments.append(argument)
    default = presets[known.preset]()
    if run_dir_pattern is not None and not any(a == "--run-dir" or a.startswith("--run-dir=") for a in arguments):
        default = dataclasses.replace(default, run_dir=Path(run_dir_pattern.format(preset=known.preset)))
    return tyro.cli(cls, default=default, args=arguments, description=description)


def stage_weights(run_dir: str | os.PathLike, stage: str, *, ema: bool = True) -> dict[str, torch.Tensor]:
    """The (EMA) weights of the newest checkpoint of `stage` in `run_dir`; a ValueError when there is none."""
    path = latest_checkpoint(Path(run_dir) / "checkpoints" / stage)
    if path is None:
        raise ValueError(f"{run_dir}: no {stage} checkpoint yet (run that stage first: --stage {stage})")
    state = load_checkpoint(path)
    return state.ema if ema else state.model


def fit_normalizer(
    student: GaussianDenoiser,
    teacher: nn.Module,
    data: Batches,
    batches: int,
    seed: int = 1234,
) -> None:
    """Set the student's map normalizer from the teacher's maps over `batches` training batches (fixed seed).

    With a `BatchSource` every rank measures the same batches (those of one process), so the statistics agree."""
    generator = torch.Generator().manual_seed(seed)
    sampler = ShardedSampler(data.num_items, data.batch_size, seed=seed) if isinstance(data, BatchSource) else None
    teacher.eval()
    with torch.no_grad():
        maps = []
        for step in range(batches):
            if sampler is not None:
                plan = sampler.batch(step)
                batch = data.make_batch(list(plan.items), list(plan.seeds))
            else:
                batch = data(step, generator)
            maps.append(teacher(batch.source_images, batch.source_cameras, **batch.teacher_inputs).gaussian_map)
    student.set_normalizer(*map_statistics(maps, student.config.std_floor))


def stage_sampler(sample_batch: Batches | Mapping[str, Batches], stage: str) -> Batches:
    """The data of `stage` (a `BatchSource` or a `sample_batch` callable): `sample_batch` itself, or its entry when it
    maps stage names to them (e.g. a smaller batch for the multi-step stage, as the paper's 100 → 10)."""
    if not isinstance(sample_batch, Mapping):
        return sample_batch
    if stage not in sample_batch:
        raise ValueError(f"sample_batch has no sampler for stage {stage!r} (it has {sorted(sample_batch)})")
    return sample_batch[stage]


@dataclass(frozen=True)
class StageConfigs:
    teacher: TeacherStageConfig
    bootstrap: BootstrapConfig
    multistep: MultistepConfig
    normalizer_batches: int = 16


def run_stages(
    stage: Stage,
    run_dir: str | os.PathLike,
    teacher: nn.Module,
    make_student: Callable[[nn.Module], GaussianDenoiser],
    sample_batch: Batches | Mapping[str, Batches],
    configs: StageConfigs,
    *,
    train_the_teacher: bool = True,
    lpips_model: nn.Module | None = None,
    report: Callable[[str], None] = lambda message: None,
) -> tuple[nn.Module, GaussianDenoiser | None]:
    """teacher → bootstrap → multistep in `run_dir`, each resuming from its checkpoints; `stage` runs everything up
    to and including that stage, loading the (EMA) weights of the stages before it. Returns the teacher and the
    student (None when `stage="teacher"`), both holding EMA weights.

    `train_the_teacher=False` keeps the given teacher (e.g. loaded from an official checkpoint). `sample_batch` is one
    sampler for every stage or a mapping from stage name to sampler (`stage_sampler`); the map normalizer is fitted on
    bootstrap batches. A sampler is a `BatchSource` (any number of ranks, see `splat_train.distributed`) or a
    `sample_batch(step, generator)` callable (one process only). Under torchrun every rank calls this; rank 0 writes.
    """
    run_dir = Path(run_dir)
    wanted = STAGES if stage in ("all", "eval") else STAGES[: STAGES.index(stage) + 1]
    run_now = set(STAGES) if stage == "all" else {stage}
    used = [name for name in wanted if name in run_now and (name != "teacher" or train_the_teacher)]
    samplers = {name: stage_sampler(sample_batch, name) for name in used}  # a missing one fails before training

    if train_the_teacher:
        if "teacher" in run_now:
            teacher.load_state_dict(
                train_teacher(teacher, samplers["teacher"], configs.teacher, run_dir, lpips_model=lpips_model).ema
            )
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
        fit_normalizer(student, teacher, samplers["bootstrap"], configs.normalizer_batches)
        student.load_state_dict(bootstrap(student, teacher, samplers["bootstrap"], configs.bootstrap, run_dir).ema)
    else:
        student.load_state_dict(stage_weights(run_dir, "bootstrap"))
    if "multistep" not in wanted:
        return teacher, student
    if "multistep" in run_now:
        student.load_state_dict(multistep(student, teacher, samplers["multistep"], configs.multistep, run_dir).ema)
    else:
        student.load_state_dict(stage_weights(run_dir, "multistep"))
    return teacher, student
