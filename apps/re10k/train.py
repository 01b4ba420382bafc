"""RealEstate10K experiments of "A Lesson in Splats": Flash3D-style teacher → stage 1 (bootstrap) → stage 2
(multi-step) → evaluation on Flash3D's protocol (+5 / +10 / ±30 frames).

    uv run apps/re10k/train.py                                # cpu-demo: built-in synthetic rooms, ~15 min on 2 cores
    uv run apps/re10k/train.py --preset re10k --data /path/to/re10k --data.split-file test_files.txt
    uv run apps/re10k/train.py --preset re10k --data /path/to/re10k --teacher-weights teacher.safetensors
    uv run apps/re10k/train.py --stage bootstrap              # one stage (the earlier ones must be done)
    uv run apps/re10k/train.py --help                         # every option, with the preset's defaults
    torchrun --nproc-per-node 4 apps/re10k/train.py --preset re10k --data /path/to/re10k   # 4 GPUs (DDP)

Under torchrun every process trains on its share of each step's scenes (`--data.batch-size` per process; global
batch = batch size × processes) and rank 0 alone logs, writes checkpoints and evaluates.

A run directory (`--run-dir`, default `runs/re10k-<preset>`) holds config.json, checkpoints/<stage>/, metrics.jsonl and
eval/; running the same command again resumes where it stopped.
"""

import sys
import time
from pathlib import Path

from rich.console import Console

# isort: off
from data import TrainingExamples
from eval import evaluate, print_table
from experiment import (
    PRESETS,
    RE10KExperiment,
    batch_samplers,
    build_student,
    build_teacher,
    data_source,
    example_config,
    open_split,
    save_config,
)

# isort: on
from splat_train import distributed
from splat_train.app import prepare_device, run_main, train_stages
from splat_train.runs import cli_with_presets


def parse(argv: list[str]) -> RE10KExperiment:
    """`--preset NAME` picks the defaults (first), then every field can be overridden; `--data PATH` is short for
    `--data.root PATH`."""
    return cli_with_presets(
        RE10KExperiment,
        PRESETS,
        argv,
        default_preset="cpu-demo",
        description=__doc__,
        aliases={"--data": "--data.root"},
        run_dir_pattern="runs/re10k-{preset}",
    )


def run(experiment: RE10KExperiment, console: Console) -> None:
    prepare_device(experiment.device, experiment.threads)
    if experiment.preset != "cpu-demo" and experiment.data.root is None:
        console.print(f"[yellow]preset {experiment.preset} without --data: using the synthetic scenes[/yellow]")
    run_dir = Path(experiment.run_dir)
    save_config(experiment)
    console.rule(f"RealEstate10K · preset {experiment.preset} · {run_dir}")

    started = time.perf_counter()
    source = distributed.on_main(lambda: data_source(experiment, progress=lambda split, done, total: None))
    examples = TrainingExamples(open_split(experiment, source, "train"), example_config(experiment))
    height, width = experiment.image_size
    console.print(
        f"data: {source.root} · {len(examples.keys)} training clips, {len(examples)} source frames · "
        f"{height}x{width} ({time.perf_counter() - started:.0f} s)"
    )
    teacher = build_teacher(experiment)
    given = experiment.teacher_weights is not None
    if given:
        console.print(f"teacher: weights from {experiment.teacher_weights}")
    trained = train_stages(
        experiment,
        teacher,
        lambda t: build_student(experiment, t),
        batch_samplers(examples, experiment),
        console,
        train_the_teacher=not given,
    )
    if trained is None:
        return
    teacher, student = trained

    out_dir = run_dir / "eval" / experiment.eval.split
    result = evaluate(experiment, teacher, student, source, out_dir, console)
    console.rule(f"done in {(time.perf_counter() - started) / 60:.1f} min")
    print_table(result, experiment, console)
    console.print(f"table: {out_dir / 'table.md'} · grids: {out_dir}/grid_*.png · log: {run_dir / 'metrics.jsonl'}")


def main(argv: list[str] | None = None) -> int:
    return run_main(run, parse(sys.argv[1:] if argv is None else argv), Console())


if __name__ == "__main__":
    sys.exit(main())
