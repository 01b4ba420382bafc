"""The Co3D experiment: one frozen config with named presets (`cpu-demo`, `hydrant`), everything rendered on black
(Co3D frames are foreground on black): the three stages and the evaluation."""

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from splat_apps import EvalOptions, Experiment
from splat_apps.experiment import demo_loop
from splat_teachers import UNetConfig, unet_preset
from splat_train import Background, BootstrapConfig, LoopConfig, MultistepConfig, TeacherStageConfig

from .synthetic import SyntheticCo3DOptions

BLACK: Background = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class DataConfig:
    root: Path | None = None  # the co3d_<category>_for_gs folder (e.g. …/co3d_hydrant_for_gs); None: built-in data
    resolution: int | None = None  # resize images to this square size (None: as stored; preprocessed Co3D is 128)
    synthetic: SyntheticCo3DOptions = SyntheticCo3DOptions(resolution=32)  # the built-in data (when root is None)
    cache_dir: Path | None = None  # where the synthetic data is generated (None: <repo>/data/synthetic)
    batch_size: int = 4  # sequences per training step and process (torchrun: global batch = batch_size × processes)
    num_targets: int = 4  # rendered views per sequence; the input view is one of them (Splatter Image's sampling)


@dataclass(frozen=True)
class ModelConfig:
    teacher_unet: UNetConfig = unet_preset("splatter-image")
    student_unet: UNetConfig = unet_preset("medium")  # size and in/out channels are taken from the teacher's map


@dataclass(frozen=True)
class EvalConfig(EvalOptions):
    split: Literal["test", "val"] = "test"  # the split evaluated (tables and pictures go to eval/<split>/)
    max_sequences: int | None = None  # evaluate only the first N sequences (None: all)
    grid_sequences: int = 4  # comparison grids for the first N sequences
    view_chunk: int = 32  # views rendered and scored per call


@dataclass(frozen=True)
class Co3DExperiment(Experiment):
    """Everything a Co3D run needs. Start from a preset (`--preset`); every field can be overridden."""

    run_dir: Path = Path("runs/co3d-cpu-demo")  # config, checkpoints, metrics.jsonl, eval tables and pictures
    teacher_checkpoint: Path | None = None  # official Splatter Image model_hydrants.pth instead of training one
    data: DataConfig = DataConfig()
    background: Background = BLACK  # RGB behind every render: training stages and evaluation
    model: ModelConfig = ModelConfig()
    eval: EvalConfig = EvalConfig()

    @property
    def given_teacher(self) -> Path | None:
        """The official checkpoint (`--teacher-checkpoint`) the run uses as its teacher; None: it trains one."""
        return self.teacher_checkpoint


def _cpu_demo() -> Co3DExperiment:
    """~15 minutes on 2 CPU cores: 32 px synthetic hydrant-like sequences, small networks, short stages."""
    resolution = 32
    levels = {"channel_mult": (1, 2, 2), "attn_resolutions": (8,), "dropout": 0.0}  # 32, 16, 8 px; attention at 8
    teacher_unet = UNetConfig(resolution=resolution, model_channels=32, num_blocks=2, **levels)
    return Co3DExperiment(
        threads=1,  # at 32 px a second thread gains little; on a busy 2-core machine it made steps 10-40x slower
        data=DataConfig(
            synthetic=SyntheticCo3DOptions(
                resolution=resolution, train_sequences=48, val_sequences=4, test_sequences=8, frames_per_sequence=24
            ),
        ),
        model=ModelConfig(
            teacher_unet=teacher_unet,
            student_unet=replace(teacher_unet, model_channels=24, num_blocks=1, noise_embedding=True),
        ),
        teacher=TeacherStageConfig(loop=demo_loop(1500, 250, ema_decay=0.99, ema_start=100), learning_rate=1e-3),
        # stage 1 / 2 lengths and rates: those of the SRN cpu-demo (same networks; chosen there on the val split)
        bootstrap=BootstrapConfig(loop=demo_loop(500, 100, ema_decay=0.99, ema_start=100), learning_rate=1e-3),
        multistep=MultistepConfig(
            loop=demo_loop(200, 50, ema_decay=0.95, ema_start=20),
            learning_rate=1e-3,
            checkpoint_steps=False,  # no activation checkpointing: same gradients, ~25% faster on CPU (measured)
        ),
        eval=EvalConfig(num_samples=4, grid_sequences=4),
    )


def _hydrant() -> Co3DExperiment:
    """The paper's Co3D hydrant setting (128 px) on a GPU: Splatter Image teacher with the hydrants head (or the
    official `model_hydrants.pth`), Medium student, black background. Teacher schedule: Splatter Image's (800k steps
    L2, then 100k with LPIPS 0.01); stage 1 / 2 lengths are our choice (the paper does not publish them)."""
    return Co3DExperiment(
        preset="hydrant",
        run_dir=Path("runs/co3d-hydrant"),
        device="cuda",
        data=DataConfig(batch_size=8),
        teacher=TeacherStageConfig(loop=LoopConfig(max_steps=900_000, checkpoint_every=5000), lpips_start_step=800_000),
        bootstrap=BootstrapConfig(loop=LoopConfig(max_steps=100_000, checkpoint_every=2000)),
        multistep=MultistepConfig(loop=LoopConfig(max_steps=20_000, checkpoint_every=1000)),
        eval=EvalConfig(num_samples=4),
    )


PRESETS = {"cpu-demo": _cpu_demo, "hydrant": _hydrant}
