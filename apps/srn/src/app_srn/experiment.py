"""The SRN experiment: one frozen config with named presets (`cpu-demo`, `cars`, `chairs`)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from splat_apps import EvalOptions, Experiment
from splat_apps.experiment import demo_loop
from splat_teachers import UNetConfig, unet_preset
from splat_train import BootstrapConfig, DiffusionConfig, LoopConfig, MultistepConfig, TeacherStageConfig

from .synthetic import SyntheticOptions


@dataclass(frozen=True)
class DataConfig:
    root: Path | None = None  # SRN category folder (…/srn_cars or …/srn_chairs); None: the built-in synthetic data
    resolution: int | None = None  # resize images to this square size (None: as stored; SRN is 128)
    synthetic: SyntheticOptions = SyntheticOptions(resolution=32)  # the built-in data (used when root is None)
    cache_dir: Path | None = None  # where the synthetic data is generated (None: <repo>/data/synthetic)
    batch_size: int = 4  # objects per training step and process (torchrun: global batch = batch_size × processes)
    num_targets: int = 4  # rendered views per object; the input view is one of them (Splatter Image's sampling)


@dataclass(frozen=True)
class ModelConfig:
    head: str = "cars"  # Gaussian-head preset: cars, chairs (depth range, field of view, output init)
    teacher_unet: UNetConfig = unet_preset("splatter-image")
    student_unet: UNetConfig = unet_preset("medium")  # size and in/out channels are taken from the teacher's map


@dataclass(frozen=True)
class EvalConfig(EvalOptions):
    split: Literal["test", "val"] = "test"
    max_objects: int | None = None  # evaluate only the first N objects (None: all)
    grid_objects: int = 4  # comparison grids for the first N objects


@dataclass(frozen=True)
class SRNExperiment(Experiment):
    """Everything an SRN run needs. Start from a preset (`--preset`); every field can be overridden."""

    run_dir: Path = Path("runs/srn-cpu-demo")  # config, checkpoints, metrics.jsonl, eval tables and pictures
    teacher_checkpoint: Path | None = None  # official Splatter Image model_<cars|chairs>.pth instead of training one
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    eval: EvalConfig = EvalConfig()

    @property
    def given_teacher(self) -> Path | None:
        return self.teacher_checkpoint


def _cpu_demo() -> SRNExperiment:
    """~15 minutes on 2 CPU cores: 32 px synthetic objects, small networks, short stages."""
    resolution = 32
    teacher_unet = UNetConfig(
        resolution=resolution,
        model_channels=32,
        channel_mult=(1, 2, 2),
        num_blocks=2,
        attn_resolutions=(8,),
        dropout=0.0,
    )
    student_unet = UNetConfig(
        resolution=resolution,
        model_channels=24,
        channel_mult=(1, 2, 2),
        num_blocks=1,
        attn_resolutions=(8,),
        dropout=0.0,
        noise_embedding=True,
    )
    return SRNExperiment(
        preset="cpu-demo",
        run_dir=Path("runs/srn-cpu-demo"),
        diffusion=DiffusionConfig(),
        data=DataConfig(
            synthetic=SyntheticOptions(resolution=resolution, train_objects=48, val_objects=4, test_objects=8),
            batch_size=4,
            num_targets=4,
        ),
        model=ModelConfig(head="cars", teacher_unet=teacher_unet, student_unet=student_unet),
        teacher=TeacherStageConfig(
            loop=demo_loop(1500, 250, 0.99, 100),
            learning_rate=1e-3,
        ),
        bootstrap=BootstrapConfig(
            loop=demo_loop(500, 100, 0.99, 100),
            learning_rate=1e-3,
        ),
        multistep=MultistepConfig(
            loop=demo_loop(200, 50, 0.95, 20),
            learning_rate=1e-3,
        ),
        eval=EvalConfig(num_samples=4, grid_objects=4),
    )


def _paper(category: Literal["cars", "chairs"]) -> SRNExperiment:
    """The paper's 128x128 SRN setting on GPUs: Splatter Image teacher (or its official checkpoint), Medium student."""
    lpips_steps = 100_000 if category == "cars" else 200_000  # Splatter Image's LPIPS fine-tuning run
    return SRNExperiment(
        preset=category,
        run_dir=Path(f"runs/srn-{category}"),
        device="cuda",
        data=DataConfig(batch_size=8, num_targets=4),
        model=ModelConfig(head=category),
        teacher=TeacherStageConfig(
            loop=LoopConfig(max_steps=800_000 + lpips_steps, checkpoint_every=5000, bf16=False),
            lpips_start_step=800_000,
        ),
        bootstrap=BootstrapConfig(loop=LoopConfig(max_steps=100_000, checkpoint_every=2000)),
        multistep=MultistepConfig(loop=LoopConfig(max_steps=20_000, checkpoint_every=1000)),
        eval=EvalConfig(num_samples=4),
    )


PRESETS = {"cpu-demo": _cpu_demo, "cars": lambda: _paper("cars"), "chairs": lambda: _paper("chairs")}
