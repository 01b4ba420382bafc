"""End to end at 16 px on the built-in synthetic hydrants: train → eval → sample through the generic commands. What
the commands do for every app (resuming, refusing another experiment, older config layouts, torchrun) is tested in
packages/splat-apps and apps/srn."""

import json
from pathlib import Path

import numpy as np
from PIL import Image

from app_co3d import APP
from splat_apps import eval_main, sample_main, train_main
from splat_apps.testing import metrics_log

STEPS = {"teacher": 3, "bootstrap": 3, "multistep": 2}
TINY = {  # 16 px synthetic sequences, 8-channel networks, 3 DDIM steps, a few steps per stage
    "data.synthetic.resolution": 16,
    "data.synthetic.train-sequences": 3,
    "data.synthetic.val-sequences": 1,
    "data.synthetic.test-sequences": 2,
    "data.synthetic.frames-per-sequence": 6,
    "data.synthetic.supersampling": 1,
    "data.batch-size": 2,
    "data.num-targets": 2,
    "model.teacher-unet.model-channels": 8,
    "model.teacher-unet.num-blocks": 1,
    "model.student-unet.model-channels": 8,
    "normalizer-batches": 2,
    **{f"{stage}.loop.max-steps": steps for stage, steps in STEPS.items()},
    "diffusion.ddim-steps": 3,
    "eval.num-samples": 2,
    "eval.grid-sequences": 1,
    "eval.grid-views": 2,
    "threads": 1,
}


def scores(run_dir: Path, split: str = "test") -> dict:
    return json.loads((run_dir / "eval" / split / "scores.json").read_text())


def test_train_eval_and_sample_on_the_synthetic_hydrants(tmp_path: Path) -> None:
    run_dir, out = tmp_path / "run", tmp_path / "samples"
    flags = {"run-dir": run_dir, "data.cache-dir": tmp_path / "cache", **TINY}
    assert (
        train_main(APP, "", [*(x for flag, v in flags.items() for x in (f"--{flag}", str(v))), "--eval.no-lpips"]) == 0
    )
    config = json.loads((run_dir / "config.json").read_text())
    assert config["preset"] == "cpu-demo" and config["background"] == [0.0, 0.0, 0.0]
    assert {record["stage"]: record["step"] for record in metrics_log(run_dir)} == STEPS
    table = (run_dir / "eval" / "test" / "table.md").read_text()
    assert "| A Lesson in Splats (paper) | 22.34 |" in table and "Not comparable" in table and "synthetic" in table
    test = scores(run_dir)
    assert test["split"] == "test" and test["image_size"] == 16 and test["num_samples"] == 2
    assert len(test["per_item"]["student"]) == 2 and set(test["summary"]["teacher"]) == {"input", "novel"}
    assert list((run_dir / "eval" / "test").glob("grid_*.png"))

    assert eval_main(APP, "", [str(run_dir), "--max-sequences", "1", "--num-samples", "1", "--no-lpips"]) == 0
    assert len(scores(run_dir)["per_item"]["teacher"]) == 1 and scores(run_dir)["num_samples"] == 1
    assert eval_main(APP, "", [str(run_dir), "--split", "val", "--no-lpips"]) == 0
    assert scores(run_dir, "val")["summary"]["teacher"]["novel"]["items"] == 1

    assert sample_main(APP, "", [str(run_dir), "--num-samples", "2", "--frames", "4", "--out", str(out / "seq")]) == 0
    assert sorted(p.name for p in (out / "seq").glob("*.ply")) == ["sample_1.ply", "sample_2.ply", "teacher.ply"]
    assert (out / "seq" / "sample_1.gif").stat().st_size > 0 and (out / "seq" / "overview.png").is_file()
    rgba = np.zeros((24, 24, 4), dtype=np.uint8)
    rgba[6:18, 8:16] = (200, 40, 30, 255)
    Image.fromarray(rgba).save(tmp_path / "hydrant.png")
    image = ["--image", str(tmp_path / "hydrant.png"), "--focal", "2.5", "--origin-distance", "2.0"]
    assert sample_main(APP, "", [str(run_dir), *image, "--num-samples", "1", "--frames", "3", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.ply")) == ["sample_1.ply", "teacher.ply"]
