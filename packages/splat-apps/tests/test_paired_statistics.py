"""Paired student − teacher differences: the mean of per-item differences, an interval that covers it and shrinks
with more items, and the count of items where the student is better (smaller is better for LPIPS)."""

import pytest

from splat_apps.statistics import paired_difference


def _scores(values: dict[str, list[float]], metric: str = "psnr") -> dict:
    return {
        method: {f"item {i}": {"novel": {metric: v}} for i, v in enumerate(items)} for method, items in values.items()
    }


def test_the_mean_is_the_mean_of_per_item_differences_and_the_interval_covers_it() -> None:
    scores = _scores({"student": [10.0, 12.0, 11.0, 15.0], "teacher": [9.0, 12.5, 10.0, 13.0]})
    paired = paired_difference(scores, "student", "teacher", "novel", "psnr")
    assert paired.mean == pytest.approx((1.0 - 0.5 + 1.0 + 2.0) / 4)
    assert paired.low <= paired.mean <= paired.high and paired.items == 4 and paired.wins == 3
    assert paired.text(2).startswith("+0.88 [")


def test_a_constant_gap_has_a_zero_width_interval_and_more_items_narrow_a_noisy_one() -> None:
    constant = paired_difference(
        _scores({"student": [3.0] * 5, "teacher": [2.0] * 5}), "student", "teacher", "novel", "psnr"
    )
    assert constant.low == constant.high == constant.mean == 1.0
    few = _scores({"student": [1.0, -1.0] * 4, "teacher": [0.0] * 8})
    many = _scores({"student": [1.0, -1.0] * 64, "teacher": [0.0] * 128})
    width = lambda s: (lambda p: p.high - p.low)(paired_difference(s, "student", "teacher", "novel", "psnr"))
    assert width(many) < 0.5 * width(few)


def test_lpips_counts_smaller_as_better_and_missing_metrics_give_none() -> None:
    scores = _scores({"student": [0.1, 0.3], "teacher": [0.2, 0.2]}, metric="lpips")
    assert paired_difference(scores, "student", "teacher", "novel", "lpips").wins == 1
    assert paired_difference(scores, "student", "teacher", "novel", "psnr") is None
