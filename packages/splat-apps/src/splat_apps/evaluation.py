"""Teacher vs student on an app's evaluation protocol: predictions, renders, per-view scores grouped by item and
slot, comparison grids, and the tables (markdown file and console).

Methods compared everywhere:
* `teacher`      — the deterministic teacher's prediction;
* `student`      — one student sample (noised teacher prediction at `t_start`, then DDIM), seeded per batch;
* `student_mean` — the metrics of N student samples, averaged (the expected score of one random sample).
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Float
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from torch import Tensor, nn

from splat_diffusion import Schedule
from splat_render import Cameras, Gaussians, render
from splat_train import GaussianDenoiser, ScoreAccumulator, ViewBatch, image_metrics, sample
from splat_train.perceptual import LPIPSWeightsMissing, load_lpips

from .contract import Column, EvaluationProtocol, TableSpec
from .experiment import EvalOptions
from .statistics import paired_difference
from .visualize import save_image_grid

METHODS = ("teacher", "student", "student_mean")


def load_lpips_or_note(enabled: bool, device: torch.device | str = "cpu") -> tuple[nn.Module | None, str | None]:
    """The LPIPS-VGG model, or None with a one-line note saying why LPIPS is not computed (off, or weights missing)."""
    if not enabled:
        return None, "LPIPS off (--eval.no-lpips)"
    try:
        return load_lpips().to(device), None
    except LPIPSWeightsMissing as error:
        return None, f"LPIPS not computed: {error} (--eval.no-lpips turns it off)"


def method_label(method: str, num_samples: int) -> str:
    return {
        "teacher": "teacher",
        "student": "student (1 sample)",
        "student_mean": f"student (mean over {num_samples} samples)",
    }[method]


def render_views(
    gaussians: Gaussians, cameras: Cameras, background: Tensor, chunk: int = 64
) -> Float[Tensor, "batch views 3 height width"]:
    """Renders of every scene from all of `cameras`' views, `chunk` views per call."""
    parts = [
        render(gaussians, cameras.select_views(slice(start, start + chunk)), background=background).rgb
        for start in range(0, cameras.num_views, chunk)
    ]
    return torch.cat(parts, dim=1)


@dataclass(frozen=True)
class Predictions:
    """The teacher's Gaussians and the student's samples for a batch of source images."""

    teacher: Gaussians
    samples: list[Gaussians]


def predict(
    teacher: nn.Module,
    student: GaussianDenoiser,
    schedule: Schedule,
    batch: ViewBatch,
    *,
    num_samples: int,
    t_start: int,
    steps: int,
    generator: torch.Generator,
) -> Predictions:
    with torch.no_grad():
        teacher_gaussians = teacher(batch.source_images, batch.source_cameras, **batch.teacher_inputs).gaussians
    samples = sample(
        student,
        teacher,
        schedule,
        batch.source_images,
        batch.source_cameras,
        num_samples=num_samples,
        t_start=t_start,
        steps=steps,
        generator=generator,
        **batch.teacher_inputs,
    )
    return Predictions(teacher=teacher_gaussians, samples=samples)


def method_scores(
    teacher_renders: Float[Tensor, "views 3 height width"],
    sample_renders: list[Float[Tensor, "views 3 height width"]],
    targets: Float[Tensor, "views 3 height width"],
    lpips_model: nn.Module | None = None,
    transform: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, dict[str, Float[Tensor, " views"]]]:
    """Per-view PSNR/SSIM(/LPIPS) of every method; `transform` (e.g. a border crop) applies to renders and targets."""

    def score(rendered: Tensor) -> dict[str, Tensor]:
        if transform is not None:
            return image_metrics(transform(rendered), transform(targets), lpips_model)
        return image_metrics(rendered, targets, lpips_model)

    per_sample = [score(r) for r in sample_renders]
    return {
        "teacher": score(teacher_renders),
        "student": per_sample[0],
        "student_mean": {name: torch.stack([s[name] for s in per_sample]).mean(0) for name in per_sample[0]},
    }


@dataclass(frozen=True)
class EvalResult:
    summary: dict[str, dict[str, dict[str, float]]]  # method -> slot -> metric -> value (and "items")
    per_item: dict[str, dict[str, dict[str, dict[str, float]]]]  # method -> item -> slot -> metric -> value
    lpips_note: str | None
    table: TableSpec
    num_samples: int
    markdown: str


def evaluate(
    protocol: EvaluationProtocol,
    teacher: nn.Module,
    student: GaussianDenoiser,
    schedule: Schedule,
    options: EvalOptions,
    *,
    ddim_steps: int,
    background: tuple[float, float, float],
    device: torch.device | str,
    out_dir: Path,
    console: Console | None = None,
    transform: Callable[[Tensor], Tensor] | None = None,
) -> EvalResult:
    """Run `protocol`: per batch, the teacher's prediction and `options.num_samples` student samples rendered at
    every target view and scored (after `transform`, e.g. a border crop); scores grouped per item and slot
    (`ScoreAccumulator`). Writes `scores.json`, `table.md` and comparison grids (input | teacher | samples | truth)
    of the first `protocol.grid_items` items to `out_dir`."""
    console = console or Console()
    lpips_model, lpips_note = load_lpips_or_note(options.lpips, device)
    colour = torch.tensor(background, device=device)
    teacher.eval()
    student.eval()
    accumulators = {method: ScoreAccumulator() for method in METHODS}
    out_dir.mkdir(parents=True, exist_ok=True)
    chunk = options.view_chunk
    grids = 0
    with Progress(console=console, transient=True) as progress, torch.no_grad():
        task = progress.add_task(f"evaluating {protocol.description}", total=protocol.count)
        for part in protocol.batches():
            batch = part.batch
            predictions = predict(
                teacher,
                student,
                schedule,
                batch,
                num_samples=options.num_samples,
                t_start=options.t_start,
                steps=ddim_steps,
                generator=torch.Generator().manual_seed(part.seed),
            )
            teacher_renders = render_views(predictions.teacher, batch.target_cameras, colour, chunk)
            sample_renders = [render_views(g, batch.target_cameras, colour, chunk) for g in predictions.samples]
            views = batch.num_views
            flat_targets = batch.target_images.flatten(0, 1)
            for start in range(0, flat_targets.shape[0], chunk):
                piece = slice(start, start + chunk)
                scores = method_scores(
                    teacher_renders.flatten(0, 1)[piece],
                    [r.flatten(0, 1)[piece] for r in sample_renders],
                    flat_targets[piece],
                    lpips_model,
                    transform,
                )
                for method, metrics in scores.items():
                    for offset in range(metrics["psnr"].shape[0]):
                        element, view = divmod(start + offset, views)
                        accumulators[method].add(
                            part.items[element], part.slots[view], {n: v[offset] for n, v in metrics.items()}
                        )
            for element in range(batch.batch_size):
                if grids < protocol.grid_items:
                    save_grid(protocol, part, element, grids, teacher_renders, sample_renders, options, out_dir)
                    grids += 1
            progress.advance(task, batch.batch_size)

    summary = {method: accumulators[method].summary() for method in METHODS}
    per_item = {method: accumulators[method].per_item() for method in METHODS}
    markdown = table_markdown(protocol.table, summary, options.num_samples, lpips_note, per_item)
    document = {"summary": summary, "per_item": per_item, "lpips_note": lpips_note, **protocol.info}
    document |= {"num_samples": options.num_samples, "t_start": options.t_start}
    (out_dir / "scores.json").write_text(json.dumps(document, indent=1) + "\n")
    (out_dir / "table.md").write_text(markdown)
    return EvalResult(summary, per_item, lpips_note, protocol.table, options.num_samples, markdown)


def save_grid(
    protocol: EvaluationProtocol,
    part,
    element: int,
    index: int,
    teacher_renders: Tensor,
    sample_renders: list[Tensor],
    options: EvalOptions,
    out_dir: Path,
) -> None:
    """Rows input | teacher | samples | truth for up to `options.grid_views` novel views spread over the item."""
    novel = [v for v, slot in enumerate(part.slots) if slot != protocol.input_slot]
    if not novel:
        return
    picks = torch.linspace(0, len(novel) - 1, min(options.grid_views, len(novel))).round().long().tolist()
    views = [novel[p] for p in picks]
    batch = part.batch
    rows = [
        [
            batch.source_images[element],
            teacher_renders[element, v],
            *[r[element, v] for r in sample_renders],
            batch.target_images[element, v],
        ]
        for v in views
    ]
    labels = ["input", "teacher", *[f"sample {i + 1}" for i in range(len(sample_renders))], "truth"]
    row_labels = [protocol.slot_labels[part.slots[v]] for v in views] if protocol.slot_labels else None
    name = part.grid_names[element] if part.grid_names else part.items[element]
    save_image_grid(
        rows,
        out_dir / f"grid_{index:03d}_{name}.png",
        column_labels=labels,
        row_labels=row_labels,
        scale=max(1, protocol.grid_scale_to // batch.source_images.shape[-1]),
    )


def _format(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _value(summary: dict[str, dict[str, float]], column: Column) -> float | None:
    return summary.get(column.slot, {}).get(column.metric)


def comparison_rows(
    summary: dict[str, dict[str, dict[str, float]]], num_samples: int, columns: tuple[Column, ...]
) -> list[list[str]]:
    """Rows (label + formatted columns) for every method, then `student − teacher` differences."""
    rows = [
        [method_label(m, num_samples), *[_format(_value(summary[m], c), c.digits) for c in columns]] for m in METHODS
    ]
    delta = ["student − teacher"]
    for column in columns:
        a, b = _value(summary["student"], column), _value(summary["teacher"], column)
        delta.append("" if a is None or b is None else f"{a - b:+.{column.digits}f}")
    return [*rows, delta]


def reference_rows(table: TableSpec, columns: tuple[Column, ...]) -> list[list[str]]:
    return [
        [
            reference.name,
            *[
                f"{reference.values[(c.slot, c.metric)]:.{c.digits}f}"
                if (c.slot, c.metric) in reference.values
                else "—"
                for c in columns
            ],
        ]
        for reference in table.references
    ]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)]) + "\n"


def paired_lines(result_per_item: dict, columns: tuple[Column, ...]) -> list[str]:
    """One line per column: the mean per-item student − teacher difference with its 95% bootstrap interval."""
    lines = []
    for column in columns:
        paired = paired_difference(result_per_item, "student", "teacher", column.slot, column.metric)
        if paired is not None and paired.items > 1:
            lines.append(f"{column.title}: {paired.text(column.digits)} ({paired.wins} of {paired.items} items better)")
    return lines


def table_markdown(
    table: TableSpec,
    summary: dict[str, dict[str, dict[str, float]]],
    num_samples: int,
    lpips_note: str | None,
    per_item: dict | None = None,
) -> str:
    """table.md: this run's table, the paired student − teacher differences, the LPIPS note, the reference numbers
    and the protocol's note."""
    header = ["method", *[c.title for c in table.columns]]
    text = f"### {table.title}\n\n" + markdown_table(header, comparison_rows(summary, num_samples, table.columns))
    paired = paired_lines(per_item, table.columns) if per_item else []
    if paired:
        text += "\nstudent (1 sample) − teacher per item, mean [95% bootstrap interval]:\n\n"
        text += "".join(f"- {line}\n" for line in paired)
    if lpips_note:
        text += f"\n{lpips_note}\n"
    if table.references:
        text += f"\n{table.reference_note}\n\n" + markdown_table(header, reference_rows(table, table.columns))
    if table.note:
        text += f"\n{table.note}\n"
    return text


def print_tables(result: EvalResult, console: Console) -> None:
    """The console tables of a result (this run's rows, then the reference rows dimmed) and its notes."""
    table = result.table
    for title, columns in table.console or (("teacher vs student", table.columns),):
        if all(_value(result.summary[m], c) is None for m in METHODS for c in columns):
            continue
        shown = Table(title=title)
        for name in ["method", *[c.title for c in columns]]:
            shown.add_column(name)
        for row in comparison_rows(result.summary, result.num_samples, columns):
            shown.add_row(*row)
        if table.references:
            shown.add_section()
            for row in reference_rows(table, columns):
                shown.add_row(*row, style="dim")
        console.print(shown)
    paired = paired_lines(result.per_item, table.columns)
    if paired:
        console.print("student (1 sample) − teacher per item, mean [95% bootstrap interval]: " + " · ".join(paired))
    if result.lpips_note:
        console.print(f"[yellow]{result.lpips_note}[/yellow]")
    if table.note:
        console.print(f"[yellow]{table.note}[/yellow]")
