"""The RealEstate10K experiment: one frozen config (with named presets), and the pieces `train.py`, `eval.py` and
`sample.py` share — the data source, the Flash3D-style teacher, the student configured from the teacher's Gaussian
map, the batch samplers, and loading a run directory.

The image size of a run is the teacher's (`--model.teacher.height/width`; Flash3D: 256×384): every frame, in training
and evaluation, is resized to it. The student runs on the teacher's padded map grid (`map_spec`: 2 Gaussians per
pixel, 32 px of padding on every side), so its U-Net's size and channels always come from the teacher.

Background: Flash3D renders on a random colour in training and on grey 0.5 at evaluation; here every stage and the
evaluation use grey 0.5 (the `background` fields; with 32 px of padded Gaussians it is rarely visible).
"""

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import torch

# sibling modules of apps/re10k (first on sys.path under `uv run apps/re10k/...`); left unsorted because
# ruff would call `data` first-party whenever a data/ folder exists at the repository root
# isort: off
from data import FAR, NEAR, Batch, ExampleConfig, SequenceDataset, TrainingExamples, collate, open_dataset
from synthetic import SyntheticOptions, generate_synthetic

# isort: on
from splat_teachers import (
    Flash3D,
    Flash3DConfig,
    GaussianMapSpec,
    MonocularDepthConfig,
    ResNetConfig,
    UNetConfig,
    UniDepthV1,
    flash3d_preset,
    unet_preset,
)
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
from splat_train.checkpoint import load_checkpoint
from splat_train.runs import Stage, load_run_config, save_run_config

GREY = (0.5, 0.5, 0.5)  # Flash3D's evaluation background
SPLIT_FILE = "test_files.txt"  # Flash3D's name for the evaluation split (splits/re10k_mine_filtered/test_files.txt)


@dataclass(frozen=True)
class DataConfig:
    root: Path | None = None  # RealEstate10K root holding train/ and test/ (either layout); None: synthetic scenes
    split_file: Path | None = None  # evaluation rows `key src tgt5 tgt10 tgt_rand` (None: <root>/test_files.txt)
    synthetic: SyntheticOptions = SyntheticOptions()  # the built-in scenes (used when root is None)
    cache_dir: Path | None = None  # where the synthetic scenes are generated (None: <repo>/data/synthetic)
    batch_size: int = 4  # scenes per step (and process, under torchrun) of the teacher and the bootstrap stage
    multistep_batch_size: int = 2  # scenes per step (and process) of the multi-step stage (the paper: 100 → 10)
    num_targets: int = 3  # novel frames per scene (Flash3D: 3), at random distinct offsets within ±max_offset
    max_offset: int = 30
    render_source: bool = True  # the source frame is rendered and supervised too (Flash3D renders frame 0)
    cached_chunks: int = 2  # pixelSplat chunks kept in memory (~100 MB each for the real data)


@dataclass(frozen=True)
class ModelConfig:
    teacher: Flash3DConfig = flash3d_preset("re10k")  # its height/width is the image size of the whole run
    depth: Literal["learned", "unidepth"] = "learned"  # the built-in depth head (trained from images alone), or
    # Flash3D's frozen UniDepth v1 through torch.hub (needs network access or a populated hub cache)
    pretrained_encoder: bool = False  # ImageNet weights for the teacher's ResNet (local torch hub cache; Flash3D: yes)
    student_unet: UNetConfig = unet_preset("medium")  # size and in/out channels are taken from the teacher's map


@dataclass(frozen=True)
class EvalConfig:
    split: str = "test"  # the dataset split the split file indexes
    max_rows: int | None = None  # evaluate only the first N rows of the split file (None: all)
    batch_size: int = 4  # rows per forward pass (samples are seeded per batch: results depend on it slightly)
    num_samples: int = 4  # student samples per row (sample 0 is "student"; all of them "student mean of N")
    t_start: int = 30  # the teacher's prediction is noised to t_start, then denoised by DDIM
    lpips: bool = True  # LPIPS-VGG (needs the VGG16 weights in the torch hub cache; skipped with a note otherwise)
    grid_rows: int = 4  # comparison grids for the first N rows
    background: tuple[float, float, float] = GREY  # Flash3D evaluates on grey


@dataclass(frozen=True)
class RE10KExperiment:
    """Everything a RealEstate10K run needs. Start from a preset (`--preset`); every field can be overridden."""

    preset: str = "cpu-demo"
    run_dir: Path = Path("runs/re10k-cpu-demo")  # config, checkpoints, metrics.jsonl, eval tables and pictures
    stage: Stage = "all"  # run everything (resuming what is done), or one stage
    device: str = "cpu"  # cpu or cuda
    threads: int | None = None  # torch CPU threads (None: torch's default; 1 is faster on a busy shared machine)
    teacher_weights: Path | None = None  # a teacher checkpoint of this app (another run's checkpoints/teacher/
    # step_*.safetensors, EMA weights) instead of training one; the same teacher config is required
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

    @property
    def image_size(self) -> tuple[int, int]:
        return self.model.teacher.height, self.model.teacher.width


RESNET10 = ResNetConfig("basic", (1, 1, 1, 1))


def _cpu_demo() -> RE10KExperiment:
    """About 15 minutes on 2 CPU cores: 64×96 synthetic rooms, a small Flash3D (ResNet-10 encoders, narrow decoders,
    its learned depth head, 2 Gaussians per pixel, no padding), a small student on its 64×96 map, short stages."""
    height, width = 64, 96
    decoder = (8, 8, 16, 16, 32)
    teacher = Flash3DConfig(
        height=height,
        width=width,
        padding=0,  # Flash3D pads by 32 px: at 64x96 a 50% border, 3.3x the Gaussians and ~2.5x the time on CPU
        encoder=RESNET10,
        decoder_channels=decoder,
        depth_decoder_channels=decoder,
        depth_head=MonocularDepthConfig(encoder=RESNET10, decoder_channels=decoder, min_depth=0.1, max_depth=20.0),
    )
    student = UNetConfig(
        model_channels=16,
        channel_mult=(1, 2, 2, 2),
        num_blocks=1,
        attn_resolutions=(8,),  # the coarsest level of the 64-row map
        dropout=0.0,
        noise_embedding=True,
    )
    diffusion = DiffusionConfig()
    return RE10KExperiment(
        preset="cpu-demo",
        run_dir=Path("runs/re10k-cpu-demo"),
        normalizer_batches=8,
        data=DataConfig(
            synthetic=SyntheticOptions(height=height, width=width, train_scenes=20, test_scenes=6, frames=60),
            batch_size=4,
            multistep_batch_size=2,
            num_targets=3,
            cached_chunks=4,
        ),
        model=ModelConfig(teacher=teacher, student_unet=student),
        teacher=TeacherStageConfig(
            loop=LoopConfig(max_steps=300, checkpoint_every=100, ema_decay=0.98, ema_every=1, ema_start=50),
            learning_rate=5e-4,
            adam_eps=1e-8,
            background=GREY,
        ),
        bootstrap=BootstrapConfig(
            loop=LoopConfig(max_steps=120, checkpoint_every=40, ema_decay=0.95, ema_every=1, ema_start=20),
            diffusion=diffusion,
            learning_rate=1e-3,
            background=GREY,
        ),
        multistep=MultistepConfig(
            loop=LoopConfig(max_steps=20, checkpoint_every=10, ema_decay=0.9, ema_every=1, ema_start=5),
            diffusion=diffusion,
            learning_rate=1e-4,
            background=GREY,
        ),
        eval=EvalConfig(batch_size=6, num_samples=2, grid_rows=3),
    )


def _paper() -> RE10KExperiment:
    """The paper's setting on a GPU: 256×384 frames, Flash3D's `layered_re10k` teacher (ResNet-50, 2 Gaussians per
    pixel on the 320×448 padded grid, ImageNet encoder), the Medium student on that grid."""
    student = replace(unet_preset("medium"), attn_resolutions=(40,))  # the coarsest level of the 320-row map
    return RE10KExperiment(
        preset="re10k",
        run_dir=Path("runs/re10k"),
        device="cuda",
        data=DataConfig(batch_size=16, multistep_batch_size=4, num_targets=3),
        model=ModelConfig(teacher=flash3d_preset("re10k"), pretrained_encoder=True, student_unet=student),
        teacher=TeacherStageConfig(  # Flash3D: Adam 1e-4, batch 16, EMA 0.9999 every 10 steps, LPIPS after 50k steps
            loop=LoopConfig(max_steps=300_000, checkpoint_every=5000),
            learning_rate=1e-4,
            adam_eps=1e-8,
            lpips_weight=0.01,
            lpips_start_step=50_000,
            background=GREY,
        ),
        bootstrap=BootstrapConfig(loop=LoopConfig(max_steps=100_000, checkpoint_every=2000), background=GREY),
        multistep=MultistepConfig(loop=LoopConfig(max_steps=20_000, checkpoint_every=1000), background=GREY),
        eval=EvalConfig(batch_size=8, num_samples=4),
    )


PRESETS = {"cpu-demo": _cpu_demo, "re10k": _paper}


def preset(name: str) -> RE10KExperiment:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()


# ----------------------------------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class DataSource:
    """Where a run reads its frames: a root with train/ and test/ (either layout) and the evaluation split file."""

    root: Path
    split_file: Path
    synthetic: bool


def data_source(experiment: RE10KExperiment, progress=None) -> DataSource:
    """The given RealEstate10K root, or the built-in synthetic scenes (generated once, cached)."""
    config = experiment.data
    if config.root is not None:
        root = Path(config.root)
        if not root.is_dir():
            raise ValueError(f"--data.root {root}: no such folder (expected one holding train/ and test/)")
        split_file = Path(config.split_file) if config.split_file is not None else root / SPLIT_FILE
        return DataSource(root, split_file, synthetic=False)
    synthetic = generate_synthetic(config.synthetic, cache_dir=config.cache_dir, progress=progress)
    split_file = Path(config.split_file) if config.split_file is not None else synthetic.split_file
    return DataSource(synthetic.chunks, split_file, synthetic=True)


def open_split(experiment: RE10KExperiment, source: DataSource, split: str) -> SequenceDataset:
    return open_dataset(source.root, split, cached_chunks=experiment.data.cached_chunks)


def example_config(experiment: RE10KExperiment) -> ExampleConfig:
    data = experiment.data
    return ExampleConfig(
        size=experiment.image_size, num_targets=data.num_targets, max_offset=data.max_offset, near=NEAR, far=FAR
    )


def to_view_batch(batch: Batch, device: torch.device | str, *, render_source: bool = True) -> ViewBatch:
    """A batch of examples (view 0 = source, cameras relative to it) as the stages' `ViewBatch`; the targets are all
    views (`render_source`) or the views after the source."""
    first = 0 if render_source else 1
    return ViewBatch(
        source_images=batch.images[:, 0].float(),
        source_cameras=batch.cameras.select_views(slice(0, 1)),
        target_images=batch.images[:, first:].float(),
        target_cameras=batch.cameras.select_views(slice(first, None)),
    ).to(device)


def batch_samplers(examples: TrainingExamples, experiment: RE10KExperiment) -> dict[str, SeededExamples]:
    """The training data per stage; the multi-step stage gets its own, smaller batch size. The loop picks the (clip,
    source frame) pairs (epochs of shuffled pairs, split across the ranks under torchrun) and a seed per pair; each
    pair's targets (within ±max_offset) are drawn from its seed."""
    data = experiment.data
    near, far = examples.config.near, examples.config.far

    def batches(batch_size: int) -> SeededExamples:
        return SeededExamples(
            num_items=len(examples),
            batch_size=batch_size,
            example=examples.example,
            collate=lambda chosen: to_view_batch(
                collate(chosen, near=near, far=far), experiment.device, render_source=data.render_source
            ),
        )

    return {
        "teacher": batches(data.batch_size),
        "bootstrap": batches(data.batch_size),
        "multistep": batches(data.multistep_batch_size),
    }


# ----------------------------------------------------------------------------------------------------------------------
# Models


def teacher_config(experiment: RE10KExperiment) -> Flash3DConfig:
    config = experiment.model.teacher
    return replace(config, depth_source="external") if experiment.model.depth == "unidepth" else config


def build_teacher(experiment: RE10KExperiment) -> Flash3D:
    """The Flash3D-style teacher (fresh, or `teacher_weights`); with `depth="unidepth"` its frozen depth backbone."""
    backbone = None
    if experiment.model.depth == "unidepth":
        try:
            backbone = UniDepthV1()
        except RuntimeError as error:
            raise ValueError(f"--model.depth unidepth: {error}") from None
        backbone.model.to(experiment.device)
    pretrained = experiment.model.pretrained_encoder
    teacher = Flash3D(teacher_config(experiment), depth_backbone=backbone, pretrained=pretrained)
    if experiment.teacher_weights is not None:
        path = Path(experiment.teacher_weights)
        if not path.is_file():
            raise ValueError(f"--teacher-weights {path}: no such file")
        try:
            teacher.load_state_dict(load_checkpoint(path).ema)
        except RuntimeError as error:
            reason = str(error).strip().splitlines()[0]
            raise ValueError(f"--teacher-weights {path}: not a teacher of this configuration ({reason})") from None
    return teacher.to(experiment.device)


def student_unet(experiment: RE10KExperiment, spec: GaussianMapSpec) -> UNetConfig:
    """The student's U-Net on the teacher's map grid: size, input (image + map) and output channels from its
    `map_spec`."""
    unet = replace(
        experiment.model.student_unet,
        resolution=spec.height,
        width=spec.width,
        in_channels=3 + spec.channels,
        out_channels=spec.channels,
    )
    unknown = sorted(set(unet.attn_resolutions) - set(unet.level_resolutions))
    if unknown:
        raise ValueError(
            f"--model.student-unet.attn-resolutions {unknown}: not a level of the {spec.height}x{spec.width} map "
            f"(level heights {list(unet.level_resolutions)})"
        )
    return unet


def build_student(experiment: RE10KExperiment, teacher: Flash3D) -> GaussianDenoiser:
    unet = student_unet(experiment, teacher.map_spec)
    config = StudentConfig(unet=unet, num_train_steps=experiment.diffusion.num_train_steps)
    return GaussianDenoiser(config, teacher.map_spec).to(experiment.device)


# ----------------------------------------------------------------------------------------------------------------------
# Run directory

TRAINING_FIELDS = training_fields("teacher_weights")  # what a run learns (a run directory refuses other values)


def save_config(experiment: RE10KExperiment) -> None:
    save_run_config(experiment.run_dir, experiment, TRAINING_FIELDS)


def load_experiment(run_dir: Path) -> RE10KExperiment:
    return load_run_config(run_dir, RE10KExperiment)
