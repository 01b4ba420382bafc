"""What the student-vs-teacher study and the ablation share (docs/research/student-vs-teacher.md): the study's data
and experiment, per-object validation scores of a teacher, and the paired scores of a student run.

Everything here scores the validation split; the test split is kept for the default run's table."""

from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console
from torch import nn

from splat_apps import collate
from splat_apps.cli import parse_experiment
from splat_apps.commands import run_evaluation
from splat_apps.statistics import paired_difference
from splat_render import render
from splat_train.metrics import psnr

from .app import APP, open_split
from .data import default_input_view
from .experiment import SRNExperiment

# per-object scores as `splat_apps.evaluation` writes them: object id → slot → metric → value
PerObject = dict[str, dict[str, dict[str, float]]]


def study_experiment(argv: list[str], run_dir: Path) -> SRNExperiment:
    """The study's experiment (400 train, 32 val, 32 test toy cars × 100 spiral views, 32 px; single-sample
    evaluation on the val split) with the SRN flags `argv` on top, in `run_dir`."""

    def preset() -> SRNExperiment:
        base = APP.presets["cpu-demo"]()
        sizes = {"train_objects": 400, "val_objects": 32, "test_objects": 32, "val_views": 100, "test_views": 100}
        data = replace(base.data, synthetic=replace(base.data.synthetic, category="cars", **sizes))
        evaluation = replace(base.eval, split="val", lpips=False, grid_objects=0, num_samples=1)
        return replace(base, data=data, eval=evaluation)

    experiment = parse_experiment(SRNExperiment, {"study": preset}, argv, default_preset="study", description="")
    return replace(experiment, run_dir=run_dir)


def val_examples(experiment: SRNExperiment, data: Path) -> list[tuple[str, object]]:
    """(object id, protocol batch) of every validation object: the default input view, all other views as targets."""
    val = open_split(experiment, "val", data)
    return [
        (name, collate([val.evaluation_example(i, default_input_view(val.num_views(i)))]))
        for i, name in enumerate(val.object_ids)
    ]


def teacher_view_psnr(teacher: nn.Module, batch, background: torch.Tensor) -> float:
    """The teacher's PSNR averaged over one object's novel views (the protocol's per-object score)."""
    gaussians = teacher(batch.source_images, batch.source_cameras).gaussians
    rendered = render(gaussians, batch.target_cameras, background=background).rgb[0]
    return float(psnr(rendered, batch.target_images[0]).mean())


def teacher_scores(experiment: SRNExperiment, examples: list[tuple[str, object]], teacher: nn.Module) -> PerObject:
    """A deterministic network's novel-view PSNR per object of `examples` (`val_examples`: the scores the protocol
    gives a teacher)."""
    background = torch.tensor(experiment.background)
    teacher.eval()
    with torch.no_grad():
        return {name: {"novel": {"psnr": teacher_view_psnr(teacher, batch, background)}} for name, batch in examples}


def student_scores(experiment: SRNExperiment, data: Path, teacher: nn.Module, student: nn.Module) -> dict:
    """The evaluation protocol on the val split (`eval/val/` of the run): means, paired student − teacher and the
    per-object scores of both."""
    result, _ = run_evaluation(APP, experiment, data, teacher.eval(), student.eval(), Console(quiet=True))
    summary = result.summary
    difference = paired_difference(result.per_item, "student", "teacher", "novel", "psnr")
    return {
        "teacher_psnr": summary["teacher"]["novel"]["psnr"],
        "student_psnr": summary["student"]["novel"]["psnr"],
        "student_minus_teacher": difference.text(3),
        "student_wins": f"{difference.wins}/{difference.items}",
        "per_item": result.per_item,
    }
