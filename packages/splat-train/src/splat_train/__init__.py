"""splat-train: the method of "A Lesson in Splats" — losses, metrics, cycle consistency, the diffusion student and
the stage runners (teacher, stage 1 bootstrap, stage 2 multi-step fine-tuning)."""

from . import distributed
from .batch import BatchSampler, BatchSource, SeededExamples, ViewBatch
from .cycle import cycle_consistency_loss
from .loop import LoopConfig, LoopResult, LossOutput, NonFiniteLossError, run_loop
from .losses import gaussian_map_loss, l1, l2, lpips_loss, ssim_loss
from .metrics import MetricAccumulator, image_metrics, psnr
from .perceptual import LPIPSWeightsMissing, load_lpips_vgg
from .ssim import ssim
from .stages import (
    BootstrapConfig,
    DiffusionConfig,
    MultistepConfig,
    TeacherStageConfig,
    bootstrap,
    multistep,
    train_teacher,
)
from .student import GaussianDenoiser, MapNormalizer, StudentConfig, map_statistics, sample

__all__ = [
    "BatchSampler",
    "BatchSource",
    "BootstrapConfig",
    "DiffusionConfig",
    "GaussianDenoiser",
    "LPIPSWeightsMissing",
    "LoopConfig",
    "LoopResult",
    "LossOutput",
    "MapNormalizer",
    "MetricAccumulator",
    "MultistepConfig",
    "NonFiniteLossError",
    "SeededExamples",
    "StudentConfig",
    "TeacherStageConfig",
    "ViewBatch",
    "bootstrap",
    "cycle_consistency_loss",
    "distributed",
    "gaussian_map_loss",
    "image_metrics",
    "l1",
    "l2",
    "load_lpips_vgg",
    "lpips_loss",
    "map_statistics",
    "multistep",
    "psnr",
    "run_loop",
    "sample",
    "ssim",
    "ssim_loss",
    "train_teacher",
]
