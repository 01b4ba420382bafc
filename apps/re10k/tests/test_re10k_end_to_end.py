"""End to end at 32×64 (Flash3D's 32 px padding, so a 96×128 map): train.py produces a complete run directory with the
+5 / +10 / ±30 table, resumes instead of restarting, refuses another experiment, and eval.py / sample.py work on it
(with every flag of the older eval.py); the evaluation's numbers are the protocol's (border crop, grey background, slot
order); train.py under torchrun."""

import importlib.util
import json
import pathlib
from dataclasses import replace

import pytest
import torch

from app_re10k import APP
from app_re10k.app import build_teacher, data_source, open_split
from app_re10k.experiment import RE10KExperiment
from app_re10k.protocol import crop_border, load_split_example, read_split, write_split
from splat_apps import collate, eval_main, load_trained_models, sample_main, train_main
from splat_apps.run_dir import load_run_config
from splat_apps.testing import metrics_log, torchrun
from splat_apps.visualize import save_image_grid
from splat_render import render
from splat_train import image_metrics

STEPS = {"teacher": 3, "bootstrap": 3, "multistep": 2}
TRAIN_SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "train.py"


def train(argv: list[str]) -> int:
    return train_main(APP, "train.py", argv)


def evaluate(argv: list[str]) -> int:
    return eval_main(APP, "eval.py", argv)


def sample(argv: list[str]) -> int:
    return sample_main(APP, "sample.py", argv)


def load_experiment(run_dir: pathlib.Path) -> RE10KExperiment:
    return load_run_config(run_dir, RE10KExperiment)


def load_models(experiment: RE10KExperiment):
    return load_trained_models(experiment, APP.teacher(experiment, data_source(experiment)))


def _args(run_dir: pathlib.Path, cache: pathlib.Path, multistep_steps: int = STEPS["multistep"]) -> list[str]:
    synthetic = {"height": 32, "width": 64, "train-scenes": 2, "test-scenes": 1, "frames": 24, "supersample": 1}
    return [
        "--run-dir",
        str(run_dir),
        "--data.cache-dir",
        str(cache),
        *[item for name, value in synthetic.items() for item in (f"--data.synthetic.{name}", str(value))],
        *["--model.teacher.height", "32", "--model.teacher.width", "64", "--model.teacher.padding", "32"],
        *["--model.student-unet.model-channels", "8", "--model.student-unet.attn-resolutions", "12"],
        *["--data.batch-size", "2", "--data.multistep-batch-size", "1", "--data.num-targets", "2"],
        *["--normalizer-batches", "2"],
        *["--teacher.loop.max-steps", str(STEPS["teacher"]), "--bootstrap.loop.max-steps", str(STEPS["bootstrap"])],
        *["--multistep.loop.max-steps", str(multistep_steps)],
        *["--teacher.loop.log-every", "1", "--bootstrap.loop.log-every", "1", "--multistep.loop.log-every", "1"],
        *["--multistep.diffusion.ddim-steps", "3", "--bootstrap.diffusion.ddim-steps", "3"],
        *["--eval.num-samples", "2", "--eval.grid-rows", "1", "--eval.batch-size", "2", "--eval.no-lpips"],
        *["--threads", "1"],
    ]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    """A trained run directory and the synthetic-data cache it was generated in."""
    root = tmp_path_factory.mktemp("re10k")
    run_dir, cache = root / "run", root / "cache"
    assert train(_args(run_dir, cache)) == 0
    return run_dir, cache


def test_a_run_writes_config_checkpoints_metrics_images_and_the_slot_table(run) -> None:
    run_dir, _ = run
    config = json.loads((run_dir / "config.json").read_text())
    assert config["preset"] == "cpu-demo" and config["model"]["teacher"]["padding"] == 32
    for stage, steps in STEPS.items():
        checkpoints = sorted((run_dir / "checkpoints" / stage).glob("step_*.safetensors"))
        assert checkpoints and checkpoints[-1].name == f"step_{steps:08d}.safetensors"
        assert [r["step"] for r in metrics_log(run_dir) if r["stage"] == stage][-1] == steps
    out = run_dir / "eval" / "test"
    table = (out / "table.md").read_text()
    for text in ("PSNR ↑ +5", "PSNR ↑ +10", "PSNR ↑ ±30", "| teacher |", "| student (1 sample) |", "student − teacher"):
        assert text in table
    assert "| A Lesson in Splats, paper | 29.12 | 26.54 | 25.40 |" in table
    assert "| Flash3D, paper | 28.46 | 25.94 | 24.93 |" in table
    assert "not comparable" in table
    scores = json.loads((out / "scores.json").read_text())
    rows = read_split(data_source(load_experiment(run_dir)).split_file)
    assert len(rows) == 2 and scores["synthetic"] and scores["image_size"] == [32, 64]
    assert scores["split_file"] == str(data_source(load_experiment(run_dir)).split_file)
    for method in ("teacher", "student", "student_mean"):
        assert list(scores["per_item"][method]) == [row.line() for row in rows]  # a row is an item
        summary = scores["summary"][method]
        assert list(summary) == ["src", "tgt5", "tgt10", "tgt_rand"]
        assert all(summary[slot]["items"] == 2 for slot in summary)
        per_row = [item["tgt10"]["psnr"] for item in scores["per_item"][method].values()]
        assert summary["tgt10"]["psnr"] == pytest.approx(sum(per_row) / len(per_row))
    (grid,) = out.glob("grid_*.png")
    assert grid.name == f"grid_000_{rows[0].key[:16]}_{rows[0].src}.png"


def test_evaluation_scores_are_the_protocol_metrics_of_grey_background_renders(run) -> None:
    """Recompute the teacher's row-0 scores: source frame → Gaussians → renders of (src, +5, +10, ±30) on grey →
    5%-border-cropped PSNR/SSIM against the frames the split row names."""
    run_dir, _ = run
    experiment = load_experiment(run_dir)
    source = data_source(experiment)
    row = read_split(source.split_file)[0]
    sequence = open_split(experiment, source, "test")[row.key]
    batch = collate([load_split_example(sequence, row, experiment.image_size)])
    teacher, _ = load_models(experiment)
    with torch.no_grad():
        gaussians = teacher(batch.source_images, batch.source_cameras).gaussians
        renders = render(gaussians, batch.target_cameras, background=torch.full((3,), 0.5)).rgb[0]
    expected = image_metrics(crop_border(renders), crop_border(batch.target_images[0]))
    stored = json.loads((run_dir / "eval" / "test" / "scores.json").read_text())["per_item"]["teacher"][row.line()]
    for view, slot in enumerate(("src", "tgt5", "tgt10", "tgt_rand")):
        for metric in ("psnr", "ssim"):
            assert stored[slot][metric] == pytest.approx(float(expected[metric][view]), abs=1e-4)


def test_running_again_resumes_instead_of_restarting(run) -> None:
    run_dir, cache = run
    before = metrics_log(run_dir)
    assert train(_args(run_dir, cache)) == 0
    assert metrics_log(run_dir) == before  # nothing retrained
    assert train([*_args(run_dir, cache, multistep_steps=STEPS["multistep"] + 2), "--eval.max-rows", "1"]) == 0
    after = [r["step"] for r in metrics_log(run_dir) if r["stage"] == "multistep"]
    assert after == list(range(1, STEPS["multistep"] + 3))  # continued at step 3, earlier steps not repeated


def test_a_run_directory_refuses_a_different_experiment(run) -> None:
    run_dir, cache = run
    assert train([*_args(run_dir, cache), "--teacher.learning-rate", "0.5"]) == 1
    assert train([*_args(run_dir, cache), "--model.teacher.padding", "0"]) == 1


def test_eval_and_sample_commands_work_on_a_run_directory(run, tmp_path: pathlib.Path) -> None:
    run_dir, _ = run
    assert evaluate([str(run_dir), "--max-rows", "1", "--num-samples", "1", "--threads", "1"]) == 0
    scores = json.loads((run_dir / "eval" / "test" / "scores.json").read_text())
    assert len(scores["per_item"]["teacher"]) == 1 and scores["num_samples"] == 1
    rows = read_split(data_source(load_experiment(run_dir)).split_file)
    split_file = tmp_path / "rows.txt"
    write_split(split_file, rows[::-1])
    flags = ["--max-rows", "5", "--split-file", str(split_file), "--batch-size", "2", "--threads", "1", "--no-lpips"]
    assert evaluate([str(run_dir), *flags]) == 0
    scores = json.loads((run_dir / "eval" / "test" / "scores.json").read_text())
    assert list(scores["per_item"]["teacher"]) == [row.line() for row in rows[::-1]]
    assert scores["split_file"] == str(split_file) and scores["lpips_note"] == "LPIPS off (--eval.no-lpips)"
    assert load_experiment(run_dir).eval.split_file is None  # the run's own config is unchanged
    assert evaluate([str(run_dir), "--split-file", str(tmp_path / "missing.txt")]) == 1
    write_split(split_file, [replace(rows[1], tgt_rand=999), rows[0]])  # read even with the saved --max-rows 1
    assert evaluate([str(run_dir), "--split-file", str(split_file), "--no-lpips"]) == 1
    out = tmp_path / "frame"
    assert sample([str(run_dir), "--num-samples", "2", "--frames", "4", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.ply")) == ["sample_1.ply", "sample_2.ply", "teacher.ply"]
    assert (out / "sample_1.gif").stat().st_size > 0 and (out / "overview.png").is_file()
    image = tmp_path / "room.png"
    save_image_grid([[torch.rand(3, 40, 60)]], image)
    out = tmp_path / "image"
    command = [str(run_dir), "--image", str(image), "--intrinsics", "0.5", "0.75", "0.5", "0.5"]
    assert sample([*command, "--num-samples", "1", "--frames", "3", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.ply")) == ["sample_1.ply", "teacher.ply"]
    assert sample([str(run_dir), "--row", "99"]) == 1


def test_sample_refuses_an_animation_format_it_cannot_write_before_doing_any_work(
    run, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir, _ = run
    out = tmp_path / "out"
    assert sample([str(run_dir), "--format", "webm", "--out", str(out)]) == 1
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # no video plugin installed
    assert sample([str(run_dir), "--format", "mp4", "--out", str(out)]) == 1
    assert not out.exists()


def test_a_given_teacher_checkpoint_replaces_the_teacher_stage(run, tmp_path: pathlib.Path) -> None:
    run_dir, cache = run
    weights = sorted((run_dir / "checkpoints" / "teacher").glob("step_*.safetensors"))[-1]
    other = tmp_path / "given"
    args = _args(other, cache)
    args[args.index("--bootstrap.loop.max-steps") + 1] = "1"
    assert train([*args, "--teacher-weights", str(weights), "--stage", "bootstrap"]) == 0
    assert {r["stage"] for r in metrics_log(other)} == {"bootstrap"}  # the teacher was not trained
    assert not (other / "checkpoints" / "teacher").exists()
    teacher, _ = load_models(replace(load_experiment(run_dir), run_dir=run_dir))
    given = build_teacher(load_experiment(other))
    for name, value in teacher.state_dict().items():
        torch.testing.assert_close(given.state_dict()[name], value)
    assert train([*args, "--teacher-weights", str(tmp_path / "missing.safetensors")]) == 1


def test_train_runs_unchanged_under_torchrun_on_two_processes(run, tmp_path: pathlib.Path) -> None:
    _, cache = run  # the synthetic scenes are already generated
    args = _args(tmp_path, cache)
    args[args.index("--data.batch-size") + 1] = "1"  # 2 processes x 1 scene: the global batch of 2
    result = torchrun(TRAIN_SCRIPT, args)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for stage, steps in STEPS.items():
        assert [(r["step"], r["world_size"]) for r in metrics_log(tmp_path) if r["stage"] == stage][-1] == (steps, 2)
    assert (tmp_path / "eval" / "test" / "table.md").is_file()
    assert result.stdout.count("table: ") == 1  # rank 0 alone prints (and evaluates)
