"""ShapeNet-SRN experiments of "A Lesson in Splats": teacher → stage 1 (bootstrap) → stage 2 (multi-step) → evaluation.

    uv run apps/srn/train.py                                  # cpu-demo: built-in synthetic data, ~15 min on 2 cores
    uv run apps/srn/train.py --preset cars --data /path/to/srn_cars
    uv run apps/srn/train.py --preset cars --data /path/to/srn_cars --teacher-checkpoint model_cars.pth
    uv run apps/srn/train.py --stage bootstrap                # one stage (the earlier ones must be done)
    uv run apps/srn/train.py --help                           # every option, with the preset's defaults
    torchrun --nproc-per-node 4 apps/srn/train.py --preset cars --data /path/to/srn_cars   # 4 GPUs (DDP)

Under torchrun every process trains on its share of each step's objects (`--data.batch-size` per process; global
batch = batch size × processes) and rank 0 alone logs, writes checkpoints and evaluates.

A run directory (`--run-dir`, default `runs/srn-<preset>`) holds config.json, checkpoints/<stage>/, metrics.jsonl and
eval/; running the same command again resumes where it stopped.
"""

import sys
import time
from pathlib import Path

from rich.console import Console

# isort: off
from eval import evaluate, print_table
from experiment import (
    PRESETS,
    SRNExperiment,
    build_student,
    build_teacher,
    dataset_root,
    open_split,
    save_config,
    training_batches,
)

# isort: on
from splat_train import distributed
from splat_train.app import prepare_device, run_main, train_stages
from splat_train.runs import cli_with_presets


def parse(argv: list[str]) -> SRNExperiment:
    """`--preset NAME` picks the defaults (first), then every field can be overridden; `--data PATH` is short for
    `--data.root PATH`."""
    return cli_with_presets(
        SRNExperiment,
        PRESETS,
        argv,
        default_preset="cpu-demo",
        description=__doc__,
        aliases={"--data": "--data.root"},
        run_dir_pattern="runs/srn-{preset}",
    )


def run(experiment: SRNExperiment, console: Console) -> None:
    prepare_device(experiment.device, experiment.threads)
    if experiment.preset != "cpu-demo" and experiment.data.root is None:
        console.print(f"[yellow]preset {experiment.preset} without --data: using the synthetic data[/yellow]")
    run_dir = Path(experiment.run_dir)
    save_config(experiment)
    console.rule(f"SRN · preset {experiment.preset} · {run_dir}")

    started = time.perf_counter()
    root = distributed.on_main(lambda: dataset_root(experiment, progress=lambda split, done, total: None))
    train_split = open_split(experiment, "train", root)
    resolution = train_split.load(0, [0]).images.shape[-1]
    console.print(
        f"data: {root} · {len(train_split)} training objects · {resolution}px ({time.perf_counter() - started:.0f} s)"
    )
    batches = training_batches(train_split, experiment)

    teacher = build_teacher(experiment, resolution)
    official = experiment.teacher_checkpoint is not None
    if official:
        console.print(f"teacher: official Splatter Image checkpoint {experiment.teacher_checkpoint}")
    trained = train_stages(
        experiment, teacher, lambda t: build_student(experiment, t), batches, console, train_the_teacher=not official
    )
    if trained is None:
        return
    teacher, student = trained

    test_split = open_split(experiment, experiment.eval.split, root)
    out_dir = run_dir / "eval" / test_split.split
    result = evaluate(experiment, teacher, student, test_split, out_dir, console)
    console.rule(f"done in {(time.perf_counter() - started) / 60:.1f} min")
    print_table(result, experiment, console)
    console.print(f"table: {out_dir / 'table.md'} · grids: {out_dir}/grid_*.png · log: {run_dir / 'metrics.jsonl'}")


def main(argv: list[str] | None = None) -> int:
    return run_main(run, parse(sys.argv[1:] if argv is None else argv), Console())


if __name__ == "__main__":
    sys.exit(main())
