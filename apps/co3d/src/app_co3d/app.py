"""The Co3D app (`splat_apps.contract.App`): preprocessed Co3D hydrants (or the built-in synthetic sequences), the
Splatter Image teacher with its `hydrants` head (depths about each view's origin distance), the Splatter Image Co3D
protocol, and sample.py's input."""

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from splat_apps import SampleInput, StaticProtocol, collate
from splat_apps.contract import App, AppDefaults
from splat_apps.datacheck import DataError, given_folder
from splat_apps.images import read_image
from splat_apps.views import input_batch, resize_images, with_planes
from splat_apps.visualize import turntable_cameras
from splat_render import Cameras, rigid_inverse
from splat_teachers import SplatterImage, SplatterImageConfig, head_preset
from splat_train import SeededExamples

from .data import BACKGROUND, RENDER_FAR, RENDER_NEAR, Co3DDataset, co3d_intrinsics, image_size
from .experiment import PRESETS, Co3DExperiment
from .protocol import protocol
from .synthetic import generate

HEAD = "hydrants"  # Splatter Image's Co3D head: per-image focal lengths, depth = origin distance + [-2, 2], black


@dataclass(frozen=True)
class SampleOptions:
    """What to sample from: a square image file, or the first frame of a test sequence."""

    image: Path | None = None  # a square RGB(A) image on black; default: first frame of test sequence --sequence-index
    focal: float | None = None  # focal length of --image in NDC units (focal_px / (side / 2)); required with --image
    origin_distance: float | None = None  # of --image (default: mean over the evaluation split's input frames)
    sequence_index: int = 0  # test sequence used when no --image is given


def open_split(experiment: Co3DExperiment, split: str, root: Path) -> Co3DDataset:
    return Co3DDataset(root, split, resolution=experiment.data.resolution)


def teacher_config(experiment: Co3DExperiment, resolution: int) -> SplatterImageConfig:
    head = replace(head_preset(HEAD), resolution=resolution)
    return SplatterImageConfig(unet=replace(experiment.model.teacher_unet, resolution=resolution), head=head)


def build_teacher(experiment: Co3DExperiment, resolution: int) -> SplatterImage:
    """A fresh teacher for `resolution` px images, or the official checkpoint (`--teacher-checkpoint`) with the
    hydrants head."""
    if experiment.teacher_checkpoint is not None:
        teacher = SplatterImage.from_official_checkpoint(experiment.teacher_checkpoint, head=HEAD)
        if teacher.config.unet.resolution != resolution:
            raise ValueError(
                f"{experiment.teacher_checkpoint}: a {teacher.config.unet.resolution}px model, but the data is "
                f"{resolution}px (set --data.resolution {teacher.config.unet.resolution})"
            )
        return teacher.to(experiment.device)
    return SplatterImage(teacher_config(experiment, resolution)).to(experiment.device)


def world_origin_and_up(input_cam_to_world: Float[Tensor, "4 4"]) -> tuple[Float[Tensor, "3"], Float[Tensor, "3"]]:
    """The world origin (the normalised object's centre) and the world's +y axis (up after the sequence
    normalisation) in the input camera's frame."""
    cam_to_world = input_cam_to_world.double()
    return rigid_inverse(cam_to_world)[:3, 3].float(), cam_to_world[1, :3].float()


def orbit(center: Float[Tensor, "3"], up: Float[Tensor, "3"], cameras: Cameras, frames: int) -> Cameras:
    """`frames` cameras circling `center` about `up` at the input camera's distance from it, with its intrinsics."""
    K, size = cameras.K[0, 0].cpu(), (cameras.width, cameras.height)
    path = turntable_cameras(center.cpu(), float(center.norm()), K, *size, frames=frames, up=up.cpu())
    return with_planes(path, RENDER_NEAR, RENDER_FAR)


def image_input(options: SampleOptions, dataset: Co3DDataset, resolution: int) -> SampleInput:
    """A square image (an alpha channel composited on black) with its NDC focal length and origin distance; the
    turntable circles the point at the origin distance on the optical axis about the camera's up (−y)."""
    if options.focal is None or not options.focal > 0:
        raise ValueError(f"--focal: an --image needs its positive focal length in NDC units, got {options.focal}")
    try:
        image = read_image(options.image, background=BACKGROUND)
    except DataError as error:
        raise ValueError(f"--image {options.image}: cannot read it as an image ({error.problem})") from None
    height, width = image.shape[-2:]
    if height != width:
        raise ValueError(
            f"--image {options.image}: must be square (crop it centred on the principal point), got {width}x{height}"
        )
    image = resize_images(image, resolution, resolution)
    distance = options.origin_distance
    if distance is None:  # the mean over the evaluation split's input frames (view 0 of each sequence)
        distance = float(torch.stack([dataset.load(i, [0]).origin_distances[0] for i in range(len(dataset))]).mean())
    K = co3d_intrinsics(torch.tensor([[options.focal, options.focal]]), resolution).float()[None]
    cameras = Cameras(torch.eye(4)[None, None], K, resolution, resolution, RENDER_NEAR, RENDER_FAR)
    batch = input_batch(image[None], cameras, origin_distance=torch.tensor([distance], dtype=torch.float32))
    center, up = torch.tensor([0.0, 0.0, distance]), torch.tensor([0.0, -1.0, 0.0])
    return SampleInput(options.image.stem, batch, lambda gaussians, frames: orbit(center, up, cameras, frames))


def sequence_input(options: SampleOptions, dataset: Co3DDataset) -> SampleInput:
    """The protocol's input frame of test sequence `--sequence-index`; the turntable circles the object's centre
    (the world origin) about the world's up axis."""
    if options.focal is not None or options.origin_distance is not None:
        raise ValueError("--focal and --origin-distance describe an --image; a test sequence brings its own")
    if not 0 <= options.sequence_index < len(dataset):
        raise ValueError(
            f"--sequence-index {options.sequence_index}: the {dataset.split} split has {len(dataset)} sequences"
        )
    example = dataset.evaluation_example(options.sequence_index)
    batch = collate([example])
    center, up = world_origin_and_up(example.input_cam_to_world)
    return SampleInput(example.item, batch, lambda gaussians, frames: orbit(center, up, batch.source_cameras, frames))


class Co3DApp(AppDefaults):
    name, title, experiment_type, presets, sample_options = "co3d", "Co3D", Co3DExperiment, PRESETS, SampleOptions

    def data(self, experiment: Co3DExperiment) -> Path:
        """The co3d_<category>_for_gs folder to read: the given one, or the built-in synthetic data (generated once)."""
        config = experiment.data
        if config.root is None:
            return generate(config.synthetic, config.cache_dir)
        return given_folder("--data.root", config.root, "a preprocessed co3d_hydrant_for_gs folder")

    def training_data(self, experiment: Co3DExperiment, root: Path) -> tuple[SeededExamples, str]:
        """The loop picks the sequences (shuffled epochs, split across the ranks under torchrun) and a seed per
        sequence; each sequence's input and target views are drawn from its seed."""
        dataset, config = open_split(experiment, "train", root), experiment.data
        batches = SeededExamples(
            num_items=len(dataset),
            batch_size=config.batch_size,
            example=lambda item, generator: dataset.training_example(item, config.num_targets, generator),
            collate=lambda examples: collate(examples, experiment.device),
        )
        excluded = f" ({len(dataset.skipped)} excluded)" if dataset.skipped else ""
        return batches, f"{root} · {len(dataset)} training sequences{excluded} · {image_size(dataset)}px"

    def teacher(self, experiment: Co3DExperiment, root: Path) -> SplatterImage:
        return build_teacher(experiment, image_size(open_split(experiment, experiment.eval.split, root)))

    def protocol(self, experiment: Co3DExperiment, root: Path) -> StaticProtocol:
        return protocol(experiment, open_split(experiment, experiment.eval.split, root))

    def sample_input(
        self, options: SampleOptions, experiment: Co3DExperiment, root: Path, teacher: SplatterImage
    ) -> SampleInput:
        dataset = open_split(experiment, experiment.eval.split, root)
        if options.image is None:
            return sequence_input(options, dataset)
        return image_input(options, dataset, teacher.config.unet.resolution)


APP: App = Co3DApp()
