"""End to end at 32×64 with Flash3D's 32 px padding (a 96×128 map), through the shared commands: train.py writes the
+5 / +10 / ±30 table and scores that are the protocol's (border crop, grey background, slot order); eval.py takes
this app's flags; sample.py works from a split row and from an image file; a given teacher checkpoint replaces the
teacher stage. Resuming, refusing another experiment and torchrun are the toolkit's (apps/srn/tests)."""

import json
import pathlib
from dataclasses import replace

import pytest
import torch

from app_re10k import APP
from app_re10k.app import build_teacher, data_source, open_split
from app_re10k.experiment import RE10KExperiment
from app_re10k.protocol import VIEW_SLOTS, crop_border, load_split_example, read_split, write_split
from splat_apps import collate, eval_main, load_trained_models, sample_main, train_main
from splat_apps.run_dir import load_run_config
from splat_apps.testing import metrics_log
from splat_apps.visualize import save_image_grid
from splat_render import render
from splat_train import image_metrics

FLAGS = (
    "--data.synthetic.height 32 --data.synthetic.width 64 --data.synthetic.train-scenes 2 "
    "--data.synthetic.test-scenes 1 --data.synthetic.frames 24 --data.synthetic.supersample 1 "
    "--model.teacher.height 32 --model.teacher.width 64 --model.teacher.padding 32 "
    "--model.student-unet.model-channels 8 --model.student-unet.attn-resolutions 12 "
    "--data.batch-size 2 --data.multistep-batch-size 1 --data.num-targets 2 --normalizer-batches 2 "
    "--teacher.loop.max-steps 3 --bootstrap.loop.max-steps 3 --multistep.loop.max-steps 2 --diffusion.ddim-steps 3 "
    "--teacher.loop.log-every 1 --bootstrap.loop.log-every 1 --multistep.loop.log-every 1 "
    "--eval.num-samples 2 --eval.grid-rows 1 --eval.batch-size 2 --eval.no-lpips --threads 1"
).split()


def train(run_dir: pathlib.Path, cache: pathlib.Path, *flags: str) -> int:
    return train_main(APP, "", ["--run-dir", str(run_dir), "--data.cache-dir", str(cache), *FLAGS, *flags])


def scores(run_dir: pathlib.Path) -> dict:
    return json.loads((run_dir / "eval" / "test" / "scores.json").read_text())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path, RE10KExperiment]:
    """A trained run directory, the synthetic-data cache it was generated in, and its experiment."""
    root = tmp_path_factory.mktemp("re10k")
    assert train(root / "run", root / "cache") == 0
    return root / "run", root / "cache", load_run_config(root / "run", RE10KExperiment)


def test_a_run_writes_the_slot_table_and_scores_of_the_protocol(run) -> None:
    run_dir, _, experiment = run
    table = (run_dir / "eval" / "test" / "table.md").read_text()
    for text in ("PSNR ↑ +5", "PSNR ↑ +10", "PSNR ↑ ±30", "| student (1 sample) |", "not comparable"):
        assert text in table
    assert "| A Lesson in Splats, paper | 29.12 | 26.54 | 25.40 | 0.932 | — | — | 0.087 | — | — | — |" in table
    assert "| Flash3D, paper | 28.46 | 25.94 | 24.93 | 0.899 | — | — | 0.100 | — | — | — |" in table
    source = data_source(experiment)
    rows = read_split(source.split_file)
    written = scores(run_dir)
    assert (
        written["synthetic"] and written["image_size"] == [32, 64] and written["split_file"] == str(source.split_file)
    )
    for method in ("teacher", "student", "student_mean"):
        assert list(written["per_item"][method]) == [row.line() for row in rows]  # a row is an item
        assert list(written["summary"][method]) == list(VIEW_SLOTS)
    (grid,) = (run_dir / "eval" / "test").glob("grid_*.png")
    assert grid.name == f"grid_000_{rows[0].key[:16]}_{rows[0].src}.png"
    # the teacher's row-0 scores: renders of (src, +5, +10, ±30) on grey, 5%-border-cropped, against the row's frames
    batch = collate([load_split_example(open_split(experiment, source, "test")[rows[0].key], rows[0], (32, 64))])
    teacher, _ = load_trained_models(experiment, build_teacher(experiment))
    with torch.no_grad():
        gaussians = teacher(batch.source_images, batch.source_cameras).gaussians
        renders = render(gaussians, batch.target_cameras, background=torch.full((3,), 0.5)).rgb[0]
    expected = image_metrics(crop_border(renders), crop_border(batch.target_images[0]))
    stored = written["per_item"]["teacher"][rows[0].line()]
    for view, slot in enumerate(VIEW_SLOTS):
        for metric in ("psnr", "ssim"):
            assert stored[slot][metric] == pytest.approx(float(expected[metric][view]), abs=1e-4)


def test_eval_takes_a_split_file_and_sample_a_row_or_an_image(run, tmp_path: pathlib.Path) -> None:
    run_dir, _, experiment = run
    rows = read_split(data_source(experiment).split_file)
    split_file = tmp_path / "rows.txt"
    write_split(split_file, rows[::-1])
    flags = ["--split-file", str(split_file), "--max-rows", "5", "--batch-size", "1", "--num-samples", "1"]
    assert eval_main(APP, "", [str(run_dir), *flags, "--threads", "1"]) == 0
    assert list(scores(run_dir)["per_item"]["teacher"]) == [row.line() for row in rows[::-1]]
    assert scores(run_dir)["split_file"] == str(split_file) and scores(run_dir)["num_samples"] == 1
    write_split(split_file, [replace(rows[1], tgt_rand=999)])
    assert eval_main(APP, "", [str(run_dir), "--split-file", str(split_file)]) == 1  # a bad row, in one line
    assert sample_main(APP, "", [str(run_dir), "--num-samples", "2", "--frames", "4", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.ply")) == ["sample_1.ply", "sample_2.ply", "teacher.ply"]
    assert (tmp_path / "sample_1.gif").stat().st_size > 0 and (tmp_path / "overview.png").is_file()
    save_image_grid([[torch.rand(3, 40, 60)]], tmp_path / "room.png")
    out = tmp_path / "image"
    image = ["--image", str(tmp_path / "room.png"), "--intrinsics", "0.5", "0.75", "0.5", "0.5", "--out", str(out)]
    assert sample_main(APP, "", [str(run_dir), *image, "--num-samples", "1", "--frames", "3"]) == 0
    assert sorted(p.name for p in out.glob("*.ply")) == ["sample_1.ply", "teacher.ply"]
    assert sample_main(APP, "", [str(run_dir), "--row", "99"]) == 1


def test_a_given_teacher_checkpoint_replaces_the_teacher_stage(run, tmp_path: pathlib.Path) -> None:
    run_dir, cache, experiment = run
    weights = run_dir / "checkpoints" / "teacher" / "step_00000003.safetensors"
    assert train(tmp_path, cache, "--teacher-weights", str(weights), "--stage", "bootstrap") == 0
    assert {r["stage"] for r in metrics_log(tmp_path)} == {"bootstrap"}  # the teacher was not trained
    trained, _ = load_trained_models(experiment, build_teacher(experiment))
    given = build_teacher(replace(experiment, teacher_weights=weights))
    for name, value in trained.state_dict().items():
        torch.testing.assert_close(given.state_dict()[name], value)
    with pytest.raises(ValueError, match="--teacher-weights .*missing.safetensors: no such file"):
        build_teacher(replace(experiment, teacher_weights=tmp_path / "missing.safetensors"))
