"""SSIM exactly as 3DGS / Splatter Image compute it (`utils/loss_utils.py::ssim`): a separable 11x11 Gaussian window
(sigma 1.5) applied per channel with zero padding of 5, C1 = 0.01^2, C2 = 0.03^2, the SSIM map averaged over
channels and pixels (Wang et al. 2004, eq. 13)."""

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
C1 = 0.01**2
C2 = 0.03**2


def gaussian_window(
    size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA, *, dtype=torch.float32, device=None
) -> Tensor:
    """Normalized 1D Gaussian weights g_i ∝ exp(-(i - size//2)^2 / (2 sigma^2))."""
    offsets = torch.arange(size, dtype=torch.float64) - size // 2
    weights = torch.exp(-(offsets**2) / (2 * sigma**2))
    return (weights / weights.sum()).to(dtype=dtype, device=device)


def _filter(images: Float[Tensor, "batch channels height width"], window: Tensor) -> Tensor:
    channels = images.shape[1]
    size = window.numel()
    kernel = (window[:, None] * window[None, :]).expand(channels, 1, size, size)
    return F.conv2d(images, kernel, padding=size // 2, groups=channels)


def ssim_map(
    prediction: Float[Tensor, "*batch channels height width"], target: Float[Tensor, "*batch channels height width"]
) -> Float[Tensor, "*batch channels height width"]:
    """Per-pixel SSIM (zero-padded borders, as in 3DGS)."""
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {list(prediction.shape)} and target {list(target.shape)} must have equal shapes")
    leading = prediction.shape[:-3]
    x = prediction.reshape(-1, *prediction.shape[-3:])
    y = target.reshape(-1, *target.shape[-3:])
    window = gaussian_window(dtype=x.dtype, device=x.device)
    mu_x, mu_y = _filter(x, window), _filter(y, window)
    var_x = _filter(x * x, window) - mu_x * mu_x
    var_y = _filter(y * y, window) - mu_y * mu_y
    cov = _filter(x * y, window) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + C1) * (2 * cov + C2)
    denominator = (mu_x * mu_x + mu_y * mu_y + C1) * (var_x + var_y + C2)
    return (numerator / denominator).reshape(*leading, *prediction.shape[-3:])


def ssim(
    prediction: Float[Tensor, "*batch channels height width"], target: Float[Tensor, "*batch channels height width"]
) -> Float[Tensor, "*batch"]:
    """Mean SSIM per image (1 for identical images)."""
    return ssim_map(prediction, target).mean(dim=(-3, -2, -1))


__all__ = ["C1", "C2", "WINDOW_SIGMA", "WINDOW_SIZE", "gaussian_window", "ssim", "ssim_map"]
