"""Evaluation metrics as Splatter Image / pixelNeRF / Flash3D report them.

* PSNR = −10 log10(MSE) per image over C, H, W, on the *unclamped* prediction. Convention for identical images:
  the MSE is floored at 1e-10, so PSNR is at most 100 dB and means stay finite (no inf / NaN).
* SSIM: 3DGS SSIM (see `splat_train.ssim`).
* LPIPS-VGG on inputs mapped to [−1, 1] (see `splat_train.perceptual`).
* Aggregation (`ScoreAccumulator`): per item (object) and slot (novel views, the input view, ...), the mean over its
  views; then, per slot, the mean over items.
"""

import math

import torch
from jaxtyping import Float
from torch import Tensor, nn

from .perceptual import lpips_distance
from .ssim import ssim

MSE_FLOOR = 1e-10
METRICS = ("psnr", "ssim", "lpips")


def psnr(
    prediction: Float[Tensor, "*batch channels height width"], target: Float[Tensor, "*batch channels height width"]
) -> Float[Tensor, "*batch"]:
    """Peak signal-to-noise ratio in dB for images in [0, 1] (MSE floored at 1e-10, i.e. at most 100 dB)."""
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {list(prediction.shape)} and target {list(target.shape)} must have equal shapes")
    mse = (prediction - target).square().mean(dim=(-3, -2, -1))
    return -10 * torch.log10(mse.clamp_min(MSE_FLOOR))


def image_metrics(
    prediction: Float[Tensor, "*batch 3 height width"],
    target: Float[Tensor, "*batch 3 height width"],
    lpips_model: nn.Module | None = None,
) -> dict[str, Float[Tensor, "*batch"]]:
    """PSNR, SSIM and (when a model is given) LPIPS of every image."""
    scores = {"psnr": psnr(prediction, target), "ssim": ssim(prediction, target)}
    if lpips_model is not None:
        scores["lpips"] = lpips_distance(lpips_model, prediction, target)
    return scores


class ScoreAccumulator:
    """Per-view scores grouped by item (an object, a sequence, a split row) and slot (which kind of view: `novel`,
    `input`, `tgt5`, ...). `summary()` gives, per slot, the mean over items of each item's mean over its views of that
    slot — pixelNeRF / Splatter Image's per-object means, and Flash3D's per-slot means when an item has one view per
    slot."""

    def __init__(self) -> None:
        self._scores: dict[str, dict[str, dict[str, list[float]]]] = {}  # item -> slot -> metric -> values

    def add(self, item: str, slot: str, scores: dict[str, Tensor]) -> None:
        """Record the scores of one or more views (`scores[name]` of shape [views] or scalar) of `item` in `slot`."""
        table = self._scores.setdefault(item, {}).setdefault(slot, {})
        for name, values in scores.items():
            table.setdefault(name, []).extend(float(v) for v in torch.as_tensor(values).flatten())

    def per_item(self) -> dict[str, dict[str, dict[str, float]]]:
        """item -> slot -> metric -> the mean over the item's views in that slot."""
        return {
            item: {
                slot: {name: sum(values) / len(values) for name, values in metrics.items() if values}
                for slot, metrics in slots.items()
            }
            for item, slots in self._scores.items()
        }

    def summary(self) -> dict[str, dict[str, float]]:
        """slot -> metric -> the mean over items of the per-item means, and `items`: how many items have the slot."""
        means = self.per_item()
        slots = list(dict.fromkeys(slot for item in means.values() for slot in item))
        result: dict[str, dict[str, float]] = {}
        for slot in slots:
            items = [item[slot] for item in means.values() if slot in item]
            names = list(dict.fromkeys(name for scores in items for name in scores))
            result[slot] = {
                name: sum(values) / len(values) if (values := [s[name] for s in items if name in s]) else math.nan
                for name in names
            }
            result[slot]["items"] = float(len(items))
        return result
