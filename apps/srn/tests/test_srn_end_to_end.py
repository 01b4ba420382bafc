"""End to end at 16 px: train.py produces a complete run directory, resumes instead of restarting, and eval.py /
sample.py work on it; the same train.py under torchrun on 2 gloo ranks."""

import json
import pathlib

import pytest

from app_srn import APP
from splat_apps import eval_main, sample_main, train_main
from splat_apps.testing import metrics_log, torchrun

APP_DIR = pathlib.Path(__file__).resolve().parents[1]

STEPS = {"teacher": 3, "bootstrap": 3, "multistep": 2}


def _args(run_dir: pathlib.Path, cache: pathlib.Path, multistep_steps: int = STEPS["multistep"]) -> list[str]:
    return [
        "--run-dir",
        str(run_dir),
        "--data.cache-dir",
        str(cache),
        "--data.synthetic.resolution",
        "16",
        "--data.synthetic.train-objects",
        "3",
        "--data.synthetic.train-views",
        "6",
        "--data.synthetic.val-objects",
        "1",
        "--data.synthetic.val-views",
        "5",
        "--data.synthetic.test-objects",
        "2",
        "--data.synthetic.test-views",
        "7",
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
        "--diffusion.ddim-steps",
        "3",
        "--eval.num-samples",
        "2",
        "--eval.grid-objects",
        "1",
        "--eval.grid-views",
        "2",
        "--eval.no-lpips",
        "--threads",
        "1",
    ]


def train(argv: list[str]) -> int:
    return train_main(APP, "", argv)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    run_dir = tmp_path_factory.mktemp("run")
    cache = tmp_path_factory.mktemp("cache")
    assert train(_args(run_dir, cache)) == 0
    return run_dir, cache


def test_a_run_writes_config_checkpoints_metrics_images_and_an_eval_table(run) -> None:
    run_dir, _ = run
    assert json.loads((run_dir / "config.json").read_text())["preset"] == "cpu-demo"
    for stage, steps in STEPS.items():
        checkpoints = sorted((run_dir / "checkpoints" / stage).glob("step_*.safetensors"))
        assert checkpoints and checkpoints[-1].name == f"step_{steps:08d}.safetensors"
        assert [r["step"] for r in metrics_log(run_dir) if r["stage"] == stage][-1] == steps
    table = (run_dir / "eval" / "test" / "table.md").read_text()
    assert "| teacher |" in table and "| student (1 sample) |" in table and "student − teacher" in table
    scores = json.loads((run_dir / "eval" / "test" / "scores.json").read_text())
    assert set(scores["per_item"]["teacher"]) == set(scores["per_item"]["student"])
    assert len(scores["per_item"]["teacher"]) == 2 and set(scores["summary"]["teacher"]) == {"novel", "input"}
    assert list((run_dir / "eval" / "test").glob("grid_*.png"))


def test_running_again_resumes_instead_of_restarting(run) -> None:
    run_dir, cache = run
    before = metrics_log(run_dir)
    assert train(_args(run_dir, cache)) == 0
    assert metrics_log(run_dir) == before  # nothing retrained
    assert train(_args(run_dir, cache, multistep_steps=STEPS["multistep"] + 2)) == 0
    after = [r["step"] for r in metrics_log(run_dir) if r["stage"] == "multistep"]
    assert after == list(range(1, STEPS["multistep"] + 3))  # continued at step 3, earlier steps not repeated


def test_a_run_directory_refuses_a_different_experiment(run) -> None:
    run_dir, cache = run
    args = _args(run_dir, cache)
    args[args.index("--model.student-unet.model-channels") + 1] = "16"  # another network: not resumable
    assert train(args) == 1


def test_eval_and_sample_commands_work_on_a_run_directory(run, tmp_path: pathlib.Path) -> None:
    run_dir, _ = run
    assert eval_main(APP, "", [str(run_dir), "--max-objects", "1", "--num-samples", "1"]) == 0
    assert sample_main(APP, "", [str(run_dir), "--num-samples", "2", "--frames", "4", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.ply")) == ["sample_1.ply", "sample_2.ply", "teacher.ply"]
    assert (tmp_path / "sample_1.gif").stat().st_size > 0 and (tmp_path / "overview.png").is_file()


def test_train_runs_unchanged_under_torchrun_on_two_processes(run, tmp_path: pathlib.Path) -> None:
    _, cache = run  # the synthetic data is already generated
    args = _args(tmp_path, cache)
    args[args.index("--data.batch-size") + 1] = "1"  # 2 processes x 1 object: the global batch of 2
    result = torchrun(APP_DIR / "train.py", args)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for stage, steps in STEPS.items():
        assert [(r["step"], r["world_size"]) for r in metrics_log(tmp_path) if r["stage"] == stage][-1] == (steps, 2)
    assert (tmp_path / "eval" / "test" / "table.md").is_file()
    assert result.stdout.count("table: ") == 1  # rank 0 alone prints (and evaluates)
