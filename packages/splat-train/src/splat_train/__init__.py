"""splat-train: the method of "A Lesson in Splats" — losses, metrics, cycle consistency, the diffusion student and
the stage runners (teacher, stage 1 bootstrap, stage 2 multi-step fine-tuning)."""

from . import distributed
from .batch import BatchSource, SeededExamples, ViewBatch
from .cycle import cycle_consistency_loss
from .loop import LoopConfig, LoopProgress, LoopResult, LossOutput, NonFiniteLossError, TrainingStopped, run_loop
from .losses import gaussian_map_loss, l1, l2, lpips_loss, ssim_loss
from .metrics import ScoreAccumulator, image_metrics, psnr
from .perceptual import LPIPSWeightsMissing, load_lpips
from .runs import StageConfigs, run_stages, stage_weights
from .ssim import ssim
from .stages import (
    Background,
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
    "Background",
    "BatchSource",
    "BootstrapConfig",
    "DiffusionConfig",
    "GaussianDenoiser",
    "LPIPSWeightsMissing",
    "LoopConfig",
    "LoopProgress",
    "LoopResult",
    "LossOutput",
    "MapNormalizer",
    "MultistepConfig",
    "NonFiniteLossError",
    "ScoreAccumulator",
    "SeededExamples",
    "StageConfigs",
    "StudentConfig",
    "TeacherStageConfig",
    "TrainingStopped",
    "ViewBatch",
    "bootstrap",
    "cycle_consistency_loss",
    "distributed",
    "gaussian_map_loss",
    "image_metrics",
    "l1",
    "l2",
    "load_lpips",
    "lpips_loss",
    "map_statistics",
    "multistep",
    "psnr",
    "run_loop",
    "run_stages",
    "sample",
    "ssim",
    "ssim_loss",
    "stage_weights",
    "train_teacher",
]
