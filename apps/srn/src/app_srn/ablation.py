"""The paper's ablation (A Lesson in Splats, Sec. 4 "Ablation study", SRN cars val) on the study's toy cars.

One teacher is trained (or given) once; every other row reuses it. Stage-2 rows start from the stage-1 weights of
the row they name as `parent`, so a row differs from the row it is compared with in one thing only. Every row is
scored on the same validation objects (single sample, the protocol of `splat_apps.evaluation`), and each comparison
is a paired per-object difference with a 95 % bootstrap interval, read against the paper's difference: same sign
and an interval excluding 0 is "as the paper", the other sign "opposite", an interval holding 0 "unresolved".

Rows are independent jobs with dependencies (teacher → stage 1 → stage 2); `run_ablation` runs up to `jobs` of them
at once (rows that others wait for first), each on one torch thread, each resumable from its checkpoints, and a
finished row (`<row>/row.json`) is never run again."""

import json
import shutil
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Literal

import torch

from splat_apps.experiment import build_student, demo_loop
from splat_apps.statistics import PairedDifference, paired_difference
from splat_teachers.checkpoints import atomic_write
from splat_train import run_stages
from splat_train.checkpoint import latest_checkpoint, load_checkpoint

from .app import APP
from .research import PerObject, student_scores, study_experiment, teacher_scores, val_examples

# The study's best recipe so far (docs/research/student-vs-teacher.md, items 20 and 26): 100 training cars, a
# 16-channel teacher, the skip-connected output from t* = 2, three DDIM steps from t ≤ 6, stage 2 at lr 1e-4.
# Each row sets its own loss weights on top.
RECIPE = (
    "--data.synthetic.train-objects", "100",
    "--model.teacher-unet.model-channels", "16", "--model.teacher-unet.num-blocks", "1",
    "--diffusion.prediction", "skip", "--diffusion.t-star", "2", "--diffusion.ddim-steps", "3",
    "--multistep.t-start-max", "6", "--eval.t-start", "5", "--multistep.learning-rate", "1e-4",
    "--bootstrap.loop.max-steps", "2000", "--multistep.loop.max-steps", "600",
)  # fmt: skip

Kind = Literal["teacher", "deterministic", "student"]
Stages = Literal["bootstrap", "multistep", "both"]


@dataclass(frozen=True)
class Row:
    name: str  # also the row's directory
    label: str  # the paper's row, in its words
    paper: float | None  # the paper's PSNR (SRN cars val); None where it reports none
    kind: Kind
    flags: tuple[str, ...] = ()  # SRN flags of this row, after RECIPE, the user's flags and the parent's flags
    stages: Stages = "both"  # the student's stages this row trains (multistep: from `parent`'s stage 1)
    parent: str | None = None
    untrained_teacher: bool = False  # the teacher's map comes from an untrained teacher (no teacher guidance)


_NO_CYCLE_1, _NO_CYCLE_2 = ("--bootstrap.cycle-weight", "0"), ("--multistep.cycle-weight", "0")
ROWS = (
    Row("teacher", "teacher (deterministic, Splatter Image)", None, "teacher"),
    Row(
        "deterministic", "deterministic net of the student's architecture, same 2D loss and steps", 19.99,
        "deterministic",
    ),
    Row(
        "no_teacher", "no teacher: rendering losses only (untrained teacher's map)", 16.73, "student",
        ("--bootstrap.map-weight", "0", *_NO_CYCLE_1, *_NO_CYCLE_2), untrained_teacher=True,
    ),
    Row("s1_render", "stage 1: rendering loss only", 18.82, "student",
        ("--bootstrap.map-weight", "0", *_NO_CYCLE_1), stages="bootstrap"),
    Row("s1_map", "stage 1: + diffusion loss", 22.61, "student", _NO_CYCLE_1, stages="bootstrap"),
    Row("s1_cycle", "stage 1: + diffusion loss + cycle", 23.73, "student",
        ("--bootstrap.cycle-weight", "1"), stages="bootstrap"),
    Row("s2_render", "stage 2: rendering loss only", 24.49, "student", _NO_CYCLE_2, "multistep", "s1_map"),
    Row("s2_map", "stage 2: keeping the diffusion loss", 23.13, "student",
        (*_NO_CYCLE_2, "--multistep.map-weight", "1"), "multistep", "s1_map"),
    Row("s2_uniform", "stage 2: unweighted λ_t", 22.88, "student",
        (*_NO_CYCLE_2, "--multistep.weighting", "uniform"), "multistep", "s1_map"),
    Row("s2_no_cycle", "full, without cycle in stage 2", 24.69, "student", _NO_CYCLE_2, "multistep", "s1_cycle"),
    Row("full", "full (cycle in both stages)", 24.91, "student",
        ("--multistep.cycle-weight", "1"), "multistep", "s1_cycle"),
)  # fmt: skip
ROW_BY_NAME = {row.name: row for row in ROWS}

# (row, the row it differs from in one thing, the paper's difference; None: the paper's claim that it is > 0)
COMPARISONS: tuple[tuple[str, str, float | None], ...] = (
    ("s1_render", "s1_map", 18.82 - 22.61),
    ("s1_cycle", "s1_map", 23.73 - 22.61),
    ("s2_render", "s1_map", 24.49 - 22.61),
    ("s2_map", "s2_render", 23.13 - 24.49),
    ("s2_uniform", "s2_render", 22.88 - 24.49),
    ("no_teacher", "s2_render", 16.73 - 24.49),
    ("deterministic", "s2_render", 19.99 - 24.49),
    ("s2_no_cycle", "full", 24.69 - 24.91),
    ("s2_render", "teacher", None),
    ("full", "teacher", None),
)


def row_flags(row: Row) -> tuple[str, ...]:
    """A row's flags: its parent's (recursively), then its own."""
    parent = () if row.parent is None else row_flags(ROW_BY_NAME[row.parent])
    return (*parent, *row.flags)


def dependencies(row: Row) -> set[str]:
    """The rows that must be finished before `row` starts: its parent, and the teacher unless it has none."""
    needed = set() if row.parent is None else {row.parent}
    if row.kind == "student" and not row.untrained_teacher:
        needed.add("teacher")
    return needed


def direction(paper: float | None, ours: PairedDifference) -> str:
    """Whether our paired difference moves as the paper's does (a paper difference of None means "> 0")."""
    sign = 1.0 if paper is None else paper
    if ours.low <= 0 <= ours.high:
        return "unresolved"
    return "as the paper" if (ours.mean > 0) == (sign > 0) else "opposite"


def _experiment(row: Row, out_dir: Path, argv: list[str]):
    return study_experiment([*RECIPE, *argv, *row_flags(row)], out_dir / row.name)


def _copy_parent_stage_1(row: Row, out_dir: Path) -> None:
    """Put the parent row's final stage-1 checkpoint into this row's run directory (atomically), so that its stage 2
    starts from exactly those weights."""
    source = latest_checkpoint(out_dir / row.parent / "checkpoints" / "bootstrap")
    if source is None:
        raise ValueError(f"{out_dir / row.parent}: no stage-1 checkpoint for row {row.name} to start from")
    target = out_dir / row.name / "checkpoints" / "bootstrap" / source.name
    if target.is_file():
        return
    atomic_write(target, lambda partial: shutil.copyfile(source, partial))


def run_row(name: str, out_dir: Path, argv: list[str], teacher_checkpoint: Path | None, teacher_steps: int) -> dict:
    """Train and score one row in `out_dir/<name>` (resuming its checkpoints); its result is kept in `row.json`.

    The teacher row trains a teacher for `teacher_steps` unless `teacher_checkpoint` is given; student rows load
    `teacher_checkpoint` (the teacher row's result)."""
    torch.set_num_threads(1)
    row = ROW_BY_NAME[name]
    row_dir = out_dir / row.name
    done = row_dir / "row.json"
    if done.is_file():
        return json.loads(done.read_text())
    experiment = _experiment(row, out_dir, argv)
    data = APP.data(experiment)
    batches, _ = APP.training_data(experiment, data)
    started = time.time()
    if row.kind == "student":
        torch.manual_seed(0)  # the untrained teacher of `no_teacher`: the same weights on every run
        teacher = APP.teacher(experiment, data)
        if not row.untrained_teacher:
            teacher.load_state_dict(load_checkpoint(teacher_checkpoint).ema)
        if row.parent is not None:
            _copy_parent_stage_1(row, out_dir)
        stage = {"bootstrap": "bootstrap", "multistep": "multistep", "both": "all"}[row.stages]
        teacher, student = run_stages(
            stage, row_dir, teacher, lambda t: build_student(experiment, t), batches, experiment.stages,
            train_the_teacher=False,
        )  # fmt: skip
        trained_s = time.time() - started
        per_item = student_scores(experiment, data, teacher, student)["per_item"]["student"]
        result = {"checkpoint": None}
    else:
        if row.kind == "deterministic":
            experiment = _deterministic(experiment)
            steps = experiment.bootstrap.loop.max_steps + experiment.multistep.loop.max_steps
        else:
            steps = teacher_steps
        loop = replace(demo_loop(steps, 250, 0.99, 100), keep_checkpoints=2, progress=False)
        experiment = replace(experiment, teacher=replace(experiment.teacher, loop=loop))
        torch.manual_seed(0)
        network = APP.teacher(experiment, data)
        if row.kind == "teacher" and teacher_checkpoint is not None:
            checkpoint = Path(teacher_checkpoint)
        else:
            run_stages("teacher", row_dir, network, None, batches, experiment.stages)
            checkpoint = latest_checkpoint(row_dir / "checkpoints" / "teacher")
        network.load_state_dict(load_checkpoint(checkpoint).ema)
        trained_s = time.time() - started
        per_item = teacher_scores(experiment, val_examples(experiment, data), network)
        result = {"checkpoint": str(checkpoint)}
    scores = [item["novel"]["psnr"] for item in per_item.values()]
    result |= {
        "row": row.name,
        "flags": list(row_flags(row)),
        "psnr": sum(scores) / len(scores),
        "train_s": round(trained_s),
        "score_s": round(time.time() - started - trained_s),
        "per_item": per_item,
    }
    atomic_write(done, lambda partial: partial.write_text(json.dumps(result)))
    return result


def _deterministic(experiment):
    """The experiment whose teacher network has the student's architecture (`model.student_unet`: width, depth,
    levels, attention, dropout) with the teacher's input and output and no noise input: the paper's deterministic
    control (19.99)."""
    model = experiment.model
    unet = replace(
        model.student_unet,
        in_channels=model.teacher_unet.in_channels,
        out_channels=model.teacher_unet.out_channels,
        noise_embedding=False,
    )
    return replace(experiment, model=replace(model, teacher_unet=unet))


def run_ablation(
    out_dir: Path,
    argv: list[str],
    *,
    teacher_checkpoint: Path | None = None,
    teacher_steps: int = 3000,
    jobs: int = 2,
    rows: tuple[str, ...] | None = None,
    report: Callable[[str], None] = print,
) -> dict[str, dict]:
    """Every row (or the named `rows` and what they depend on), up to `jobs` at once; returns each row's result."""
    out_dir.mkdir(parents=True, exist_ok=True)
    options = {"argv": argv, "teacher_checkpoint": None if teacher_checkpoint is None else str(teacher_checkpoint)}
    options["teacher_steps"] = teacher_steps
    saved = out_dir / "options.json"
    before = json.loads(saved.read_text()) if saved.is_file() else options
    changed = [f"{key} {before.get(key)!r} → {value!r}" for key, value in options.items() if before.get(key) != value]
    if changed:
        raise ValueError(f"{out_dir}: an ablation with other options ({'; '.join(changed)}); use another directory")
    saved.write_text(json.dumps(options))
    wanted = _with_dependencies(set(ROW_BY_NAME) if rows is None else set(rows))
    APP.data(_experiment(ROW_BY_NAME["teacher"], out_dir, argv))  # the data once, before the jobs read it
    results: dict[str, dict] = {}
    pending = [row for row in ROWS if row.name in wanted]

    def arguments(row: Row) -> tuple:
        checkpoint = results["teacher"]["checkpoint"] if "teacher" in results else teacher_checkpoint
        return row.name, out_dir, argv, None if checkpoint is None else Path(checkpoint), teacher_steps

    def finished(row: Row, result: dict) -> None:
        results[row.name] = result
        report(f"{row.name}: {result['psnr']:.2f} dB (trained {result['train_s']} s, scored {result['score_s']} s)")

    if jobs <= 1:
        for row in pending:
            finished(row, run_row(*arguments(row)))
        return results
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        running: dict[Future, Row] = {}
        while pending or running:
            ready = [row for row in pending if dependencies(row) <= results.keys()]
            needed = set().union(*(dependencies(row) for row in pending))
            ready.sort(key=lambda row: row.name not in needed)  # rows that others wait for first, then in order
            for row in ready[: jobs - len(running)]:
                pending.remove(row)
                running[pool.submit(run_row, *arguments(row))] = row
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                finished(running.pop(future), future.result())
    return results


def _with_dependencies(names: set[str]) -> set[str]:
    unknown = sorted(names - set(ROW_BY_NAME))
    if unknown:
        raise ValueError(f"unknown ablation rows {unknown}; the rows are {[row.name for row in ROWS]}")
    closed = set(names)
    while True:
        more = set().union(*(dependencies(ROW_BY_NAME[name]) for name in closed)) - closed
        if not more:
            return closed
        closed |= more


def ablation_tables(results: dict[str, dict]) -> tuple[list[list[str]], list[list[str]]]:
    """The table of rows (row, paper PSNR, ours) and the table of comparisons (row − reference: the paper's
    difference, ours paired with its interval, objects where the row is better, the verdict), as text cells."""
    rows = [
        [row.label, "" if row.paper is None else f"{row.paper:.2f}", f"{results[row.name]['psnr']:.2f}"]
        for row in ROWS
        if row.name in results
    ]
    comparisons = []
    for name, reference, paper in COMPARISONS:
        if name not in results or reference not in results:
            continue
        per_item: dict[str, PerObject] = {key: results[key]["per_item"] for key in (name, reference)}
        ours = paired_difference(per_item, name, reference, "novel", "psnr")
        comparisons.append(
            [
                f"{name} − {reference}",
                "> 0" if paper is None else f"{paper:+.2f}",
                ours.text(2),
                f"{ours.wins}/{ours.items}",
                direction(paper, ours),
            ]
        )
    return rows, comparisons


def markdown(header: list[str], cells: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in cells)])


ROW_HEADER = ["row", "paper (SRN cars val)", "ours (toy cars val)"]
COMPARISON_HEADER = ["comparison", "paper", "ours [95 % CI]", "wins", "direction"]
