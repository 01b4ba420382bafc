"""LPIPS-VGG (Zhang et al. 2018, v0.1) from the `lpips` package, offline-first.

`lpips.LPIPS(net="vgg")` would download torchvision's ImageNet VGG16 weights on first use. We never download:
the trunk weights are read from the standard torch hub cache (`<torch.hub.get_dir()>/checkpoints/vgg16-397923af.pth`,
where torchvision itself puts them) or from an explicit path; if they are absent, loading fails with one line saying
where to place the file. The calibrated linear layers ship inside the `lpips` package. There is never a silently
random backbone.
"""

import os
import warnings
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor, nn

VGG16_FILE = "vgg16-397923af.pth"
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
# torchvision vgg16 `features` index ranges of the five LPIPS slices (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3)
_SLICES = [range(0, 4), range(4, 9), range(9, 16), range(16, 23), range(23, 30)]


class LPIPSWeightsMissing(FileNotFoundError):
    """The ImageNet VGG16 weights LPIPS needs are not on this machine."""


def default_vgg16_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE


def load_lpips_vgg(vgg16_path: str | os.PathLike | None = None) -> nn.Module:
    """An eval-mode, frozen `lpips.LPIPS(net="vgg")` whose inputs are images in [-1, 1], `[batch 3 H W]`."""
    path = Path(vgg16_path) if vgg16_path is not None else default_vgg16_path()
    if not path.is_file():
        raise LPIPSWeightsMissing(
            f"LPIPS needs the ImageNet VGG16 weights at {path} (download {VGG16_URL} there on a machine with "
            f"network access, or pass its path); run with LPIPS off otherwise"
        )
    try:
        import lpips
    except ImportError:
        raise LPIPSWeightsMissing("LPIPS needs the lpips package: install splat-train[lpips]") from None

    with warnings.catch_warnings():
        # lpips passes torchvision's deprecated `pretrained=` argument and prints nothing with verbose=False.
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    trunk = {}
    for slice_index, indices in enumerate(_SLICES, start=1):
        for index in indices:
            for kind in ("weight", "bias"):
                key = f"features.{index}.{kind}"
                if key in state:
                    trunk[f"slice{slice_index}.{index}.{kind}"] = state[key]
    try:
        model.net.load_state_dict(trunk, strict=True)
    except RuntimeError as error:
        raise ValueError(f"{path} is not a torchvision VGG16 checkpoint: {error}") from None
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
