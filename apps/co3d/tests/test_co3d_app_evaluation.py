"""The app's evaluation on real (tiny) models: the teacher's scores are those of an independent oracle of the Co3D
protocol (cameras relative to frame 0, origin distance of frame 0, black frames skipped, input view scored on its
own); the table labels the paper's numbers and says when they are not comparable; and sample.py's turntable circles
the object's centre about the world's up axis."""

from pathlib import Path

import pytest
import torch
from co3d_fixtures import random_sequence_arrays, tiny_experiment, tiny_models, write_sequence
from rich.console import Console

from app_co3d import APP
from app_co3d.app import SampleOptions, world_origin_and_up
from app_co3d.data import Co3DDataset, is_black
from app_co3d.protocol import protocol
from splat_apps.commands import run_evaluation
from splat_apps.evaluation import METHODS, table_markdown
from splat_render import Cameras, render, rigid_inverse
from splat_train import image_metrics

SIDE = 16
BLACK_VIEWS = {"900_1_1": (2,), "901_1_1": ()}


@pytest.fixture
def hydrant_root(tmp_path: Path) -> Path:
    """co3d_hydrant_for_gs/{test,val} with two 6-view sequences at 16 px, one with an all-black frame."""
    root = tmp_path / "co3d_hydrant_for_gs"
    for index, (name, black) in enumerate(BLACK_VIEWS.items()):
        images, focal, R, T = random_sequence_arrays(6, side=SIDE, seed=10 + index, black=black)
        write_sequence(root / "test", name, images, focal, R, T)
        write_sequence(root / "val", name, images, focal, R, T)
    return root


def oracle_teacher_scores(teacher, dataset: Co3DDataset) -> dict[str, dict[str, float]]:
    """slot -> PSNR / SSIM means of the teacher, computed from the stored frames alone: input frame 0 with its origin
    distance, cameras w2c_j c2w_0, every non-black frame scored, frame 0 in its own slot."""
    means: dict[str, dict[str, list[float]]] = {"novel": {}, "input": {}}
    for index in range(len(dataset)):
        sequence = dataset.load(index)
        w2c = sequence.world_to_cam.double()
        c2w_input = rigid_inverse(w2c[0])
        views = [0, *(v for v in range(1, sequence.num_views) if not is_black(sequence.images[v]))]
        input_camera = Cameras(torch.eye(4)[None, None], sequence.K[None, :1], SIDE, SIDE, 0.2, 1000.0)
        targets = Cameras((w2c[views] @ c2w_input).float()[None], sequence.K[None, views], SIDE, SIDE, 0.2, 1000.0)
        with torch.no_grad():
            distance = sequence.origin_distances[:1]
            gaussians = teacher(sequence.images[None, 0], input_camera, origin_distance=distance).gaussians
            renders = render(gaussians, targets, background=torch.zeros(3)).rgb[0]
        scores = image_metrics(renders, sequence.images[views])
        for slot, part in (("input", slice(0, 1)), ("novel", slice(1, None))):
            for metric, values in scores.items():
                means[slot].setdefault(metric, []).append(float(values[part].mean()))
    return {slot: {m: sum(v) / len(v) for m, v in metrics.items()} for slot, metrics in means.items()}


def test_teacher_scores_match_an_oracle_of_the_protocol(hydrant_root: Path, tmp_path: Path) -> None:
    experiment = tiny_experiment(hydrant_root, tmp_path / "run", num_samples=1, view_chunk=2)  # chunks split views
    teacher, student = tiny_models(experiment, SIDE)
    result, out_dir = run_evaluation(APP, experiment, hydrant_root, teacher, student, Console(quiet=True))
    expected = oracle_teacher_scores(teacher, Co3DDataset(hydrant_root, "test"))
    for slot, metrics in expected.items():
        assert result.summary["teacher"][slot]["items"] == 2
        for metric, value in metrics.items():
            assert result.summary["teacher"][slot][metric] == pytest.approx(value, rel=1e-5, abs=1e-6)
    assert out_dir == tmp_path / "run" / "eval" / "test"
    assert (out_dir / "scores.json").is_file() and list(out_dir.glob("grid_000_900_1_1.png"))


def test_one_sample_mean_is_the_sample(hydrant_root: Path, tmp_path: Path) -> None:
    experiment = tiny_experiment(hydrant_root, tmp_path / "run", num_samples=1, split="val")
    teacher, student = tiny_models(experiment, SIDE)
    result, out_dir = run_evaluation(APP, experiment, hydrant_root, teacher, student, Console(quiet=True))
    assert out_dir.name == "val"
    for slot in ("novel", "input"):
        assert result.summary["student"][slot] == pytest.approx(result.summary["student_mean"][slot])


def test_the_table_labels_the_papers_numbers_and_says_when_they_are_not_comparable(hydrant_root: Path) -> None:
    summary = {m: {"novel": {"psnr": 20.0, "ssim": 0.5, "items": 2.0}, "input": {"psnr": 25.0}} for m in METHODS}

    def table(root: Path | None, split: str = "test", lpips_note: str | None = None) -> str:
        spec = protocol(tiny_experiment(root), Co3DDataset(hydrant_root, split)).table
        return table_markdown(spec, summary, 4, lpips_note)

    real = table(hydrant_root)
    assert real.startswith("### Co3D hydrant (test split, 2 sequences, 16px, preset cpu-demo)")
    assert "| teacher | 20.00 | 0.500 | n/a | 25.00 |" in real
    assert "| A Lesson in Splats (paper) | 22.34 | — | 0.149 | — |" in real
    assert "| Splatter Image (paper) | 21.77 | — | 0.154 | — |" in real
    assert "| ViewSet Diffusion (paper) | 21.24 | — | 0.201 | — |" in real
    assert "copied from the paper, not produced by this run" in real and "Not comparable" not in real
    synthetic = table(None, lpips_note="LPIPS off")
    assert synthetic.startswith("### synthetic hydrant-like sequences")
    assert "Not comparable: this run is on synthetic" in synthetic and "LPIPS off" in synthetic
    assert "Not comparable: this run is Co3D hydrant, val split, 16px" in table(hydrant_root, "val")


def test_the_turntable_circles_the_world_origin_about_the_world_up(hydrant_root: Path) -> None:
    experiment = tiny_experiment(hydrant_root)
    teacher, _ = tiny_models(experiment, SIDE)
    item = APP.sample_input(SampleOptions(), experiment, hydrant_root, teacher)
    example = Co3DDataset(hydrant_root, "test").evaluation_example(0)
    assert item.name == "900_1_1" and torch.equal(item.batch.source_images[0], example.input_image)
    center, up = world_origin_and_up(example.input_cam_to_world)
    # the origin's depth along the optical axis is, by definition, the origin distance
    assert float(center[2]) == pytest.approx(float(example.teacher_inputs["origin_distance"]), rel=1e-5)
    assert float(up.norm()) == pytest.approx(1.0, rel=1e-5)
    assert float(up[1]) < -0.8  # fixture cameras look at the origin with y up: image up is -y
    cam_to_world = item.path(None, 8).cam_to_world[0].double()
    offsets = cam_to_world[:, :3, 3] - center.double()
    torch.testing.assert_close(offsets.norm(dim=-1), center.double().norm().expand(8), rtol=1e-5, atol=1e-5)
    heights = offsets @ up.double()
    torch.testing.assert_close(heights, heights[:1].expand(8), rtol=0, atol=1e-5)  # one circle about `up`
    aim = -offsets / offsets.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(cam_to_world[:, :3, 2], aim, rtol=0, atol=1e-5)  # every frame looks at the centre


def test_sample_options_name_the_flags_they_conflict_with(hydrant_root: Path) -> None:
    experiment = tiny_experiment(hydrant_root)
    teacher, _ = tiny_models(experiment, SIDE)
    with pytest.raises(ValueError, match="--focal and --origin-distance describe an --image"):
        APP.sample_input(SampleOptions(focal=2.0), experiment, hydrant_root, teacher)
    with pytest.raises(ValueError, match="--sequence-index 2: the test split has 2 sequences"):
        APP.sample_input(SampleOptions(sequence_index=2), experiment, hydrant_root, teacher)
