"""apps/srn/ablate.py: every row of the paper's ablation from one teacher, stage-2 rows from their stage-1 row's
weights, comparisons that change one thing, verdicts read against the paper's sign, and a resumed run that trains
nothing again."""

import json
import math
import pathlib
import subprocess
import sys

import pytest
from test_srn_end_to_end import APP_DIR, _args

from app_srn.ablation import COMPARISONS, RECIPE, ROW_BY_NAME, ROWS, _with_dependencies, direction, row_flags
from app_srn.research import study_experiment
from splat_apps.statistics import PairedDifference
from splat_teachers.config_io import to_jsonable


def _leaves(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _leaves(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def _options(name: str) -> dict[str, object]:
    experiment = study_experiment([*RECIPE, *row_flags(ROW_BY_NAME[name])], pathlib.Path("unused"))
    return _leaves(to_jsonable(experiment))


@pytest.mark.parametrize(
    ("row", "reference", "option"),
    [
        ("s1_render", "s1_map", "bootstrap.map_weight"),
        ("s1_cycle", "s1_map", "bootstrap.cycle_weight"),
        ("s2_map", "s2_render", "multistep.map_weight"),
        ("s2_uniform", "s2_render", "multistep.weighting"),
        ("s2_no_cycle", "full", "multistep.cycle_weight"),
    ],
)
def test_each_ablation_comparison_of_two_students_changes_one_option(row: str, reference: str, option: str) -> None:
    assert (row, reference) in {(a, b) for a, b, _ in COMPARISONS}
    first, second = _options(row), _options(reference)
    assert [key for key in first if first[key] != second[key]] == [option]
    assert ROW_BY_NAME[row].parent == ROW_BY_NAME[reference].parent  # and the same stage-1 weights, if any


def test_stage_2_rows_inherit_their_stage_1_rows_options_and_the_teacher_comes_first() -> None:
    for row in ROWS:
        if row.stages == "multistep":
            parent = _options(row.parent)
            assert {k: v for k, v in _options(row.name).items() if k.startswith("bootstrap.")} == {
                k: v for k, v in parent.items() if k.startswith("bootstrap.")
            }
    assert _with_dependencies({"full"}) == {"full", "s1_cycle", "teacher"}
    assert _with_dependencies({"no_teacher"}) == {"no_teacher"}  # its teacher is untrained, not the teacher row's
    with pytest.raises(ValueError, match="unknown ablation rows \\['nope'\\]"):
        _with_dependencies({"nope"})


def test_a_verdict_needs_the_papers_sign_and_an_interval_without_zero() -> None:
    def ours(mean: float, low: float, high: float) -> PairedDifference:
        return PairedDifference(mean, low, high, items=32, wins=16)

    assert direction(-1.4, ours(-0.3, -0.5, -0.1)) == "as the paper"
    assert direction(-1.4, ours(0.3, 0.1, 0.5)) == "opposite"
    assert direction(-1.4, ours(-0.3, -0.5, 0.1)) == "unresolved"
    assert direction(None, ours(0.2, 0.05, 0.4)) == "as the paper"  # None: the paper's claim "student > teacher"
    assert direction(None, ours(-0.2, -0.4, -0.05)) == "opposite"


def _ablate(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(APP_DIR / "ablate.py"), *arguments], capture_output=True, text=True, timeout=600
    )


def test_ablate_runs_every_row_from_one_teacher_and_a_rerun_trains_nothing(tmp_path: pathlib.Path) -> None:
    flags = _args(tmp_path / "unused", tmp_path / "cache")[2:]
    out = tmp_path / "ablation"
    done = _ablate(str(out), "--teacher-steps", "2", "--jobs", "2", *flags)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "ablation.json").read_text())
    assert set(result["rows"]) == {row.name for row in ROWS}
    assert all(math.isfinite(row["psnr"]) for row in result["rows"].values())
    assert {comparison[0] for comparison in result["comparisons"]} == {f"{a} − {b}" for a, b, _ in COMPARISONS}
    assert "| stage 2: keeping the diffusion loss | 23.13 |" in (out / "ablation.md").read_text()
    for row in ROWS:  # stage 2 starts from exactly its stage-1 row's final weights
        if row.parent is not None:
            (copied,) = (out / row.name / "checkpoints" / "bootstrap").iterdir()
            parent = max((out / row.parent / "checkpoints" / "bootstrap").glob("step_*.safetensors"))
            assert copied.name == parent.name and copied.read_bytes() == parent.read_bytes()
    teacher = json.loads((out / "teacher" / "row.json").read_text())["per_item"]
    scored = json.loads((out / "s1_map" / "eval" / "val" / "scores.json").read_text())["per_item"]["teacher"]
    assert {k: v["novel"]["psnr"] for k, v in scored.items()} == pytest.approx(
        {k: v["novel"]["psnr"] for k, v in teacher.items()}, abs=1e-4
    )  # the students were trained and scored against the teacher row's network
    checkpoints = {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")}
    again = _ablate(str(out), "--teacher-steps", "2", "--jobs", "1", *flags)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")} == checkpoints
    assert json.loads((out / "ablation.json").read_text())["rows"] == result["rows"]
    other = _ablate(str(out), "--teacher-steps", "3", *flags)
    assert other.returncode == 1 and "teacher_steps 2 → 3" in other.stdout and "another directory" in other.stdout
