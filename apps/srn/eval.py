"""Evaluate an SRN run: teacher vs student (one sample, and N samples) with PSNR / SSIM / LPIPS on the
pixelNeRF / Splatter Image protocol (input view 64 of the 251-view test spiral, every other view a target; per-object
means over novel views, then the mean over objects; the input view reported separately).

    uv run apps/srn/eval.py runs/srn-cpu-demo                 # evaluate a run directory
    uv run apps/srn/eval.py runs/srn-cars --max-objects 100   # a subset

Writes `eval/<split>/scores.json` (per object), `eval/<split>/table.md` and comparison grids
(input | teacher | student samples | ground truth) as PNG.
"""

import json
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import tyro
from rich.console import Console
from rich.progress import Progress

# isort: off
from data import SRNDataset, collate, default_input_view
from experiment import (
    EvalConfig,
    SRNExperiment,
    build_student,
    build_teacher,
    dataset_root,
    load_experiment,
    open_split,
    to_view_batch,
)

# isort: on
from splat_train import GaussianDenoiser, MetricAccumulator
from splat_train.app import load_trained_models, with_eval_overrides
from splat_train.evaluation import (
    METHODS,
    comparison_rows,
    load_lpips_or_note,
    markdown_table,
    method_scores,
    predict,
    render_views,
    rich_table,
)
from splat_train.visualize import save_image_grid

# Published numbers (real ShapeNet-SRN, 128x128, test split), for reference only.
PAPER = {
    "cars": [
        ("A Lesson in Splats (Medium), paper", 24.84, 0.93, 0.077),
        ("Splatter Image (Large), paper", 24.00, 0.92, 0.078),
    ],
    "chairs": [
        ("A Lesson in Splats (Medium), paper", 25.21, 0.93, 0.066),
        ("Splatter Image (Large), paper", 24.43, 0.93, 0.067),
    ],
}
COLUMNS = (
    ("psnr", "PSNR ↑", 2),
    ("ssim", "SSIM ↑", 3),
    ("lpips", "LPIPS ↓", 3),
    ("psnr_input", "PSNR (input view)", 2),
)
HEADER = ["method", *[title for _, title, _ in COLUMNS]]


@dataclass(frozen=True)
class EvalResult:
    summary: dict[str, dict[str, float]]  # method -> metric -> value
    per_object: dict[str, dict[str, dict[str, float]]]  # method -> object -> metric -> value
    lpips_note: str | None
    table: str


def evaluate(
    experiment: SRNExperiment,
    teacher: torch.nn.Module,
    student: GaussianDenoiser,
    dataset: SRNDataset,
    out_dir: Path,
    console: Console | None = None,
) -> EvalResult:
    config: EvalConfig = experiment.eval
    console = console or Console()
    device = experiment.device
    lpips_model, lpips_note = load_lpips_or_note(config.lpips, device)
    schedule = experiment.diffusion.make_schedule().to(device)
    background = torch.tensor(experiment.multistep.background, device=device)
    teacher.eval()
    student.eval()
    accumulators = {method: MetricAccumulator() for method in METHODS}
    count = len(dataset) if config.max_objects is None else min(config.max_objects, len(dataset))
    out_dir.mkdir(parents=True, exist_ok=True)
    with Progress(console=console, transient=True) as progress, torch.no_grad():
        task = progress.add_task(f"evaluating {count} {dataset.split} objects", total=count)
        for index in range(count):
            example = dataset.evaluation_example(index, default_input_view(dataset.num_views(index)))
            batch = to_view_batch(collate([example]), device)
            object_id = example.object_id
            predictions = predict(
                teacher,
                student,
                schedule,
                batch,
                num_samples=config.num_samples,
                t_start=config.t_start,
                steps=experiment.diffusion.ddim_steps,
                generator=torch.Generator().manual_seed(index),
            )
            target = batch.target_images[0]
            teacher_renders = render_views(predictions.teacher, batch.target_cameras, background, config.view_chunk)
            sample_renders = [
                render_views(g, batch.target_cameras, background, config.view_chunk) for g in predictions.samples
            ]
            for method, scores in method_scores(teacher_renders, sample_renders, target, lpips_model).items():
                accumulators[method].add(object_id, scores)
            # the input view, reported separately
            teacher_input = render_views(predictions.teacher, batch.source_cameras, background)
            sample_inputs = [render_views(g, batch.source_cameras, background) for g in predictions.samples]
            input_scores = method_scores(teacher_input, sample_inputs, batch.source_images, lpips_model)
            for method, scores in input_scores.items():
                accumulators[method].add(object_id, scores, is_input=True)
            if index < config.grid_objects:
                views = torch.linspace(0, target.shape[0] - 1, config.grid_views).round().long().tolist()
                rows = [
                    [batch.source_images[0], teacher_renders[v], *[r[v] for r in sample_renders], target[v]]
                    for v in views
                ]
                labels = ["input", "teacher", *[f"sample {i + 1}" for i in range(len(sample_renders))], "truth"]
                save_image_grid(
                    rows,
                    out_dir / f"grid_{index:03d}_{object_id[:12]}.png",
                    column_labels=labels,
                    scale=max(1, 96 // target.shape[-1]),
                )
            progress.advance(task)

    summary = {method: accumulators[method].summary() for method in METHODS}
    per_object = {method: accumulators[method].per_object() for method in METHODS}
    table = table_text(experiment, summary, lpips_note, dataset)
    (out_dir / "scores.json").write_text(
        json.dumps({"summary": summary, "per_object": per_object, "lpips_note": lpips_note}, indent=1) + "\n"
    )
    (out_dir / "table.md").write_text(table)
    return EvalResult(summary=summary, per_object=per_object, lpips_note=lpips_note, table=table)


def table_text(experiment: SRNExperiment, summary, lpips_note: str | None, dataset: SRNDataset) -> str:
    objects = int(summary["teacher"]["objects"])
    text = (
        f"### SRN {dataset.category} ({dataset.split} split, {objects} objects, {dataset.resolution or 128}px, "
        f"preset {experiment.preset})\n\n"
        + markdown_table(HEADER, comparison_rows(summary, experiment.eval.num_samples, COLUMNS))
    )
    if lpips_note:
        text += f"\n{lpips_note}\n"
    reference = PAPER.get(dataset.category)
    if reference:
        rows = [[name, f"{p:.2f}", f"{s:.2f}", f"{lp:.3f}", ""] for name, p, s, lp in reference]
        text += "\nFor reference, the published numbers (real ShapeNet-SRN, 128x128 test split; not this run):\n\n"
        text += markdown_table(HEADER, rows)
    else:
        text += (
            "\nThese are synthetic objects, not ShapeNet: the paper's numbers (cars: student 24.84 / 0.93 / 0.077 vs "
            "Splatter Image 24.00 / 0.92 / 0.078; chairs: 25.21 vs 24.43 PSNR) are not comparable to this table.\n"
        )
    return text


def print_table(result: EvalResult, experiment: SRNExperiment, console: Console) -> None:
    rows = comparison_rows(result.summary, experiment.eval.num_samples, COLUMNS)
    console.print(rich_table("teacher vs student", HEADER, rows))
    if result.lpips_note:
        console.print(f"[yellow]{result.lpips_note}[/yellow]")


def load_models(experiment: SRNExperiment, resolution: int) -> tuple[torch.nn.Module, GaussianDenoiser]:
    """The run's teacher (EMA of its last checkpoint, or the official checkpoint) and final student (EMA)."""
    teacher = build_teacher(experiment, resolution)
    trained = experiment.teacher_checkpoint is None
    return load_trained_models(experiment.run_dir, teacher, partial(build_student, experiment), trained_teacher=trained)


@dataclass(frozen=True)
class EvalCommand:
    """Evaluate an SRN run directory (written by apps/srn/train.py)."""

    run_dir: tyro.conf.Positional[Path]
    split: str | None = None  # test or val (default: the run's eval split)
    max_objects: int | None = None  # only the first N objects
    num_samples: int | None = None  # student samples per object
    t_start: int | None = None  # noise level of the teacher's prediction at which sampling starts
    lpips: bool | None = None  # compute LPIPS (needs the VGG16 weights)
    device: str | None = None


def main(argv: list[str] | None = None) -> int:
    command = tyro.cli(EvalCommand, args=argv, description=__doc__)
    console = Console()
    try:
        experiment = load_experiment(command.run_dir)
        experiment = with_eval_overrides(
            experiment,
            command.run_dir,
            command.device,
            split=command.split,
            max_objects=command.max_objects,
            num_samples=command.num_samples,
            t_start=command.t_start,
            lpips=command.lpips,
        )
        dataset = open_split(experiment, experiment.eval.split, dataset_root(experiment))
        resolution = dataset.load(0, [0]).images.shape[-1]
        teacher, student = load_models(experiment, resolution)
        result = evaluate(experiment, teacher, student, dataset, command.run_dir / "eval" / dataset.split, console)
    except ValueError as error:
        console.print(f"[red]error:[/red] {error}")
        return 1
    print_table(result, experiment, console)
    console.print(f"tables, scores and grids in {command.run_dir / 'eval' / dataset.split}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
