"""End to end at 16 px: train.py produces a complete run directory, resumes instead of restarting, refuses a different
experiment, and eval.py / sample.py work on it; the same train.py under torchrun on 2 gloo ranks."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

# isort: off
import eval as eval_app
import sample as sample_app
import train

# isort: on

STEPS = {"teacher": 3, "bootstrap": 3, "multistep": 2}
TEST_SEQUENCES = 2


def _args(run_dir: pathlib.Path, cache: pathlib.Path, multistep_steps: int = STEPS["multistep"]) -> list[str]:
    return [
        "--run-dir",
        str(run_dir),
        "--data.cache-dir",
        str(cache),
        "--data.synthetic.resolution",
        "16",
        "--data.synthetic.train-sequences",
        "3",
        "--data.synthetic.val-sequences",
        "1",
        "--data.synthetic.test-sequences",
        str(TEST_SEQUENCES),
        "--data.synthetic.frames-per-sequence",
        "6",
        "--data.synthetic.supersampling",
        "1",
        "--data.batch-size",
        "2",
        "--data.num-targets",
        "2",
        "--model.teacher-unet.model-channels",
        "8",
        "--model.teacher-unet.num-blocks",
        "1",
        "--model.student-unet.model-channels",
        "8",
        "--normalizer-batches",
        "2",
        "--teacher.loop.max-steps",
        str(STEPS["teacher"]),
        "--bootstrap.loop.max-steps",
        str(STEPS["bootstrap"]),
        "--multistep.loop.max-steps",
        str(multistep_steps),
        "--teacher.loop.log-every",
        "1",
        "--bootstrap.loop.log-every",
        "1",
        "--multistep.loop.log-every",
        "1",
        "--multistep.diffusion.ddim-steps",
        "3",
        "--bootstrap.diffusion.ddim-steps",
        "3",
        "--eval.num-samples",
        "2",
        "--eval.grid-sequences",
        "1",
        "--eval.grid-views",
        "2",
        "--eval.no-lpips",
        "--threads",
        "1",
    ]


def _log(run_dir: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    run_dir = tmp_path_factory.mktemp("run")
    cache = tmp_path_factory.mktemp("cache")
    assert train.main(_args(run_dir, cache)) == 0
    return run_dir, cache


def test_a_run_writes_config_checkpoints_metrics_images_and_an_eval_table(run) -> None:
    run_dir, _ = run
    config = json.loads((run_dir / "config.json").read_text())
    assert config["preset"] == "cpu-demo"
    assert all(config[stage]["background"] == [0.0, 0.0, 0.0] for stage in STEPS)
    for stage, steps in STEPS.items():
        checkpoints = sorted((run_dir / "checkpoints" / stage).glob("step_*.safetensors"))
        assert checkpoints and checkpoints[-1].name == f"step_{steps:08d}.safetensors"
        assert [r["step"] for r in _log(run_dir) if r["stage"] == stage][-1] == steps
    table = (run_dir / "eval" / "test" / "table.md").read_text()
    assert "| teacher |" in table and "| student (1 sample) |" in table and "student − teacher" in table
    assert "| A Lesson in Splats (paper) | 22.34 |" in table and "| Splatter Image (paper) | 21.77 |" in table
    assert "Not comparable" in table and "synthetic" in table
    scores = json.loads((run_dir / "eval" / "test" / "scores.json").read_text())
    sequences = scores["per_sequence"]["teacher"]
    assert set(sequences) == set(scores["per_sequence"]["student"]) and len(sequences) == TEST_SEQUENCES
    assert all({"psnr", "ssim", "psnr_input", "ssim_input"} <= set(s) for s in sequences.values())
    assert scores["summary"]["teacher"]["objects"] == TEST_SEQUENCES
    assert list((run_dir / "eval" / "test").glob("grid_*.png"))


def test_running_again_resumes_instead_of_restarting(run) -> None:
    run_dir, cache = run
    before = _log(run_dir)
    assert train.main(_args(run_dir, cache)) == 0
    assert _log(run_dir) == before  # nothing retrained
    assert train.main(_args(run_dir, cache, multistep_steps=STEPS["multistep"] + 2)) == 0
    after = [r["step"] for r in _log(run_dir) if r["stage"] == "multistep"]
    assert after == list(range(1, STEPS["multistep"] + 3))  # continued at step 3, earlier steps not repeated


def test_a_run_directory_refuses_a_different_experiment(run, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir, cache = run
    config, log = (run_dir / "config.json").read_text(), _log(run_dir)
    capsys.readouterr()
    assert train.main([*_args(run_dir, cache), "--teacher.learning-rate", "0.5"]) == 1
    assert "different configuration (teacher differ)" in " ".join(capsys.readouterr().out.split())
    assert train.main([*_args(run_dir, cache), "--data.synthetic.train-sequences", "4"]) == 1
    assert "different configuration (data differ)" in " ".join(capsys.readouterr().out.split())
    assert (run_dir / "config.json").read_text() == config and _log(run_dir) == log  # nothing written, nothing trained


def test_eval_command_rewrites_the_table_for_the_chosen_subset(run) -> None:
    run_dir, _ = run
    assert eval_app.main([str(run_dir), "--max-sequences", "1", "--num-samples", "1"]) == 0
    scores = json.loads((run_dir / "eval" / "test" / "scores.json").read_text())
    assert len(scores["per_sequence"]["teacher"]) == 1
    assert "student (mean over 1 samples)" in (run_dir / "eval" / "test" / "table.md").read_text()
    assert eval_app.main([str(run_dir), "--split", "train"]) == 1
    assert eval_app.main([str(run_dir.parent / "not-a-run")]) == 1


def test_sample_command_writes_ply_files_and_turntables_for_a_test_sequence(run, tmp_path: pathlib.Path) -> None:
    run_dir, _ = run
    assert sample_app.main([str(run_dir), "--num-samples", "2", "--frames", "4", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.ply")) == ["sample_1.ply", "sample_2.ply", "teacher.ply"]
    assert (tmp_path / "sample_1.gif").stat().st_size > 0 and (tmp_path / "overview.png").is_file()
    assert sample_app.main([str(run_dir), "--sequence-index", str(TEST_SEQUENCES)]) == 1


def test_sample_command_takes_a_square_image_with_its_focal_length(run, tmp_path: pathlib.Path) -> None:
    run_dir, _ = run
    rgba = np.zeros((24, 24, 4), dtype=np.uint8)
    rgba[6:18, 8:16] = (200, 40, 30, 255)
    Image.fromarray(rgba).save(tmp_path / "hydrant.png")
    out = tmp_path / "out"
    args = [str(run_dir), "--image", str(tmp_path / "hydrant.png"), "--num-samples", "1", "--frames", "3"]
    assert sample_app.main([*args, "--focal", "2.5", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.ply")) == ["sample_1.ply", "teacher.ply"]
    assert sample_app.main(args) == 1  # no focal length
    Image.fromarray(rgba[:20]).save(tmp_path / "wide.png")
    assert sample_app.main([str(run_dir), "--image", str(tmp_path / "wide.png"), "--focal", "2.5"]) == 1


def test_train_runs_unchanged_under_torchrun_on_two_processes(run, tmp_path: pathlib.Path) -> None:
    _, cache = run  # the synthetic data is already generated
    args = _args(tmp_path, cache)
    args[args.index("--data.batch-size") + 1] = "1"  # 2 processes x 1 sequence: the global batch of 2
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", f"--master-port={port}"]
    result = subprocess.run(
        [*launcher, "--master-addr=127.0.0.1", train.__file__, *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for stage, steps in STEPS.items():
        assert [(r["step"], r["world_size"]) for r in _log(tmp_path) if r["stage"] == stage][-1] == (steps, 2)
    assert (tmp_path / "eval" / "test" / "table.md").is_file()
    assert result.stdout.count("table: ") == 1  # rank 0 alone prints (and evaluates)
