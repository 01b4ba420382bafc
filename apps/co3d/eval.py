"""Evaluate a Co3D run: teacher vs student (one sample, and the mean over N samples) with PSNR / SSIM / LPIPS on the
Splatter Image Co3D protocol (`data.py`): test split; input = the first frame of each sequence; targets = every other
frame whose ground truth is not all black; full images on a black background; per-sequence means over novel views,
then the mean over sequences; the input view reported separately.

    uv run apps/co3d/eval.py runs/co3d-cpu-demo                    # evaluate a run directory
    uv run apps/co3d/eval.py runs/co3d-hydrant --max-sequences 20  # a subset

Writes `eval/<split>/scores.json` (per sequence), `eval/<split>/table.md` and comparison grids
(input | teacher | student samples | ground truth) as PNG.
"""

import json
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import tyro
from jaxtyping import Float
from rich.console import Console
from rich.progress import Progress
from torch import Tensor

# isort: off
from data import Co3DDataset, Co3DExample, collate
from experiment import (
    Co3DExperiment,
    EvalConfig,
    build_student,
    build_teacher,
    dataset_root,
    image_size,
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

PAPER_CATEGORY = "hydrant"
# Published numbers ("A Lesson in Splats", real Co3D hydrant, 128x128 test split; the paper gives no SSIM here).
PAPER = (
    ("A Lesson in Splats (paper)", 22.34, 0.149),
    ("Splatter Image (paper)", 21.77, 0.154),
    ("ViewSet Diffusion (paper)", 21.24, 0.201),
)
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
    per_sequence: dict[str, dict[str, dict[str, float]]]  # method -> sequence -> metric -> value
    lpips_note: str | None
    table: str


def score_views(
    accumulators: dict[str, MetricAccumulator],
    example: Co3DExample,
    teacher_renders: Float[Tensor, "views 3 height width"],
    sample_renders: list[Float[Tensor, "views 3 height width"]],
    lpips_model: torch.nn.Module | None,
    chunk: int,
) -> None:
    """Add every method's scores of the example's target views (`chunk` at a time): novel views, and the input view
    (a target too) as `*_input`. The example's targets are already the protocol's (no all-black ground truth)."""
    targets = example.target_images.to(teacher_renders.device)
    is_input = (example.target_views == example.input_view).to(teacher_renders.device)
    for start in range(0, targets.shape[0], chunk):
        part = slice(start, start + chunk)
        scores = method_scores(teacher_renders[part], [r[part] for r in sample_renders], targets[part], lpips_model)
        for as_input in (False, True):
            keep = is_input[part] if as_input else ~is_input[part]
            if keep.any():
                for method, values in scores.items():
                    selected = {name: value[keep] for name, value in values.items()}
                    accumulators[method].add(example.sequence, selected, is_input=as_input)


def grid_rows(
    example: Co3DExample,
    teacher_renders: Float[Tensor, "views 3 height width"],
    sample_renders: list[Float[Tensor, "views 3 height width"]],
    views: int,
) -> list[list[Float[Tensor, "3 height width"]]]:
    """Rows input | teacher | samples | truth for `views` novel views spread over the sequence."""
    novel = (example.target_views != example.input_view).nonzero().flatten()
    if novel.numel() == 0:
        return []
    picks = novel[torch.linspace(0, novel.numel() - 1, min(views, novel.numel())).round().long()].tolist()
    truth = example.target_images
    return [
        [example.input_image, teacher_renders[v].cpu(), *[r[v].cpu() for r in sample_renders], truth[v]] for v in picks
    ]


def evaluate(
    experiment: Co3DExperiment,
    teacher: torch.nn.Module,
    student: GaussianDenoiser,
    dataset: Co3DDataset,
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
    count = len(dataset) if config.max_sequences is None else min(config.max_sequences, len(dataset))
    if count < 1:
        raise ValueError(f"nothing to evaluate: {dataset!r} (max_sequences={config.max_sequences})")
    out_dir.mkdir(parents=True, exist_ok=True)
    with Progress(console=console, transient=True) as progress, torch.no_grad():
        task = progress.add_task(f"evaluating {count} {dataset.split} sequences", total=count)
        for index in range(count):
            example = dataset.evaluation_example(index)  # input view 0 (also the first target), no black targets
            batch = to_view_batch(collate([example]), device)
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
            teacher_renders = render_views(predictions.teacher, batch.target_cameras, background, config.view_chunk)
            sample_renders = [
                render_views(g, batch.target_cameras, background, config.view_chunk) for g in predictions.samples
            ]
            score_views(accumulators, example, teacher_renders, sample_renders, lpips_model, config.view_chunk)
            if index < config.grid_sequences:
                rows = grid_rows(example, teacher_renders, sample_renders, config.grid_views)
                if rows:
                    labels = ["input", "teacher", *[f"sample {i + 1}" for i in range(len(sample_renders))], "truth"]
                    save_image_grid(
                        rows,
                        out_dir / f"grid_{index:03d}_{example.sequence[:24]}.png",
                        column_labels=labels,
                        scale=max(1, 96 // example.target_images.shape[-1]),
                    )
            progress.advance(task)

    summary = {method: accumulators[method].summary() for method in METHODS}
    per_sequence = {method: accumulators[method].per_object() for method in METHODS}
    table = table_text(experiment, summary, lpips_note, dataset)
    (out_dir / "scores.json").write_text(
        json.dumps({"summary": summary, "per_sequence": per_sequence, "lpips_note": lpips_note}, indent=1) + "\n"
    )
    (out_dir / "table.md").write_text(table)
    return EvalResult(summary=summary, per_sequence=per_sequence, lpips_note=lpips_note, table=table)


def paper_rows() -> list[list[str]]:
    return [[name, f"{psnr:.2f}", "—", f"{lpips:.3f}", "—"] for name, psnr, lpips in PAPER]


def table_text(
    experiment: Co3DExperiment, summary: dict[str, dict[str, float]], lpips_note: str | None, dataset: Co3DDataset
) -> str:
    sequences = int(summary["teacher"]["objects"])
    size = image_size(dataset)
    data = "synthetic hydrant-like sequences" if experiment.data.root is None else f"Co3D {dataset.category}"
    text = (
        f"### {data} ({dataset.split} split, {sequences} sequences, {size}px, preset {experiment.preset})\n\n"
        + markdown_table(HEADER, comparison_rows(summary, experiment.eval.num_samples, COLUMNS))
    )
    if lpips_note:
        text += f"\n{lpips_note}\n"
    comparable = experiment.data.root is not None and dataset.category == PAPER_CATEGORY and dataset.split == "test"
    text += (
        "\nThe paper's published numbers (A Lesson in Splats, real Co3D hydrant, 128x128 test split; copied from the "
        "paper, not produced by this run):\n\n" + markdown_table(HEADER, paper_rows())
    )
    if not comparable:
        reason = (
            "this run is on synthetic hydrant-like objects, not Co3D"
            if experiment.data.root is None
            else f"this run is Co3D {dataset.category}, {dataset.split} split, {size}px"
        )
        text += f"\nNot comparable: {reason}; the paper's numbers above are for reference only.\n"
    return text


def print_table(result: EvalResult, experiment: Co3DExperiment, console: Console) -> None:
    rows = comparison_rows(result.summary, experiment.eval.num_samples, COLUMNS)
    console.print(rich_table("teacher vs student", HEADER, rows))
    if result.lpips_note:
        console.print(f"[yellow]{result.lpips_note}[/yellow]")
    console.print(rich_table("the paper's numbers (real Co3D hydrant test split; not this run)", HEADER, paper_rows()))
    if experiment.data.root is None:
        console.print("[yellow]synthetic data: not comparable with the paper's numbers[/yellow]")


def load_models(experiment: Co3DExperiment, resolution: int) -> tuple[torch.nn.Module, GaussianDenoiser]:
    """The run's teacher (EMA of its last checkpoint, or the official checkpoint) and final student (EMA)."""
    teacher = build_teacher(experiment, resolution)
    trained = experiment.teacher_checkpoint is None
    return load_trained_models(experiment.run_dir, teacher, partial(build_student, experiment), trained_teacher=trained)


@dataclass(frozen=True)
class EvalCommand:
    """Evaluate a Co3D run directory (written by apps/co3d/train.py)."""

    run_dir: tyro.conf.Positional[Path]
    split: str | None = None  # test or val (default: the run's eval split)
    max_sequences: int | None = None  # only the first N sequences
    num_samples: int | None = None  # student samples per sequence
    t_start: int | None = None  # noise level of the teacher's prediction at which sampling starts
    lpips: bool | None = None  # compute LPIPS (needs the VGG16 weights)
    device: str | None = None


def main(argv: list[str] | None = None) -> int:
    command = tyro.cli(EvalCommand, args=argv, description=__doc__)
    console = Console()
    try:
        experiment = load_experiment(command.run_dir)
        if command.split is not None and command.split not in ("test", "val"):
            raise ValueError(f"--split must be test or val, got {command.split!r}")
        experiment = with_eval_overrides(
            experiment,
            command.run_dir,
            command.device,
            split=command.split,
            max_sequences=command.max_sequences,
            num_samples=command.num_samples,
            t_start=command.t_start,
            lpips=command.lpips,
        )
        dataset = open_split(experiment, experiment.eval.split, dataset_root(experiment))
        teacher, student = load_models(experiment, image_size(dataset))
        out_dir = command.run_dir / "eval" / dataset.split
        result = evaluate(experiment, teacher, student, dataset, out_dir, console)
    except ValueError as error:
        console.print(f"[red]error:[/red] {error}")
        return 1
    print_table(result, experiment, console)
    console.print(f"table, scores and grids in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
