"""The RealEstate10K app: RealEstate10K clips in either public layout (or the built-in synthetic rooms), the
Flash3D-style teacher, Flash3D's +5 / +10 / ±30 protocol — what `splat_apps.commands` needs
(`splat_apps.contract.App`)."""

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from splat_apps import SampleInput, StaticProtocol, collate
from splat_apps.contract import App, AppDefaults
from splat_apps.views import input_batch
from splat_render import Cameras, Gaussians
from splat_teachers import Flash3D, Flash3DConfig, UniDepthV1
from splat_train import BatchSource, SeededExamples, ViewBatch
from splat_train.checkpoint import load_checkpoint

from .data import (
    FAR,
    NEAR,
    SPLIT_FILE,
    DataSource,
    ExampleConfig,
    SequenceDataset,
    TrainingExamples,
    load_example,
    open_dataset,
    pixel_intrinsics,
)
from .evaluation import evaluation_split_file, protocol
from .experiment import PRESETS, RE10KExperiment
from .protocol import read_split
from .synthetic import Progress, generate_synthetic


@dataclass(frozen=True)
class SampleOptions:
    """What to sample from: an image file (with its intrinsics), or the source frame of a split-file row."""

    image: Path | None = None  # an RGB image; default: the source frame of split-file row --row
    intrinsics: tuple[float, float, float, float] | None = None  # normalized fx fy cx cy of --image
    fov_degrees: float = 90.0  # horizontal field of view of --image when no --intrinsics are given
    row: int = 0  # row of the run's split file whose source frame is used when no --image is given


# ----------------------------------------------------------------------------------------------------------------------
# Data


def data_source(experiment: RE10KExperiment, progress: Progress | None = None) -> DataSource:
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
        size=experiment.image_size,
        num_targets=data.num_targets,
        max_offset=data.max_offset,
        render_source=data.render_source,
        near=NEAR,
        far=FAR,
    )


def stage_batches(examples: TrainingExamples, experiment: RE10KExperiment) -> dict[str, SeededExamples]:
    """The training data per stage; the multi-step stage gets its own, smaller batch size. The loop picks the (clip,
    source frame) pairs (epochs of shuffled pairs, split across the ranks under torchrun) and a seed per pair; each
    pair's targets (within ±max_offset) are drawn from its seed."""

    def batches(batch_size: int) -> SeededExamples:
        return SeededExamples(
            num_items=len(examples),
            batch_size=batch_size,
            example=examples.example,
            collate=lambda chosen: collate(chosen, experiment.device),
        )

    data = experiment.data
    return {
        "teacher": batches(data.batch_size),
        "bootstrap": batches(data.batch_size),
        "multistep": batches(data.multistep_batch_size),
    }


# ----------------------------------------------------------------------------------------------------------------------
# Teacher


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


# ----------------------------------------------------------------------------------------------------------------------
# sample.py


def read_image(path: Path, height: int, width: int) -> Float[Tensor, "3 height width"]:
    """Any RGB(A) image file as RGB in [0, 1], resized (LANCZOS, as the frames are) to height × width."""
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    except (OSError, UnidentifiedImageError) as error:
        raise ValueError(f"--image {path}: cannot read it as an image ({error})") from None
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def image_intrinsics(options: SampleOptions, height: int, width: int) -> Float[Tensor, "3 3"]:
    """K in pixels of `--image`: RealEstate10K's normalized `--intrinsics`, or `--fov-degrees` with square pixels."""
    if options.intrinsics is not None:
        fx, fy, cx, cy = options.intrinsics
        if fx <= 0 or fy <= 0:
            raise ValueError(f"--intrinsics: focal lengths must be positive, got fx={fx}, fy={fy}")
    else:
        if not 0 < options.fov_degrees < 180:
            raise ValueError(f"--fov-degrees must be in (0, 180), got {options.fov_degrees}")
        fx = 0.5 / math.tan(math.radians(options.fov_degrees) / 2)
        fy, cx, cy = fx * width / height, 0.5, 0.5
    normalized = torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return pixel_intrinsics(normalized, height, width)


def fly_through_cameras(K: Float[Tensor, "3 3"], width: int, height: int, depth: float, frames: int = 36) -> Cameras:
    """`frames` cameras (batch 1) relative to the source camera: forward by up to 0.3·depth and back, swaying
    sideways by ±0.1·depth and turning by ±10° about the camera's y axis (a short walk-through)."""
    poses = []
    for i in range(frames):
        phase = 2 * math.pi * i / frames
        yaw = math.radians(10.0) * math.sin(phase)
        cam_to_world = torch.eye(4)
        cam_to_world[:3, :3] = torch.tensor(
            [[math.cos(yaw), 0.0, math.sin(yaw)], [0.0, 1.0, 0.0], [-math.sin(yaw), 0.0, math.cos(yaw)]]
        )
        cam_to_world[:3, 3] = torch.tensor([0.1 * math.sin(phase), 0.0, 0.3 * (1 - math.cos(phase)) / 2]) * depth
        poses.append(cam_to_world)
    cam_to_world = torch.stack(poses)[None]
    return Cameras.from_cam_to_world(cam_to_world, K.expand(1, frames, 3, 3).clone(), width, height, NEAR, FAR)


def sample_row_input(options: SampleOptions, experiment: RE10KExperiment, source: DataSource) -> tuple[ViewBatch, str]:
    """The source frame of split-file row `--row` as a one-view `ViewBatch`, and its name `<key>_<frame>`."""
    split_file = evaluation_split_file(experiment, source)
    rows = read_split(split_file)
    if not 0 <= options.row < len(rows):
        raise ValueError(f"--row {options.row}: {split_file} has {len(rows)} rows")
    row = rows[options.row]
    try:
        sequence = open_split(experiment, source, experiment.eval.split)[row.key]
    except KeyError as error:
        raise ValueError(f"--row {options.row}: {error.args[0] if error.args else error}") from None
    return collate([load_example(sequence, [row.src], experiment.image_size)]), f"{row.key}_{row.src}"


class RE10KApp(AppDefaults):
    name, title, experiment_type, presets, sample_options = (
        "re10k",
        "RealEstate10K",
        RE10KExperiment,
        PRESETS,
        SampleOptions,
    )
    animation = "fly-throughs"

    def data(self, experiment: RE10KExperiment) -> DataSource:
        return data_source(experiment)

    def training_data(self, experiment: RE10KExperiment, source: DataSource) -> tuple[dict[str, BatchSource], str]:
        examples = TrainingExamples(open_split(experiment, source, "train"), example_config(experiment))
        height, width = experiment.image_size
        description = (
            f"{source.root} · {len(examples.keys)} training clips, {len(examples)} source frames · {height}x{width}"
        )
        return stage_batches(examples, experiment), description

    def teacher(self, experiment: RE10KExperiment, source: DataSource) -> Flash3D:
        return build_teacher(experiment)

    def protocol(self, experiment: RE10KExperiment, source: DataSource) -> StaticProtocol:
        return protocol(experiment, source, open_split(experiment, source, experiment.eval.split))

    def sample_input(
        self, options: SampleOptions, experiment: RE10KExperiment, source: DataSource, teacher: Flash3D
    ) -> SampleInput:
        """The fly-through of every prediction is scaled by the median depth of the teacher's Gaussians."""
        if options.image is None:
            batch, name = sample_row_input(options, experiment, source)
        else:
            height, width = experiment.image_size
            K = image_intrinsics(options, height, width)
            cameras = Cameras(torch.eye(4)[None, None], K.float()[None, None], width, height, NEAR, FAR)
            batch, name = input_batch(read_image(options.image, height, width)[None], cameras), options.image.stem
        on_device = batch.to(experiment.device)
        with torch.no_grad():
            depth = float(teacher(on_device.source_images, on_device.source_cameras).gaussians.means[0, :, 2].median())
        cameras = batch.source_cameras

        def path(gaussians: Gaussians, frames: int) -> Cameras:
            return fly_through_cameras(cameras.K[0, 0].cpu(), cameras.width, cameras.height, depth, frames)

        return SampleInput(name, batch, path, grid_scale_to=192)


APP: App = RE10KApp()
