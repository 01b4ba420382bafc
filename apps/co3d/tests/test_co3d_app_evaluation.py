"""eval.py follows the data layer's Co3D protocol (input = frame 0, all-black targets skipped, input view scored
separately, per-sequence then overall means), labels the paper's numbers, and sample.py's turntable circles the
object's centre."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from co3d_fixtures import random_sequence_arrays, write_sequence

# isort: off
import eval as eval_app
import sample as sample_app
from data import Co3DDataset, Co3DExample, collate, evaluate as protocol_evaluate
from experiment import EvalConfig, ModelConfig, build_student, build_teacher, preset, to_view_batch

# isort: on
from splat_train import MetricAccumulator
from splat_train.evaluation import render_views

SIDE = 16
BLACK_VIEWS = {"900_1_1": (2,), "901_1_1": ()}


@pytest.fixture
def hydrant_test_root(tmp_path: Path) -> Path:
    """co3d_hydrant_for_gs/test with two 6-view sequences at 16 px, one with an all-black frame."""
    root = tmp_path / "co3d_hydrant_for_gs"
    for index, (name, black) in enumerate(BLACK_VIEWS.items()):
        images, focal, R, T = random_sequence_arrays(6, side=SIDE, seed=10 + index, black=black)
        write_sequence(root / "test", name, images, focal, R, T)
    return root


def experiment_for(root: Path, **eval_options):
    base = preset("cpu-demo")
    model = ModelConfig(
        teacher_unet=replace(base.model.teacher_unet, model_channels=8, num_blocks=1),
        student_unet=replace(base.model.student_unet, model_channels=8, num_blocks=1),
    )
    evaluation = EvalConfig(lpips=False, grid_sequences=1, grid_views=2, **eval_options)
    multistep = replace(base.multistep, diffusion=replace(base.multistep.diffusion, ddim_steps=3))
    return replace(base, model=model, data=replace(base.data, root=root), eval=evaluation, multistep=multistep)


def models(experiment):
    teacher = build_teacher(experiment, SIDE).eval()
    student = build_student(experiment, teacher).eval()
    return teacher, student


def test_teacher_scores_match_the_data_layers_protocol(hydrant_test_root: Path, tmp_path: Path) -> None:
    experiment = experiment_for(hydrant_test_root, num_samples=1, view_chunk=2)  # chunks split the views
    dataset = Co3DDataset(hydrant_test_root, "test")
    teacher, student = models(experiment)
    result = eval_app.evaluate(experiment, teacher, student, dataset, tmp_path / "eval")

    background = torch.zeros(3)

    def render_teacher(example: Co3DExample) -> torch.Tensor:
        batch = to_view_batch(collate([example]), "cpu")
        with torch.no_grad():
            gaussians = teacher(batch.source_images, batch.source_cameras, **batch.teacher_inputs).gaussians
        return render_views(gaussians, batch.target_cameras, background)

    reference = protocol_evaluate(dataset, render_teacher)
    expected = reference.summary()
    assert set(expected) == {"psnr", "ssim", "psnr_input", "ssim_input", "objects"}
    for name, value in expected.items():
        assert result.summary["teacher"][name] == pytest.approx(value, rel=1e-5)
    for sequence, scores in reference.per_object().items():
        for name, value in scores.items():
            assert result.per_sequence["teacher"][sequence][name] == pytest.approx(value, rel=1e-5)
    assert (tmp_path / "eval" / "scores.json").is_file() and list((tmp_path / "eval").glob("grid_000_*.png"))


def test_black_ground_truth_frames_are_not_scored(hydrant_test_root: Path) -> None:
    """Renders that are all black would score 100 dB on a black frame; skipped, every novel-view mean is that of the
    non-black frames other than frame 0, and frame 0 is scored on its own (oracle: PSNR of black vs each frame)."""
    dataset = Co3DDataset(hydrant_test_root, "test")
    accumulators = {m: MetricAccumulator() for m in eval_app.METHODS}
    for index in range(len(dataset)):
        example = dataset.evaluation_example(index)
        renders = torch.zeros_like(example.target_images)
        eval_app.score_views(accumulators, example, renders, [renders, renders], None, chunk=4)
    for seed, (name, black) in enumerate(BLACK_VIEWS.items()):
        images = torch.from_numpy(random_sequence_arrays(6, side=SIDE, seed=10 + seed, black=black)[0])
        scores = -10 * torch.log10(images.square().mean(dim=(1, 2, 3)))
        novel = [v for v in range(1, 6) if v not in black]
        for method in eval_app.METHODS:
            per_sequence = accumulators[method].per_object()[name]
            assert per_sequence["psnr"] == pytest.approx(float(scores[novel].mean()), rel=1e-5)
            assert per_sequence["psnr_input"] == pytest.approx(float(scores[0]), rel=1e-5)


def test_one_sample_mean_is_the_sample(hydrant_test_root: Path, tmp_path: Path) -> None:
    experiment = experiment_for(hydrant_test_root, num_samples=1)
    teacher, student = models(experiment)
    result = eval_app.evaluate(experiment, teacher, student, Co3DDataset(hydrant_test_root, "test"), tmp_path)
    assert result.summary["student"] == pytest.approx(result.summary["student_mean"])


def test_the_table_labels_the_papers_numbers_and_says_when_they_are_not_comparable(
    hydrant_test_root: Path, tmp_path: Path
) -> None:
    summary = {m: {"psnr": 20.0, "ssim": 0.5, "psnr_input": 25.0, "objects": 2.0} for m in eval_app.METHODS}
    dataset = Co3DDataset(hydrant_test_root, "test")
    real = eval_app.table_text(experiment_for(hydrant_test_root), summary, None, dataset)
    assert "| A Lesson in Splats (paper) | 22.34 | — | 0.149 |" in real
    assert "| Splatter Image (paper) | 21.77 | — | 0.154 |" in real
    assert "| ViewSet Diffusion (paper) | 21.24 | — | 0.201 |" in real
    assert "copied from the paper, not produced by this run" in real and "Not comparable" not in real
    synthetic = eval_app.table_text(experiment_for(None), summary, "LPIPS off", dataset)
    assert "Not comparable: this run is on synthetic" in synthetic and "LPIPS off" in synthetic


def test_the_turntable_circles_the_world_origin_about_the_world_up(hydrant_test_root: Path) -> None:
    dataset = Co3DDataset(hydrant_test_root, "test")
    command = sample_app.SampleCommand(run_dir=Path("unused"))
    item = sample_app.sequence_input(command, dataset, "cpu")
    example = dataset.evaluation_example(0)
    # the origin's depth along the optical axis is, by definition, the origin distance
    assert float(item.center[2]) == pytest.approx(float(example.input_origin_distance), rel=1e-5)
    assert float(item.up.norm()) == pytest.approx(1.0, rel=1e-5)
    assert float(item.up[1]) < -0.8  # fixture cameras look at the origin with y up: image up is -y
