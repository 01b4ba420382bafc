"""The evaluation protocol: input = view 0, targets = every other non-black view, per-sequence then overall means."""

from pathlib import Path

import numpy as np
import pytest
import torch
from co3d_fixtures import random_sequence_arrays, write_sequence

from data import Co3DDataset, Co3DExample, evaluate, evaluation_view_indices, is_black, score_example
from splat_train.metrics import MetricAccumulator, psnr


@pytest.fixture
def dataset(tmp_path: Path) -> Co3DDataset:
    split = tmp_path / "co3d_hydrant_for_gs" / "test"
    write_sequence(split, "800_1_1", *random_sequence_arrays(6, black=(2, 5), seed=1))
    write_sequence(split, "800_2_2", *random_sequence_arrays(4, seed=2))
    return Co3DDataset(split.parent, "test")


def test_evaluation_views_are_the_first_frame_and_every_other_one():
    assert evaluation_view_indices(5) == (0, [1, 2, 3, 4])
    assert evaluation_view_indices(5, 3) == (3, [0, 1, 2, 4])
    with pytest.raises(ValueError, match="input_view"):
        evaluation_view_indices(3, 3)


def test_evaluation_example_skips_all_black_ground_truth(dataset: Co3DDataset):
    example = dataset.evaluation_example(0)
    assert example.input_view == 0
    assert example.target_views.tolist() == [0, 1, 3, 4]  # input first (scored as *_input), views 2 and 5 are black
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


def test_scores_are_averaged_per_sequence_then_over_sequences(dataset: Co3DDataset):
    errors = {"800_1_1": 0.1, "800_2_2": 0.02}

    def render_views(example: Co3DExample) -> torch.Tensor:
        offset = torch.full_like(example.target_images, errors[example.sequence])
        offset[example.target_views == example.input_view] = 0.05
        return example.target_images + offset  # unclamped, as the protocol scores renders

    accumulator = evaluate(dataset, render_views)
    summary = accumulator.summary()
    expected = {name: -10 * np.log10(error**2) for name, error in errors.items()}
    assert summary["objects"] == 2
    assert summary["psnr"] == pytest.approx((expected["800_1_1"] + expected["800_2_2"]) / 2, rel=1e-5)
    assert summary["psnr_input"] == pytest.approx(-10 * np.log10(0.05**2), rel=1e-5)
    per_sequence = accumulator.per_object()
    assert per_sequence["800_1_1"]["psnr"] == pytest.approx(expected["800_1_1"], rel=1e-5)
    # 3 novel views in the first sequence and 3 in the second: pooling would weight them equally here too, so
    # check the weighting with unequal counts directly.
    pooled = MetricAccumulator()
    pooled.add("a", {"psnr": torch.tensor([10.0, 10.0, 10.0])})
    pooled.add("b", {"psnr": torch.tensor([40.0])})
    assert pooled.summary()["psnr"] == 25.0


def test_black_targets_never_reach_the_metrics(dataset: Co3DDataset):
    example = dataset.evaluation_example(0, skip_black_targets=False, include_input_in_targets=False)
    predictions = example.target_images.clone()
    predictions[is_black(example.target_images)] = 1.0  # garbage where the ground truth is empty
    accumulator = MetricAccumulator()
    assert score_example(accumulator, example, predictions) == 3
    assert accumulator.summary()["psnr"] == pytest.approx(float(psnr(predictions[:1], predictions[:1])[0]))
    with pytest.raises(ValueError, match="predictions must match"):
        score_example(accumulator, example, predictions[:2])


def test_every_view_is_scored_once(dataset: Co3DDataset):
    seen = []
    evaluate(dataset, lambda e: seen.append((e.sequence, e.target_views.tolist())) or e.target_images.clone())
    assert seen == [("800_1_1", [0, 1, 3, 4]), ("800_2_2", [0, 1, 2, 3])]
    assert evaluate(dataset, lambda e: e.target_images.clone(), max_sequences=1).summary()["objects"] == 1
