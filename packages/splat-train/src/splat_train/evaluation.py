"""Teacher-vs-student evaluation pieces shared by the apps (each app adds its own protocol: which views, crops,
how scores are grouped).

Methods compared everywhere:
* `teacher`      — the deterministic teacher's prediction;
* `student`      — one student sample (noised teacher prediction at `t_start`, then DDIM), seed fixed per object;
* `student_mean` — the metrics of N student samples, averaged (the expected score of one random sample).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float
from rich.table import Table
from torch import Tensor, nn

from splat_diffusion import Schedule
from splat_render import Cameras, Gaussians, render

from .batch import ViewBatch
from .metrics import image_metrics
from .perceptual import LPIPSWeightsMissing, load_lpips_vgg
from .student import GaussianDenoiser, sample

METHODS = ("teacher", "student", "student_mean")


def load_lpips_or_note(enabled: bool, device: torch.device | str = "cpu") -> tuple[nn.Module | None, str | None]:
    """The LPIPS-VGG model, or None with a one-line note saying why LPIPS is not computed (off, or weights missing)."""
    if not enabled:
        return None, "LPIPS off (--eval.no-lpips)"
    try:
        return load_lpips_vgg().to(device), None
    except LPIPSWeightsMissing as error:
        return None, f"LPIPS not computed: {error}"


def method_label(method: str, num_samples: int) -> str:
    return {
        "teacher": "teacher",
        "student": "student (1 sample)",
        "student_mean": f"student (mean over {num_samples} samples)",
    }[method]


def render_views(
    gaussians: Gaussians, cameras: Cameras, background: Tensor, chunk: int = 64
) -> Float[Tensor, "views 3 height width"]:
    """Renders of one scene (batch 1) from all of `cameras`' views, `chunk` views per call."""
    parts = [
        render(gaussians, cameras.select_views(slice(start, start + chunk)), background=background).rgb[0]
        for start in range(0, cameras.num_views, chunk)
    ]
    return torch.cat(parts)


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


Column = tuple[str, str, int]  # (summary key, title, decimals)
DEFAULT_COLUMNS: tuple[Column, ...] = (("psnr", "PSNR ↑", 2), ("ssim", "SSIM ↑", 3), ("lpips", "LPIPS ↓", 3))


def _format(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def comparison_rows(
    summary: dict[str, dict[str, float]], num_samples: int, columns: tuple[Column, ...] = DEFAULT_COLUMNS
) -> list[list[str]]:
    """Rows (label + formatted columns) for every method, then `student − teacher` differences."""
    rows = [[method_label(m, num_samples), *[_format(summary[m].get(k), d) for k, _, d in columns]] for m in METHODS]
    delta = ["student − teacher"]
    for key, _, digits in columns:
        a, b = summary["student"].get(key), summary["teacher"].get(key)
        delta.append("" if a is None or b is None else f"{a - b:+.{digits}f}")
    return [*rows, delta]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)]) + "\n"


def rich_table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title)
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    return table
