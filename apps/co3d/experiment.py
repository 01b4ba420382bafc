"""The Co3D experiment: one frozen config (with named presets), and the pieces `train.py`, `eval.py` and `sample.py`
share — datasets, models, the training batches (cameras relative to the input view, origin distances as teacher
inputs), and the run directory's config.

Everything is rendered on black (Co3D frames are foreground on black): the three stages' `background` and the
evaluation's renders.
"""

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import torch

# isort: off
from data import Co3DBatch, Co3DDataset, collate
from synthetic import SyntheticCo3DOptions, generate

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

BLACK = (0.0, 0.0, 0.0)
HEAD = "hydrants"  # Splatter Image's Co3D head: per-image focal lengths, depth = origin distance + [-2, 2], black


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
    student_unet: UNetConfig = unet_preset("medium")


@dataclass(frozen=True)
class EvalConfig:
    split: Literal["test", "val"] = "test"
    max_sequences: int | None = None  # evaluate only the first N sequences (None: all)
    num_samples: int = 4  # student samples per sequence (sample 0 is "student"; all of them "student mean of N")
    t_start: int = 30  # the teacher's prediction is noised to t_start, then denoised by DDIM
    lpips: bool = True  # LPIPS-VGG (needs the VGG16 weights in the torch hub cache; skipped with a note otherwise)
    grid_sequences: int = 4  # comparison grids for the first N sequences
    grid_views: int = 4  # novel views per grid
    view_chunk: int = 32  # views rendered and scored per call


@dataclass(frozen=True)
class Co3DExperiment:
    """Everything a Co3D run needs. Start from a preset (`--preset`); every field can be overridden."""

    preset: str = "cpu-demo"
    run_dir: Path = Path("runs/co3d-cpu-demo")  # config, checkpoints, metrics.jsonl, eval tables and pictures
    stage: Stage = "all"  # run everything (resuming what is done), or one stage
    device: str = "cpu"  # cpu or cuda
    threads: int | None = None  # torch CPU threads (None: torch's default, one per core)
    teacher_checkpoint: Path | None = None  # official Splatter Image model_hydrants.pth instead of training one
    normalizer_batches: int = 16  # training batches over which the map normalizer's statistics are measured
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    teacher: TeacherStageConfig = TeacherStageConfig(background=BLACK)
    bootstrap: BootstrapConfig = BootstrapConfig(background=BLACK)
    multistep: MultistepConfig = MultistepConfig(background=BLACK)
    eval: EvalConfig = EvalConfig()

    @property
    def diffusion(self) -> DiffusionConfig:
        return self.multistep.diffusion


def _cpu_demo() -> Co3DExperiment:
    """~15 minutes on 2 CPU cores: 32 px synthetic hydrant-like sequences, small networks, short stages."""
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
    return Co3DExperiment(
        preset="cpu-demo",
        run_dir=Path("runs/co3d-cpu-demo"),
        threads=1,  # at 32 px a second thread gains little; on a busy 2-core machine it made steps 10-40x slower
        data=DataConfig(
            synthetic=SyntheticCo3DOptions(
                resolution=resolution, train_sequences=48, val_sequences=4, test_sequences=8, frames_per_sequence=24
            ),
            batch_size=4,
            num_targets=4,
        ),
        model=ModelConfig(teacher_unet=teacher_unet, student_unet=student_unet),
        teacher=TeacherStageConfig(
            loop=LoopConfig(max_steps=1500, checkpoint_every=250, ema_decay=0.99, ema_every=1, ema_start=100),
            learning_rate=1e-3,
            background=BLACK,
        ),
        # stage 1 / 2 lengths and rates: those of the SRN cpu-demo (same networks; chosen there on the val split)
        bootstrap=BootstrapConfig(
            loop=LoopConfig(max_steps=500, checkpoint_every=100, ema_decay=0.99, ema_every=1, ema_start=100),
            diffusion=diffusion,
            learning_rate=1e-3,
            background=BLACK,
        ),
        multistep=MultistepConfig(
            loop=LoopConfig(max_steps=200, checkpoint_every=50, ema_decay=0.95, ema_every=1, ema_start=20),
            diffusion=diffusion,
            learning_rate=1e-3,
            checkpoint_steps=False,  # no activation checkpointing: same gradients, ~25% faster on CPU (measured)
            background=BLACK,
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
        data=DataConfig(batch_size=8, num_targets=4),
        model=ModelConfig(),
        teacher=TeacherStageConfig(
            loop=LoopConfig(max_steps=900_000, checkpoint_every=5000),
            lpips_start_step=800_000,
            background=BLACK,
        ),
        bootstrap=BootstrapConfig(loop=LoopConfig(max_steps=100_000, checkpoint_every=2000), background=BLACK),
        multistep=MultistepConfig(loop=LoopConfig(max_steps=20_000, checkpoint_every=1000), background=BLACK),
        eval=EvalConfig(num_samples=4),
    )


PRESETS = {"cpu-demo": _cpu_demo, "hydrant": _hydrant}


def preset(name: str) -> Co3DExperiment:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()


# ----------------------------------------------------------------------------------------------------------------------
# Data


def dataset_root(experiment: Co3DExperiment) -> Path:
    """The co3d_<category>_for_gs folder to read: the given one, or the built-in synthetic data (generated once)."""
    if experiment.data.root is not None:
        root = Path(experiment.data.root)
        if not root.is_dir():
            raise ValueError(f"--data.root {root}: no such folder (expected a preprocessed co3d_hydrant_for_gs folder)")
        return root
    if experiment.data.cache_dir is None:
        return generate(experiment.data.synthetic)
    return generate(experiment.data.synthetic, experiment.data.cache_dir)


def open_split(experiment: Co3DExperiment, split: str, root: Path) -> Co3DDataset:
    return Co3DDataset(root, split, resolution=experiment.data.resolution)


def image_size(dataset: Co3DDataset) -> int:
    """Side of the (square) images the dataset returns."""
    if not len(dataset):
        raise ValueError(f"{dataset!r} has no sequences")
    return dataset.load(0, [0]).images.shape[-1]


def to_view_batch(batch: Co3DBatch, device: torch.device | str) -> ViewBatch:
    """A Co3D batch as the stages' `ViewBatch` (float32); the origin distance of the source view and of every target
    view become the teacher's `origin_distance` input (`teacher_inputs`, `target_teacher_inputs`)."""

    def cameras(c: Cameras) -> Cameras:
        return Cameras(c.world_to_cam.float(), c.K.float(), c.width, c.height, c.near, c.far)

    return ViewBatch(
        source_images=batch.input_images.float(),
        source_cameras=cameras(batch.input_cameras),
        target_images=batch.target_images.float(),
        target_cameras=cameras(batch.target_cameras),
        teacher_inputs={"origin_distance": batch.input_origin_distances.float()},
        target_teacher_inputs={"origin_distance": batch.target_origin_distances.float()},
    ).to(device)


def training_batches(dataset: Co3DDataset, experiment: Co3DExperiment) -> SeededExamples:
    """The training data of every stage: the loop picks the sequences (epochs of shuffled sequences, split across the
    ranks under torchrun) and a seed per sequence; each sequence's input and target views are drawn from its seed."""
    config = experiment.data
    return SeededExamples(
        num_items=len(dataset),
        batch_size=config.batch_size,
        example=lambda item, generator: dataset.training_example(item, config.num_targets, generator),
        collate=lambda examples: to_view_batch(collate(examples), experiment.device),
    )


# ----------------------------------------------------------------------------------------------------------------------
# Models


def teacher_config(experiment: Co3DExperiment, resolution: int) -> SplatterImageConfig:
    head = replace(head_preset(HEAD), resolution=resolution)
    return SplatterImageConfig(unet=replace(experiment.model.teacher_unet, resolution=resolution), head=head)


def build_teacher(experiment: Co3DExperiment, resolution: int) -> SplatterImage:
    if experiment.teacher_checkpoint is not None:
        teacher = SplatterImage.from_official_checkpoint(experiment.teacher_checkpoint, head=HEAD)
        if teacher.config.unet.resolution != resolution:
            raise ValueError(
                f"{experiment.teacher_checkpoint}: a {teacher.config.unet.resolution}px model, but the data is "
                f"{resolution}px (set --data.resolution {teacher.config.unet.resolution})"
            )
        return teacher.to(experiment.device)
    return SplatterImage(teacher_config(experiment, resolution)).to(experiment.device)


def build_student(experiment: Co3DExperiment, teacher: SplatterImage) -> GaussianDenoiser:
    unet = replace(experiment.model.student_unet, resolution=teacher.config.unet.resolution)
    config = StudentConfig(unet=unet, num_train_steps=experiment.diffusion.num_train_steps)
    return GaussianDenoiser(config, teacher.map_spec).to(experiment.device)


# ----------------------------------------------------------------------------------------------------------------------
# Run directory

TRAINING_FIELDS = training_fields("teacher_checkpoint")  # what a run learns (a run directory refuses other values)


def save_config(experiment: Co3DExperiment) -> None:
    save_run_config(experiment.run_dir, experiment, TRAINING_FIELDS)


def load_experiment(run_dir: Path) -> Co3DExperiment:
    return load_run_config(run_dir, Co3DExperiment)
