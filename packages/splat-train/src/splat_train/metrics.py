"""Evaluation metrics as Splatter Image / pixelNeRF / Flash3D report them.

* PSNR = −10 log10(MSE) per image over C, H, W, on the *unclamped* prediction. Convention for identical images:
  the MSE is floored at 1e-10, so PSNR is at most 100 dB and means stay finite (no inf / NaN).
* SSIM: 3DGS SSIM (see `splat_train.ssim`).
* LPIPS-VGG on inputs mapped to [−1, 1] (see `splat_train.perceptual`).
* Aggregation (`MetricAccumulator`): per object, the mean over its novel views; then the mean over objects. The
  input (conditioning) view is averaged separately and reported as `*_input`.
"""

import math
from collections import defaultdict
from dataclasses import dataclass, field

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


@dataclass
class MetricAccumulator:
    """Collects per-view scores per object; `summary()` gives per-object means and the protocol's overall means."""

    _novel: dict[str, dict[str, list[float]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    _input: dict[str, dict[str, list[float]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))

    def add(self, object_id: str, scores: dict[str, Tensor], *, is_input: bool = False) -> None:
        """Record the scores of one or more views (`scores[name]` of shape [views] or scalar) of `object_id`."""
        target = self._input if is_input else self._novel
        for name, values in scores.items():
            target[object_id][name].extend(float(v) for v in torch.as_tensor(values).flatten())

    @staticmethod
    def _means(table: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
        return {obj: {name: sum(v) / len(v) for name, v in scores.items() if v} for obj, scores in table.items()}

    def per_object(self) -> dict[str, dict[str, float]]:
        novel = self._means(self._novel)
        for obj, scores in self._means(self._input).items():
            novel.setdefault(obj, {}).update({f"{name}_input": value for name, value in scores.items()})
        return novel

    def summary(self) -> dict[str, float]:
        """Mean over objects of each object's mean over novel views (and `*_input` for the input views)."""
        result: dict[str, float] = {}
        for suffix, table in (("", self._novel), ("_input", self._input)):
            means = self._means(table)
            for name in sorted({n for scores in means.values() for n in scores}):
                values = [scores[name] for scores in means.values() if name in scores]
                result[f"{name}{suffix}"] = sum(values) / len(values) if values else math.nan
        result["objects"] = float(len(self._novel))
        return result
