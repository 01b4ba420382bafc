"""End to end at 16 px: train.py produces a complete run directory, resumes instead of restarting, refuses a different
experiment, and eval.py / sample.py work on it (also on a run directory written by an older version); the same
train.py under torchrun on 2 gloo ranks; every entry script answers --help."""

import ast
import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from app_co3d import APP
from splat_apps import eval_main, sample_main, train_main
from splat_apps.testing import metrics_log, torchrun

STEPS = {"teacher": 3, "bootstrap": 3, "multistep": 2}
TEST_SEQUENCES = 2
APP_DIR = pathlib.Path(__file__).resolve().parents[1]


def script_doc(name: str) -> str:
    """The docstring of `apps/co3d/<name>.py` (its --help text)."""
    return ast.get_docstring(ast.parse((APP_DIR / f"{name}.py").read_text()), clean=False)


def train(argv: list[str]) -> int:
    return train_main(APP, script_doc("train"), argv)


def evaluate(argv: list[str]) -> int:
    return eval_main(APP, script_doc("eval"), argv)


def sample(argv: list[str]) -> int:
    return sample_main(APP, script_doc("sample"), argv)


TINY = {  # flag -> value: 16 px synthetic sequences, 8-channel networks, 2 DDIM steps, a few steps per stage
    "data.synthetic.resolution": 16,
    "data.synthetic.train-sequences": 3,
    "data.synthetic.val-sequences": 1,
    "data.synthetic.test-sequences": TEST_SEQUENCES,
    "data.synthetic.frames-per-sequence": 6,
    "data.synthetic.supersampling": 1,
    "data.batch-size": 2,
    "data.num-targets": 2,
    "model.teacher-unet.model-channels": 8,
    "model.teacher-unet.num-blocks": 1,
    "model.student-unet.model-channels": 8,
    "normalizer-batches": 2,
    **{f"{stage}.loop.max-steps": steps for stage, steps in STEPS.items()},
    **{f"{stage}.loop.log-every": 1 for stage in STEPS},
    # the flags of older versions still work: both set today's --diffusion.ddim-steps
    "multistep.diffusion.ddim-steps": 3,
    "bootstrap.diffusion.ddim-steps": 3,
    "eval.num-samples": 2,
    "eval.grid-sequences": 1,
    "eval.grid-views": 2,
    "threads": 1,
}


def _args(run_dir: pathlib.Path, cache: pathlib.Path, multistep_steps: int = STEPS["multistep"]) -> list[str]:
    flags = {"run-dir": run_dir, "data.cache-dir": cache, **TINY, "multistep.loop.max-steps": multistep_steps}
    return [*(part for name, value in flags.items() for part in (f"--{name}", str(value))), "--eval.no-lpips"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    """A trained tiny run directory, and the synthetic-data cache it was trained on."""
    run_dir, cache = tmp_path_factory.mktemp("run"), tmp_path_factory.mktemp("cache")
    assert train(_args(run_dir, cache)) == 0
    return run_dir, cache


def test_a_run_writes_config_checkpoints_metrics_images_and_an_eval_table(run) -> None:
    run_dir, _ = run
    config = json.loads((run_dir / "config.json").read_text())
    assert config["preset"] == "cpu-demo"
    assert config["background"] == [0.0, 0.0, 0.0] and config["diffusion"]["ddim_steps"] == 3
    assert not any("background" in config[stage] or "diffusion" in config[stage] for stage in STEPS)
    assert {record["stage"]: record["step"] for record in metrics_log(run_dir)} == STEPS  # the last logged step of each
    for stage, steps in STEPS.items():
        newest = max((run_dir / "checkpoints" / stage).glob("step_*.safetensors"))
        assert newest.name == f"step_{steps:08d}.safetensors"
    table = (run_dir / "eval" / "test" / "table.md").read_text()
    assert "| teacher |" in table and "| student (1 sample) |" in table and "student − teacher" in table
    assert "| A Lesson in Splats (paper) | 22.34 |" in table and "| Splatter Image (paper) | 21.77 |" in table
    assert "Not comparable" in table and "synthetic" in table
    scores = json.loads((run_dir / "eval" / "test" / "scores.json").read_text())
    sequences = scores["per_item"]["teacher"]
    assert set(sequences) == set(scores["per_item"]["student"]) and len(sequences) == TEST_SEQUENCES
    assert all({"psnr", "ssim"} <= set(s[slot]) for s in sequences.values() for slot in ("novel", "input"))
    assert scores["summary"]["teacher"]["novel"]["items"] == TEST_SEQUENCES
    assert scores["split"] == "test" and scores["image_size"] == 16 and scores["num_samples"] == 2
    assert list((run_dir / "eval" / "test").glob("grid_*.png"))


def test_running_again_resumes_instead_of_restarting(run) -> None:
    run_dir, cache = run
    before = metrics_log(run_dir)
    assert train(_args(run_dir, cache)) == 0 and metrics_log(run_dir) == before  # nothing retrained
    longer = STEPS["multistep"] + 2
    assert train(_args(run_dir, cache, multistep_steps=longer)) == 0
    steps = [record["step"] for record in metrics_log(run_dir) if record["stage"] == "multistep"]
    assert steps == list(range(1, longer + 1))  # continued after the last step, earlier steps not repeated


def test_a_run_directory_refuses_a_different_experiment(run, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir, cache = run
    config, log = (run_dir / "config.json").read_text(), metrics_log(run_dir)
    capsys.readouterr()
    assert train([*_args(run_dir, cache), "--teacher.learning-rate", "0.5"]) == 1
    assert "different configuration (teacher differ)" in " ".join(capsys.readouterr().out.split())
    assert train([*_args(run_dir, cache), "--data.synthetic.train-sequences", "4"]) == 1
    assert "different configuration (data differ)" in " ".join(capsys.readouterr().out.split())
    assert train([*_args(run_dir, cache), "--background", "1", "1", "1"]) == 1
    assert "different configuration (background differ)" in " ".join(capsys.readouterr().out.split())
    assert (run_dir / "config.json").read_text() == config and metrics_log(run_dir) == log


def test_eval_command_rewrites_the_table_for_the_chosen_subset(run) -> None:
    run_dir, _ = run
    assert evaluate([str(run_dir), "--max-sequences", "1", "--num-samples", "1", "--t-start", "10", "--no-lpips"]) == 0
    scores = json.loads((run_dir / "eval" / "test" / "scores.json").read_text())
    assert len(scores["per_item"]["teacher"]) == 1 and scores["t_start"] == 10 and scores["num_samples"] == 1
    assert "student (mean over 1 samples)" in (run_dir / "eval" / "test" / "table.md").read_text()
    assert evaluate([str(run_dir), "--split", "val"]) == 0
    assert (
        json.loads((run_dir / "eval" / "val" / "scores.json").read_text())["summary"]["teacher"]["novel"]["items"] == 1
    )
    with pytest.raises(SystemExit):  # tyro refuses a split that is not test or val
        evaluate([str(run_dir), "--split", "train"])
    assert evaluate([str(run_dir.parent / "not-a-run")]) == 1


def test_eval_reads_a_run_directory_written_by_an_older_version(run, tmp_path: pathlib.Path) -> None:
    """Older versions stored the diffusion process in each student stage and the background in every stage."""
    run_dir = pathlib.Path(shutil.copytree(run[0], tmp_path / "old-run"))
    config = json.loads((run_dir / "config.json").read_text())
    diffusion, background = config.pop("diffusion"), config.pop("background")
    for stage in STEPS:
        config[stage]["background"] = background
    config["bootstrap"]["diffusion"] = config["multistep"]["diffusion"] = diffusion
    (run_dir / "config.json").write_text(json.dumps(config))
    assert evaluate([str(run_dir), "--max-sequences", "1", "--num-samples", "1"]) == 0


def test_sample_command_writes_ply_files_and_turntables_for_a_test_sequence(run, tmp_path: pathlib.Path) -> None:
    run_dir, _ = run
    assert sample([str(run_dir), "--num-samples", "2", "--frames", "4", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.ply")) == ["sample_1.ply", "sample_2.ply", "teacher.ply"]
    assert (tmp_path / "sample_1.gif").stat().st_size > 0 and (tmp_path / "overview.png").is_file()
    assert sample([str(run_dir), "--sequence-index", str(TEST_SEQUENCES)]) == 1
    assert sample([str(run_dir), "--focal", "2.5"]) == 1  # a test sequence brings its own focal length


def test_sample_command_takes_a_square_image_with_its_focal_length(run, tmp_path: pathlib.Path) -> None:
    run_dir, _ = run
    rgba = np.zeros((24, 24, 4), dtype=np.uint8)
    rgba[6:18, 8:16] = (200, 40, 30, 255)
    Image.fromarray(rgba).save(tmp_path / "hydrant.png")
    out = tmp_path / "out"
    args = [str(run_dir), "--image", str(tmp_path / "hydrant.png"), "--num-samples", "1", "--frames", "3"]
    assert sample([*args, "--focal", "2.5", "--origin-distance", "2.0", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.ply")) == ["sample_1.ply", "teacher.ply"]
    assert sample(args) == 1  # no focal length
    Image.fromarray(rgba[:20]).save(tmp_path / "wide.png")
    assert sample([str(run_dir), "--image", str(tmp_path / "wide.png"), "--focal", "2.5"]) == 1
    assert sample([str(run_dir), "--image", str(tmp_path / "missing.png"), "--focal", "2.5"]) == 1


def test_train_runs_unchanged_under_torchrun_on_two_processes(run, tmp_path: pathlib.Path) -> None:
    _, cache = run  # the synthetic data is already generated
    args = _args(tmp_path, cache)
    args[args.index("--data.batch-size") + 1] = "1"  # 2 processes x 1 sequence: the global batch of 2
    result = torchrun(APP_DIR / "train.py", args)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    last = {record["stage"]: (record["step"], record["world_size"]) for record in metrics_log(tmp_path)}
    assert last == {stage: (steps, 2) for stage, steps in STEPS.items()}  # every stage ran to the end on 2 ranks
    assert (tmp_path / "eval" / "test" / "table.md").is_file() and result.stdout.count("table: ") == 1  # rank 0 alone


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("train", script_doc("train")),
        ("eval", script_doc("eval")),
        ("sample", script_doc("sample")),
        ("data", "--check-data PATH"),  # its help is app_co3d.data's (the reader's docstring)
        ("preprocess", "--co3d-root"),  # its help is app_co3d.preprocess's
    ],
)
def test_every_entry_script_answers_help(name: str, expected: str) -> None:
    result = subprocess.run(
        [sys.executable, str(APP_DIR / f"{name}.py"), "--help"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert " ".join(expected.split()[:4]) in " ".join(result.stdout.split())
