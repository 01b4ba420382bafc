"""Evaluate a RealEstate10K run on Flash3D's protocol: teacher vs student (one sample, and N samples).

Rows of a split file `key src tgt5 tgt10 tgt_rand` (Flash3D `splits/re10k_mine_filtered/test_files.txt`, or one
written by `protocol.py`); per row the source frame is the input and the three targets are rendered with cameras
relative to it, at the run's image size (Flash3D: 256×384), on grey. PSNR (unclamped prediction), SSIM and LPIPS-VGG
on both images cropped by 5% per side; means over all rows per target slot (+5, +10, random ±30), the source view as
its own slot.

    uv run apps/re10k/eval.py runs/re10k-cpu-demo                  # evaluate a run directory
    uv run apps/re10k/eval.py runs/re10k --max-rows 500 --split-file test_files.txt

Writes `eval/<split>/scores.json` (per slot and per row), `eval/<split>/table.md` and comparison grids
(source | teacher | student samples | ground truth, one row per target slot) as PNG.
"""

import json
import sys
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import torch
import tyro
from rich.console import Console
from rich.progress import Progress

# isort: off
from data import FAR, NEAR, collate
from experiment import (
    DataSource,
    EvalConfig,
    RE10KExperiment,
    build_student,
    build_teacher,
    data_source,
    load_experiment,
    open_split,
    to_view_batch,
)
from protocol import SLOT_LABELS, TARGET_SLOTS, SlotAccumulator, SplitRow, crop_border, load_split_example, read_split

# isort: on
from splat_render import render
from splat_train import GaussianDenoiser
from splat_train.app import load_trained_models, with_eval_overrides
from splat_train.evaluation import (
    METHODS,
    comparison_rows,
    load_lpips_or_note,
    markdown_table,
    method_scores,
    predict,
    rich_table,
)
from splat_train.visualize import save_image_grid

VIEW_SLOTS = ("src", *TARGET_SLOTS)  # the views of an evaluation example, in order
METRICS = (("psnr", "PSNR ↑", 2), ("ssim", "SSIM ↑", 3), ("lpips", "LPIPS ↓", 3))
COLUMNS = (
    *(
        (f"{metric}_{slot}", f"{title} {SLOT_LABELS[slot]}", digits)
        for metric, title, digits in METRICS
        for slot in TARGET_SLOTS
    ),
    ("psnr_src", "PSNR source", 2),
)
HEADER = ["method", *[title for _, title, _ in COLUMNS]]
# Published numbers (real RealEstate10K, 256×384, Flash3D's test split): A Lesson in Splats reports PSNR for all three
# slots and SSIM / LPIPS for +5 only, next to Flash3D's numbers.
PAPER = (
    (
        "A Lesson in Splats, paper",
        {"psnr_tgt5": 29.12, "psnr_tgt10": 26.54, "psnr_tgt_rand": 25.40, "ssim_tgt5": 0.932, "lpips_tgt5": 0.087},
    ),
    (
        "Flash3D, paper",
        {"psnr_tgt5": 28.46, "psnr_tgt10": 25.94, "psnr_tgt_rand": 24.93, "ssim_tgt5": 0.899, "lpips_tgt5": 0.100},
    ),
)


@dataclass(frozen=True)
class EvalResult:
    summary: dict[str, dict[str, dict[str, float]]]  # method -> slot (src, tgt5, tgt10, tgt_rand, average) -> metric
    per_row: list[dict]  # one entry per split row: key, frames, method -> slot -> metric
    lpips_note: str | None
    synthetic: bool
    table: str


def flat_summary(summary: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """method -> `<metric>_<slot>` -> value (the table's keys)."""
    return {
        method: {f"{metric}_{slot}": value for slot, scores in slots.items() for metric, value in scores.items()}
        for method, slots in summary.items()
    }


def split_rows(experiment: RE10KExperiment, source: DataSource) -> list[SplitRow]:
    if not source.split_file.is_file():
        raise ValueError(
            f"{source.split_file}: evaluation split file not found (Flash3D's splits/re10k_mine_filtered/"
            "test_files.txt, or write one with apps/re10k/protocol.py; pass it with --data.split-file)"
        )
    rows = read_split(source.split_file)
    if not rows:
        raise ValueError(f"{source.split_file}: no rows")
    return rows if experiment.eval.max_rows is None else rows[: experiment.eval.max_rows]


def evaluate(
    experiment: RE10KExperiment,
    teacher: torch.nn.Module,
    student: GaussianDenoiser,
    source: DataSource,
    out_dir: Path,
    console: Console | None = None,
) -> EvalResult:
    config: EvalConfig = experiment.eval
    console = console or Console()
    device = experiment.device
    rows = split_rows(experiment, source)
    dataset = open_split(experiment, source, config.split)
    lpips_model, lpips_note = load_lpips_or_note(config.lpips, device)
    schedule = experiment.diffusion.make_schedule().to(device)
    background = torch.tensor(config.background, device=device)
    teacher.eval()
    student.eval()
    accumulators = {method: SlotAccumulator() for method in METHODS}
    per_row: list[dict] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    with Progress(console=console, transient=True) as progress, torch.no_grad():
        task = progress.add_task(f"evaluating {len(rows)} rows of {source.split_file.name}", total=len(rows))
        for start in range(0, len(rows), config.batch_size):
            chunk = rows[start : start + config.batch_size]
            examples = []
            for number, row in enumerate(chunk, start=start + 1):
                try:
                    examples.append(load_split_example(dataset[row.key], row, experiment.image_size))
                except (KeyError, ValueError) as error:
                    raise ValueError(f"{source.split_file}: row {number} ({row.line()}): {error}") from None
            batch = to_view_batch(collate(examples, near=NEAR, far=FAR), device)  # views: src, tgt5, tgt10, tgt_rand
            predictions = predict(
                teacher,
                student,
                schedule,
                batch,
                num_samples=config.num_samples,
                t_start=config.t_start,
                steps=experiment.diffusion.ddim_steps,
                generator=torch.Generator().manual_seed(start),
            )
            teacher_renders = render(predictions.teacher, batch.target_cameras, background=background).rgb
            sample_renders = [render(g, batch.target_cameras, background=background).rgb for g in predictions.samples]
            scores = method_scores(
                teacher_renders.flatten(0, 1),
                [r.flatten(0, 1) for r in sample_renders],
                batch.target_images.flatten(0, 1),
                lpips_model,
                transform=crop_border,
            )
            views = len(VIEW_SLOTS)
            by_view = {m: {k: v.reshape(len(chunk), views) for k, v in s.items()} for m, s in scores.items()}
            for method, metrics in by_view.items():
                for view, slot in enumerate(VIEW_SLOTS):
                    accumulators[method].add(slot, {name: values[:, view] for name, values in metrics.items()})
            for i, row in enumerate(chunk):
                per_row.append(
                    {
                        "key": row.key,
                        "frames": {"src": row.src, "tgt5": row.tgt5, "tgt10": row.tgt10, "tgt_rand": row.tgt_rand},
                        **{
                            method: {
                                slot: {name: float(values[i, view]) for name, values in metrics.items()}
                                for view, slot in enumerate(VIEW_SLOTS)
                            }
                            for method, metrics in by_view.items()
                        },
                    }
                )
                index = start + i
                if index < config.grid_rows:
                    grid = [
                        [
                            batch.source_images[i],
                            teacher_renders[i, view],
                            *[r[i, view] for r in sample_renders],
                            batch.target_images[i, view],
                        ]
                        for view in range(1, views)
                    ]
                    save_image_grid(
                        grid,
                        out_dir / f"grid_{index:03d}_{row.key[:16]}_{row.src}.png",
                        column_labels=[
                            "source",
                            "teacher",
                            *[f"sample {k + 1}" for k in range(len(sample_renders))],
                            "truth",
                        ],
                        row_labels=[SLOT_LABELS[slot] for slot in TARGET_SLOTS],
                        scale=max(1, 192 // batch.source_images.shape[-1]),
                    )
            progress.advance(task, len(chunk))

    summary = {method: accumulators[method].summary() for method in METHODS}
    table = table_text(experiment, summary, lpips_note, source, len(rows))
    (out_dir / "scores.json").write_text(
        json.dumps(
            {
                "split_file": str(source.split_file),
                "image_size": list(experiment.image_size),
                "synthetic": source.synthetic,
                "num_samples": config.num_samples,
                "t_start": config.t_start,
                "summary": summary,
                "per_row": per_row,
                "lpips_note": lpips_note,
            },
            indent=1,
        )
        + "\n"
    )
    (out_dir / "table.md").write_text(table)
    return EvalResult(summary=summary, per_row=per_row, lpips_note=lpips_note, synthetic=source.synthetic, table=table)


def paper_rows() -> list[list[str]]:
    return [
        [name, *[f"{numbers[key]:.{digits}f}" if key in numbers else "—" for key, _, digits in COLUMNS]]
        for name, numbers in PAPER
    ]


def table_text(experiment: RE10KExperiment, summary, lpips_note: str | None, source: DataSource, rows: int) -> str:
    height, width = experiment.image_size
    data = "synthetic rooms" if source.synthetic else f"{source.root}"
    text = (
        f"### RealEstate10K ({data}; {rows} rows of {source.split_file.name}, {height}x{width}, 5% border crop, "
        f"grey background, preset {experiment.preset})\n\n"
        + markdown_table(HEADER, comparison_rows(flat_summary(summary), experiment.eval.num_samples, COLUMNS))
    )
    if lpips_note:
        text += f"\n{lpips_note}\n"
    text += (
        "\nPublished numbers, for reference (the paper's Table: real RealEstate10K at 256x384 on Flash3D's test split; "
        "not this run; — = not reported):\n\n" + markdown_table(HEADER, paper_rows())
    )
    if source.synthetic:
        text += (
            "\nThis run used synthetic rooms, not RealEstate10K, at a different image size and with small networks: "
            "its numbers are not comparable to the paper's.\n"
        )
    return text


def print_table(result: EvalResult, experiment: RE10KExperiment, console: Console) -> None:
    """One console table per metric (the slots as columns), this run's rows first, then the paper's."""
    flat = flat_summary(result.summary)
    for metric, title, digits in METRICS:
        columns = tuple(column for column in COLUMNS if column[0].startswith(f"{metric}_"))
        if all(flat[method].get(key) is None for method in METHODS for key, _, _ in columns):
            continue
        header = ["method", *[SLOT_LABELS[key.split("_", 1)[1]] for key, _, _ in columns]]
        table = rich_table(
            f"{title} (RealEstate10K protocol, 5% border crop)",
            header,
            comparison_rows(flat, experiment.eval.num_samples, columns),
        )
        table.add_section()
        for name, numbers in PAPER:
            table.add_row(
                f"{name} (real RE10K)",
                *[f"{numbers[key]:.{digits}f}" if key in numbers else "—" for key, _, _ in columns],
                style="dim",
            )
        console.print(table)
    if result.lpips_note:
        console.print(f"[yellow]{result.lpips_note}[/yellow]")
    if result.synthetic:
        console.print(
            "[yellow]synthetic rooms, not RealEstate10K: this run's numbers are not comparable to the paper's[/yellow]"
        )


def load_models(experiment: RE10KExperiment) -> tuple[torch.nn.Module, GaussianDenoiser]:
    """The run's teacher (EMA of its last checkpoint, or `teacher_weights`) and final student (EMA)."""
    teacher, trained = build_teacher(experiment), experiment.teacher_weights is None
    return load_trained_models(experiment.run_dir, teacher, partial(build_student, experiment), trained_teacher=trained)


@dataclass(frozen=True)
class EvalCommand:
    """Evaluate a RealEstate10K run directory (written by apps/re10k/train.py)."""

    run_dir: tyro.conf.Positional[Path]
    split_file: Path | None = None  # rows `key src tgt5 tgt10 tgt_rand` (default: the run's)
    split: str | None = None  # dataset split the rows index (default: the run's, test)
    max_rows: int | None = None  # only the first N rows
    batch_size: int | None = None  # rows per forward pass
    num_samples: int | None = None  # student samples per row
    t_start: int | None = None  # noise level of the teacher's prediction at which sampling starts
    lpips: bool | None = None  # compute LPIPS (needs the VGG16 weights)
    device: str | None = None
    threads: int | None = None  # torch CPU threads


def main(argv: list[str] | None = None) -> int:
    command = tyro.cli(EvalCommand, args=argv, description=__doc__)
    console = Console()
    if command.threads is not None:
        torch.set_num_threads(command.threads)
    try:
        experiment = load_experiment(command.run_dir)
        if command.split_file is not None:
            experiment = replace(experiment, data=replace(experiment.data, split_file=command.split_file))
        experiment = with_eval_overrides(
            experiment,
            command.run_dir,
            command.device,
            split=command.split,
            max_rows=command.max_rows,
            batch_size=command.batch_size,
            num_samples=command.num_samples,
            t_start=command.t_start,
            lpips=command.lpips,
        )
        source = data_source(experiment)
        teacher, student = load_models(experiment)
        out_dir = command.run_dir / "eval" / experiment.eval.split
        result = evaluate(experiment, teacher, student, source, out_dir, console)
    except ValueError as error:
        console.print(f"[red]error:[/red] {error}")
        return 1
    print_table(result, experiment, console)
    console.print(f"tables, scores and grids in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
