"""The SRN experiment: one frozen config (with named presets), and the pieces `train.py`, `eval.py` and `sample.py`
share — datasets, models, the training batches, and loading a run directory's weights."""

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import torch

# isort: off
from data import SRNBatch, SRNDataset, collate
from synthetic import SyntheticOptions, generate_synthetic

# isort: on
from splat_render import Cameras
from splat_teachers import SplatterImage, SplatterImageConfig, UNetConfig, head_preset, unet_preset
from splat_train import (
    BootstrapConfig,
    DiffusionConfig,
    GaussianDenoiser,
    LoopConfig,
    MultistepConfig,
    SeededExamples,
    StudentConfig,
    TeacherStageConfig,
    ViewBatch,
)
from splat_train.app import training_fields
from splat_train.runs import Stage, load_run_config, save_run_config

REPO = Path(__file__).resolve().parents[2]
RENDER_NEAR, RENDER_FAR = 0.2, 100.0  # culling planes for rendering (3DGS culls at z <= 0.2); the head's
# znear/zfar (cars 0.8/1.8) only bound the predicted depths


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
    student_unet: UNetConfig = unet_preset("medium")


@dataclass(frozen=True)
class EvalConfig:
    split: Literal["test", "val"] = "test"
    max_objects: int | None = None  # evaluate only the first N objects (None: all)
    num_samples: int = 4  # student samples per object (sample 0 is "student"; all of them "student mean of N")
    t_start: int = 30  # the teacher's prediction is noised to t_start, then denoised by DDIM
    lpips: bool = True  # LPIPS-VGG (needs the VGG16 weights in the torch hub cache; skipped with a note otherwise)
    grid_objects: int = 4  # comparison grids for the first N objects
    grid_views: int = 4  # target views per grid
    view_chunk: int = 64  # views rendered per call


@dataclass(frozen=True)
class SRNExperiment:
    """Everything an SRN run needs. Start from a preset (`--preset`); every field can be overridden."""

    preset: str = "cpu-demo"
    run_dir: Path = Path("runs/srn-cpu-demo")  # config, checkpoints, metrics.jsonl, eval tables and pictures
    stage: Stage = "all"  # run everything (resuming what is done), or one stage
    device: str = "cpu"  # cpu or cuda
    threads: int | None = None  # torch CPU threads (None: torch's default)
    teacher_checkpoint: Path | None = None  # official Splatter Image model_<cars|chairs>.pth instead of training one
    normalizer_batches: int = 16  # training batches over which the map normalizer's statistics are measured
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    teacher: TeacherStageConfig = TeacherStageConfig()
    bootstrap: BootstrapConfig = BootstrapConfig()
    multistep: MultistepConfig = MultistepConfig()
    eval: EvalConfig = EvalConfig()

    @property
    def diffusion(self) -> DiffusionConfig:
        return self.multistep.diffusion


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
        in_channels=27,
        model_channels=24,
        channel_mult=(1, 2, 2),
        num_blocks=1,
        attn_resolutions=(8,),
        dropout=0.0,
        noise_embedding=True,
    )
    diffusion = DiffusionConfig()
    return SRNExperiment(
        preset="cpu-demo",
        run_dir=Path("runs/srn-cpu-demo"),
        data=DataConfig(
            synthetic=SyntheticOptions(resolution=resolution, train_objects=48, val_objects=4, test_objects=8),
            batch_size=4,
            num_targets=4,
        ),
        model=ModelConfig(head="cars", teacher_unet=teacher_unet, student_unet=student_unet),
        teacher=TeacherStageConfig(
            loop=LoopConfig(max_steps=1500, checkpoint_every=250, ema_decay=0.99, ema_every=1, ema_start=100),
            learning_rate=1e-3,
        ),
        bootstrap=BootstrapConfig(
            loop=LoopConfig(max_steps=500, checkpoint_every=100, ema_decay=0.99, ema_every=1, ema_start=100),
            diffusion=diffusion,
            learning_rate=1e-3,
        ),
        multistep=MultistepConfig(
            loop=LoopConfig(max_steps=200, checkpoint_every=50, ema_decay=0.95, ema_every=1, ema_start=20),
            diffusion=diffusion,
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


def preset(name: str) -> SRNExperiment:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()


# ----------------------------------------------------------------------------------------------------------------------
# Data


def dataset_root(experiment: SRNExperiment, progress=None) -> Path:
    """The SRN category folder to read: the given one, or the built-in synthetic data (generated once, cached)."""
    if experiment.data.root is not None:
        root = Path(experiment.data.root)
        if not root.is_dir():
            raise ValueError(f"--data.root {root}: no such folder (expected an SRN category folder like srn_cars)")
        return root
    return generate_synthetic(experiment.data.synthetic, cache_dir=experiment.data.cache_dir, progress=progress)


def open_split(experiment: SRNExperiment, split: str, root: Path) -> SRNDataset:
    resolution = experiment.data.resolution
    if resolution is None and experiment.data.root is None:
        resolution = experiment.data.synthetic.resolution
    return SRNDataset(root, split, resolution=resolution)


def to_view_batch(batch: SRNBatch, device: torch.device | str) -> ViewBatch:
    """An SRN batch as the stages' `ViewBatch`: float32, rendering planes instead of the head's depth range."""

    def cameras(c: Cameras) -> Cameras:
        return Cameras(c.world_to_cam.float(), c.K.float(), c.width, c.height, RENDER_NEAR, RENDER_FAR)

    return ViewBatch(
        source_images=batch.input_images.float(),
        source_cameras=cameras(batch.input_cameras),
        target_images=batch.target_images.float(),
        target_cameras=cameras(batch.target_cameras),
    ).to(device)


def training_batches(dataset: SRNDataset, experiment: SRNExperiment) -> SeededExamples:
    """The training data of every stage: the loop picks the objects (epochs of shuffled objects, split across the ranks
    under torchrun) and a seed per object; each object's input and target views are drawn from its seed."""
    config = experiment.data
    return SeededExamples(
        num_items=len(dataset),
        batch_size=config.batch_size,
        example=lambda item, generator: dataset.training_example(item, config.num_targets, generator),
        collate=lambda examples: to_view_batch(collate(examples), experiment.device),
    )


# ----------------------------------------------------------------------------------------------------------------------
# Models


def teacher_config(experiment: SRNExperiment, resolution: int) -> SplatterImageConfig:
    head = replace(head_preset(experiment.model.head), resolution=resolution)
    return SplatterImageConfig(unet=replace(experiment.model.teacher_unet, resolution=resolution), head=head)


def build_teacher(experiment: SRNExperiment, resolution: int) -> SplatterImage:
    if experiment.teacher_checkpoint is not None:
        teacher = SplatterImage.from_official_checkpoint(experiment.teacher_checkpoint, head=experiment.model.head)
        if teacher.config.unet.resolution != resolution:
            raise ValueError(
                f"{experiment.teacher_checkpoint}: a {teacher.config.unet.resolution}px model, but the data is "
                f"{resolution}px (set --data.resolution {teacher.config.unet.resolution})"
            )
        return teacher.to(experiment.device)
    return SplatterImage(teacher_config(experiment, resolution)).to(experiment.device)


def build_student(experiment: SRNExperiment, teacher: SplatterImage) -> GaussianDenoiser:
    unet = replace(experiment.model.student_unet, resolution=teacher.config.unet.resolution)
    config = StudentConfig(unet=unet, num_train_steps=experiment.diffusion.num_train_steps)
    return GaussianDenoiser(config, teacher.map_spec).to(experiment.device)


# ----------------------------------------------------------------------------------------------------------------------
# Run directory

TRAINING_FIELDS = training_fields("teacher_checkpoint")  # what a run learns (a run directory refuses other values)


def save_config(experiment: SRNExperiment) -> None:
    save_run_config(experiment.run_dir, experiment, TRAINING_FIELDS)


def load_experiment(run_dir: Path) -> SRNExperiment:
    return load_run_config(run_dir, SRNExperiment)
