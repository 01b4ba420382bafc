"""apps/srn/study.py on tiny data: the teacher curve, a student run from its checkpoint, a t_start sweep, the one-step
denoising probe, the per-checkpoint fit on train and val objects, the per-term gradients and the paired run-vs-run
comparison."""

import json
import math
import pathlib
import subprocess
import sys

import pytest
from test_srn_end_to_end import APP_DIR, _args


def _study(*arguments: str) -> list[dict]:
    done = subprocess.run(
        [sys.executable, str(APP_DIR / "study.py"), *arguments], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_study_scores_teacher_checkpoints_then_a_student_from_one_on_the_validation_split(
    tmp_path: pathlib.Path,
) -> None:
    flags = _args(tmp_path / "unused", tmp_path / "cache")[2:]  # study.py takes the run directory as an argument
    curve = [row for row in _study("teacher", str(tmp_path / "teacher"), "--steps", "2", *flags) if "step" in row]
    assert [row["step"] for row in curve] == [0, 2] and all(math.isfinite(row["val_psnr"]) for row in curve)
    checkpoint = max((tmp_path / "teacher" / "checkpoints" / "teacher").glob("step_*.safetensors"))
    (student,) = _study("student", str(tmp_path / "student"), str(checkpoint), *flags)
    assert student["student_wins"].endswith("/1") and math.isfinite(student["student_psnr"])
    assert student["teacher_psnr"] == pytest.approx(curve[-1]["val_psnr"], abs=1e-4)  # the curve scores as the protocol
    sweep = _study("sweep", str(tmp_path / "student"), str(checkpoint), "3,5", "--stage", "bootstrap")
    assert [(row["stage"], row["t_start"]) for row in sweep] == [("bootstrap", 3), ("bootstrap", 5)]
    probe = _study("denoise", str(tmp_path / "student"), str(checkpoint), "0,5", "--stage", "bootstrap")
    assert [row["t"] for row in probe] == [0, 5] and all(math.isfinite(row["student_psnr"]) for row in probe)
    assert probe[0]["noised_map_l2"] < probe[1]["noised_map_l2"]  # more noise at t = 5 than at t = 0
    assert probe[0]["teacher_psnr"] == pytest.approx(curve[-1]["val_psnr"], abs=1e-4)
    (same,) = _study("compare", str(tmp_path / "student"), str(tmp_path / "student"))
    assert float(same["difference"].split()[0]) == 0 and same["wins"].endswith("/1")  # a run against itself
    (own,) = _study("versus", str(tmp_path / "student"), str(checkpoint), *flags)  # its own teacher, paired
    assert own["teacher_psnr"] == pytest.approx(student["teacher_psnr"], abs=1e-4)
    assert own["student_minus_teacher"].split()[0] == student["student_minus_teacher"].split()[0]
    mixes = _study("blend", str(tmp_path / "student"), str(checkpoint), "0,1", "--stage", "bootstrap")
    assert [row["teacher_weight"] for row in mixes] == [0.0, 1.0]
    assert mixes[1]["psnr"] == pytest.approx(curve[-1]["val_psnr"], abs=1e-3)  # all teacher: the teacher's score
    fits = _study("fit", str(tmp_path / "student"), str(checkpoint), "--split", "val", "--objects", "1")
    assert fits and all(row["split"] == "val" and row["objects"] == 1 for row in fits)
    assert fits[0]["teacher_psnr"] == pytest.approx(curve[-1]["val_psnr"], abs=1e-4)
    train_fits = _study("fit", str(tmp_path / "student"), str(checkpoint), "--split", "train", "--objects", "2")
    assert train_fits[0]["objects"] == 2 and math.isfinite(train_fits[0]["student_psnr"])
    for stage, names in (("teacher", {"render"}), ("bootstrap", {"map", "image", "cycle"})):
        rows = _study("grads", str(tmp_path / "student"), str(checkpoint), "--stage", stage, "--batches", "2")
        assert {row["term"] for row in rows} == names
        assert all(float(row["grad_norm"]) > 0 and 0 < row["coherence"] <= 1 + 1e-6 for row in rows)
    rows = _study("grads", str(tmp_path / "student"), str(checkpoint), "--batches", "2")
    assert {row["term"] for row in rows} == {"image", "final_image", "cycle"}
