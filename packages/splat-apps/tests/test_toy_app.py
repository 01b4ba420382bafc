"""The toolkit is reusable: a fourth, toy app of under 100 lines (its own scene content, preset and protocol,
`toy_app.py`) trains, evaluates and samples through the generic commands in seconds."""

import json
from pathlib import Path

import numpy as np
import toy_app

from splat_apps import App, eval_main, sample_main, train_main


def test_a_toy_app_written_against_the_contract_trains_evaluates_and_samples(tmp_path: Path) -> None:
    assert isinstance(toy_app.APP, App)
    assert len(Path(toy_app.__file__).read_text().splitlines()) < 100
    run_dir = tmp_path / "run"
    assert train_main(toy_app.APP, "toy", ["--run-dir", str(run_dir), "--threads", "1"]) == 0
    scores = json.loads((run_dir / "eval" / "test" / "scores.json").read_text())
    assert set(scores["summary"]) == {"teacher", "student", "student_mean"}
    assert scores["summary"]["student"]["novel"]["items"] == 3 and "psnr" in scores["summary"]["teacher"]["novel"]
    assert "| student − teacher |" in (run_dir / "eval" / "test" / "table.md").read_text()
    assert len(list((run_dir / "eval" / "test").glob("grid_*.png"))) == 3
    assert eval_main(toy_app.APP, "toy", [str(run_dir), "--num-samples", "1"]) == 0
    assert json.loads((run_dir / "eval" / "test" / "scores.json").read_text())["num_samples"] == 1
    out = tmp_path / "samples"
    assert sample_main(toy_app.APP, "toy", [str(run_dir), "--index", "1", "--num-samples", "2", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.ply")) == ["sample_1.ply", "sample_2.ply", "teacher.ply"]


def test_a_trained_run_can_be_watched_in_tensorboard_with_the_logged_values_and_the_grids(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    assert train_main(toy_app.APP, "toy", ["--run-dir", str(run_dir), "--threads", "1"]) == 0
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0}).Reload()
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for stage in ("teacher", "bootstrap", "multistep"):
        records = [r for r in logged if r.get("stage") == stage]
        scalars = events.Scalars(f"{stage}/loss")
        assert [s.step for s in scalars] == [r["step"] for r in records]  # every logged step, as in metrics.jsonl
        assert [s.value for s in scalars] == [np.float32(r["loss"]) for r in records]
        assert f"{stage}/steps_per_s" in events.Tags()["scalars"] and f"{stage}/lr" in events.Tags()["scalars"]
    scores = json.loads((run_dir / "eval" / "test" / "scores.json").read_text())["summary"]
    (psnr,) = events.Scalars("eval/test/student/novel/psnr")
    assert psnr.value == np.float32(scores["student"]["novel"]["psnr"])
    assert len([tag for tag in events.Tags()["images"] if tag.startswith("eval/test/grid_")]) == 3
