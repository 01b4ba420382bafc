"""splat-train: the method of "A Lesson in Splats" — losses, metrics, cycle consistency, the diffusion student and
the stage runners."""

from .losses import gaussian_map_loss, l1, l2, lpips_loss, ssim_loss
from .metrics import MetricAccumulator, image_metrics, psnr
from .perceptual import LPIPSWeightsMissing, load_lpips_vgg
from .ssim import ssim

__all__ = [
    "LPIPSWeightsMissing",
    "MetricAccumulator",
    "gaussian_map_loss",
    "image_metrics",
    "l1",
    "l2",
    "load_lpips_vgg",
    "lpips_loss",
    "psnr",
    "ssim",
    "ssim_loss",
]
