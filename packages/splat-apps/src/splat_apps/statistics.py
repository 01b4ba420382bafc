"""Paired comparisons of two methods on the same items: the per-item differences of a metric, their mean and a
percentile bootstrap confidence interval (items resampled with replacement, a fixed seed), so that a table says
whether a student − teacher gap is larger than what the choice of test objects alone would produce."""

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PairedDifference:
    mean: float
    low: float  # the confidence interval's bounds
    high: float
    items: int
    wins: int  # items where the first method is better (larger, or smaller for LPIPS)

    def text(self, digits: int = 2) -> str:
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def paired_difference(
    per_item: dict[str, dict[str, dict[str, dict[str, float]]]],
    first: str,
    second: str,
    slot: str,
    metric: str,
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> PairedDifference | None:
    """`first − second` over the items both scored in `slot` (`per_item[method][item][slot][metric]`, as
    `splat_apps.evaluation` writes it); None when no item has the metric for both."""
    a, b = per_item[first], per_item[second]
    items = [i for i in a if i in b and metric in a[i].get(slot, {}) and metric in b[i].get(slot, {})]
    if not items:
        return None
    differences = torch.tensor([a[i][slot][metric] - b[i][slot][metric] for i in items], dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(items), (resamples, len(items)), generator=generator)
    means = differences[picks].mean(dim=1)
    tail = (1 - confidence) / 2
    low, high = torch.quantile(means, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    better = differences < 0 if metric == "lpips" else differences > 0
    return PairedDifference(float(differences.mean()), low, high, len(items), int(better.sum()))
