"""The RealEstate10K app: clips in either public layout (or the built-in synthetic rooms), the Flash3D-style teacher
and Flash3D's +5 / +10 / ±30 protocol, as the `splat_apps.contract.App` the shared commands run."""

import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from jaxtyping import Float
from PIL import Image
from torch import Tensor

from splat_apps import SampleInput, StaticProtocol, collate
from splat_apps.contract import App, AppDefaults
from splat_apps.datacheck import given_folder
from splat_apps.views import input_batch
from splat_render import Cameras, Gaussians
from splat_teachers import Flash3D, UniDepthV1
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
    image_tensor,
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


def data_source(experiment: RE10KExperiment, progress: Progress | None = None) -> DataSource:
    """The given RealEstate10K root, or the built-in synthetic scenes (generated once, cached)."""
    config = experiment.data
    if config.root is not None:
        root = given_folder("--data.root", config.root, "one holding train/ and test/")
        return DataSource(root, Path(config.split_file or root / SPLIT_FILE), synthetic=False)
    synthetic = generate_synthetic(config.synthetic, cache_dir=config.cache_dir, progress=progress)
    return DataSource(synthetic.chunks, Path(config.split_file or synthetic.split_file), synthetic=True)


def open_split(experiment: RE10KExperiment, source: DataSource, split: str) -> SequenceDataset:
    return open_dataset(source.root, split, cached_chunks=experiment.data.cached_chunks)


def build_teacher(experiment: RE10KExperiment) -> Flash3D:
    """The Flash3D-style teacher (fresh, or `teacher_weights`); with `depth="unidepth"` its frozen depth backbone."""
    config, backbone = experiment.model.teacher, None
    if experiment.model.depth == "unidepth":
        config = replace(config, depth_source="external")
        try:
            backbone = UniDepthV1()
        except RuntimeError as error:
            raise ValueError(f"--model.depth unidepth: {error}") from None
        backbone.model.to(experiment.device)
    teacher = Flash3D(config, depth_backbone=backbone, pretrained=experiment.model.pretrained_encoder)
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


def read_image(path: Path, height: int, width: int) -> Float[Tensor, "3 height width"]:
    """Any RGB(A) image file as RGB in [0, 1], resized (LANCZOS, as the frames are) to height × width."""
    try:
        with Image.open(path) as opened:
            return image_tensor(opened, (height, width))
    except OSError as error:  # pillow's UnidentifiedImageError is one
        raise ValueError(f"--image {path}: cannot read it as an image ({error})") from None


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
    return pixel_intrinsics(torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]), height, width)


def fly_through_cameras(K: Float[Tensor, "3 3"], width: int, height: int, depth: float, frames: int = 36) -> Cameras:
    """`frames` cameras (batch 1) relative to the source camera: forward by up to 0.3·depth and back, swaying
    sideways by ±0.1·depth and turning by ±10° about the camera's y axis (a short walk-through)."""
    cam_to_world = torch.eye(4).repeat(1, frames, 1, 1)
    for i in range(frames):
        phase = 2 * math.pi * i / frames
        yaw = math.radians(10.0) * math.sin(phase)
        cos, sin = math.cos(yaw), math.sin(yaw)
        cam_to_world[0, i, :3, :3] = torch.tensor([[cos, 0.0, sin], [0.0, 1.0, 0.0], [-sin, 0.0, cos]])
        cam_to_world[0, i, :3, 3] = torch.tensor([0.1 * math.sin(phase), 0.0, 0.3 * (1 - math.cos(phase)) / 2]) * depth
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
    name = "re10k"
    title = "RealEstate10K"
    experiment_type = RE10KExperiment
    presets = PRESETS
    sample_options = SampleOptions
    animation = "fly-throughs"

    def data(self, experiment: RE10KExperiment) -> DataSource:
        return data_source(experiment)

    def training_data(self, experiment: RE10KExperiment, source: DataSource) -> tuple[dict[str, BatchSource], str]:
        data = experiment.data
        config = ExampleConfig(experiment.image_size, data.num_targets, data.max_offset, data.render_source)
        examples = TrainingExamples(open_split(experiment, source, "train"), config)
        sizes = {"teacher": data.batch_size, "bootstrap": data.batch_size, "multistep": data.multistep_batch_size}
        stages = {  # the loop picks the (clip, source frame) pairs, and a seed for each pair's targets
            stage: SeededExamples(len(examples), size, examples.example, lambda e: collate(e, experiment.device))
            for stage, size in sizes.items()
        }
        height, width = experiment.image_size
        description = f"{source.root} · {len(examples.keys)} training clips, {len(examples)} source frames"
        return stages, f"{description} · {height}x{width}"

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
