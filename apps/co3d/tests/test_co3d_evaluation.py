"""The Splatter Image Co3D protocol: one seeded batch per sequence, input = view 0 (also the first target, slot
`input`), targets = every other view whose ground truth is not all black (slot `novel`); through the evaluator
(`splat_apps.evaluation.evaluate`, here with controlled renders) the scores are per-sequence means over views, then
the mean over sequences, and an all-black ground-truth frame is never scored."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from co3d_fixtures import random_sequence_arrays, tiny_experiment, tiny_models, write_sequence

from app_co3d.data import EVAL_INPUT_VIEW, Co3DDataset, is_black
from app_co3d.protocol import protocol
from splat_apps import StaticProtocol, evaluation, evaluation_view_indices
from splat_apps.contract import EvalBatch
from splat_train import ScoreAccumulator

SIDE = 16
ARRAYS = {"800_1_1": {"count": 6, "black": (2, 5), "seed": 1}, "800_2_2": {"count": 4, "black": (), "seed": 2}}
ERRORS = {"800_1_1": 0.1, "800_2_2": 0.02}  # render error of the novel views of each sequence
INPUT_ERROR = 0.05


def arrays(name: str) -> tuple[np.ndarray, ...]:
    spec = ARRAYS[name]
    return random_sequence_arrays(spec["count"], side=SIDE, seed=spec["seed"], black=spec["black"])


@pytest.fixture
def dataset(tmp_path: Path) -> Co3DDataset:
    split = tmp_path / "co3d_hydrant_for_gs" / "test"
    for name in ARRAYS:
        write_sequence(split, name, *arrays(name))
    return Co3DDataset(split.parent, "test")


def evaluate_with_renders(dataset: Co3DDataset, render, monkeypatch: pytest.MonkeyPatch, out_dir: Path, **options):
    """The protocol through `evaluate` with tiny models, every method's renders replaced by `render(part)`."""
    experiment = tiny_experiment(dataset.root, num_samples=2, grid_sequences=0, **options)
    original = protocol(experiment, dataset)
    current: dict[str, EvalBatch] = {}

    def batches():
        for part in original.batches():
            current["part"] = part
            yield part

    monkeypatch.setattr(evaluation, "render_views", lambda gaussians, cameras, *args: render(current["part"]))
    teacher, student = tiny_models(experiment, SIDE)
    return evaluation.evaluate(
        replace(original, make_batches=batches),
        teacher,
        student,
        experiment.diffusion.make_schedule(),
        experiment.eval,
        ddim_steps=experiment.diffusion.ddim_steps,
        background=experiment.background,
        device="cpu",
        out_dir=out_dir,
    )


def test_evaluation_views_are_the_first_frame_and_every_other_one():
    assert evaluation_view_indices(5, EVAL_INPUT_VIEW) == (0, [1, 2, 3, 4])
    assert evaluation_view_indices(5, 3) == (3, [0, 1, 2, 4])
    with pytest.raises(ValueError, match="input_view"):
        evaluation_view_indices(3, 3)


def test_evaluation_example_skips_all_black_ground_truth(dataset: Co3DDataset):
    example = dataset.evaluation_example(0)
    assert example.input_view == 0
    assert example.target_views.tolist() == [0, 1, 3, 4]  # input first (its own slot), views 2 and 5 are black
    assert not is_black(example.target_images).any()
    novel_only = dataset.evaluation_example(0, include_input_in_targets=False)
    assert novel_only.target_views.tolist() == [1, 3, 4]
    everything = dataset.evaluation_example(0, skip_black_targets=False, include_input_in_targets=False)
    assert everything.target_views.tolist() == [1, 2, 3, 4, 5]
    assert is_black(everything.target_images).tolist() == [False, True, False, False, True]


def test_is_black_needs_every_pixel_zero():
    images = torch.zeros(3, 3, 4, 4)
    images[1, 2, 3, 3] = 1e-6
    assert is_black(images).tolist() == [True, False, True]


def test_one_seeded_batch_per_sequence_with_the_input_first_then_the_non_black_views(dataset: Co3DDataset):
    co3d = protocol(tiny_experiment(dataset.root), dataset)
    assert isinstance(co3d, StaticProtocol) and co3d.count == 2 and co3d.input_slot == "input"
    parts = list(co3d.batches())
    assert [(p.items, p.slots, p.seed, p.grid_names) for p in parts] == [
        (("800_1_1",), ("input", "novel", "novel", "novel"), 0, ("800_1_1",)),
        (("800_2_2",), ("input", "novel", "novel", "novel"), 1, ("800_2_2",)),
    ]
    for part, views in zip(parts, ([0, 1, 3, 4], [0, 1, 2, 3]), strict=True):
        sequence = dataset.load(dataset.sequence_names.index(part.items[0]))
        assert torch.equal(part.batch.source_images[0], sequence.images[0])
        assert torch.equal(part.batch.target_images[0], sequence.images[views])
        assert torch.equal(part.batch.teacher_inputs["origin_distance"], sequence.origin_distances[:1])
        assert torch.equal(part.batch.target_teacher_inputs["origin_distance"][0], sequence.origin_distances[views])
    subset = protocol(tiny_experiment(dataset.root, max_sequences=1), dataset)
    assert subset.count == 1 and [p.items for p in subset.batches()] == [("800_1_1",)]
    with pytest.raises(ValueError, match="--max-sequences 0"):
        protocol(tiny_experiment(dataset.root, max_sequences=0), dataset)


def test_scores_are_averaged_per_sequence_then_over_sequences(
    dataset: Co3DDataset, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    def offset_renders(part: EvalBatch) -> torch.Tensor:
        offset = torch.full_like(part.batch.target_images, ERRORS[part.items[0]])
        offset[:, torch.tensor([slot == "input" for slot in part.slots])] = INPUT_ERROR
        return part.batch.target_images + offset  # unclamped, as the protocol scores renders

    result = evaluate_with_renders(dataset, offset_renders, monkeypatch, tmp_path, view_chunk=3)  # chunks split views
    expected = {name: -10 * np.log10(error**2) for name, error in ERRORS.items()}
    for method in evaluation.METHODS:
        summary = result.summary[method]
        assert summary["novel"]["items"] == 2 and summary["input"]["items"] == 2
        assert summary["novel"]["psnr"] == pytest.approx(sum(expected.values()) / 2, rel=1e-5)
        assert summary["input"]["psnr"] == pytest.approx(-10 * np.log10(INPUT_ERROR**2), rel=1e-5)
        assert result.per_item[method]["800_1_1"]["novel"]["psnr"] == pytest.approx(expected["800_1_1"], rel=1e-5)
    # both sequences have 3 novel views here, so pooling would weight them equally too: check unequal counts directly
    pooled = ScoreAccumulator()
    pooled.add("a", "novel", {"psnr": torch.tensor([10.0, 10.0, 10.0])})
    pooled.add("b", "novel", {"psnr": torch.tensor([40.0])})
    assert pooled.summary()["novel"]["psnr"] == 25.0


def test_black_ground_truth_frames_are_never_scored(
    dataset: Co3DDataset, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """All-black renders would score 100 dB on a black frame; every novel-view mean is that of the non-black frames
    other than frame 0, and frame 0 is scored on its own (oracle: PSNR of black against each frame)."""
    result = evaluate_with_renders(
        dataset, lambda part: torch.zeros_like(part.batch.target_images), monkeypatch, tmp_path
    )
    for name, spec in ARRAYS.items():
        images = torch.from_numpy(arrays(name)[0])
        scores = -10 * torch.log10(images.square().mean(dim=(1, 2, 3)))
        novel = [v for v in range(1, spec["count"]) if v not in spec["black"]]
        for method in evaluation.METHODS:
            per_sequence = result.per_item[method][name]
            assert per_sequence["novel"]["psnr"] == pytest.approx(float(scores[novel].mean()), rel=1e-5)
            assert per_sequence["input"]["psnr"] == pytest.approx(float(scores[0]), rel=1e-5)
    assert max(s["novel"]["psnr"] for s in result.per_item["teacher"].values()) < 50  # no 100 dB black frame
