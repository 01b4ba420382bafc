"""The SRN app: ShapeNet-SRN cars / chairs (or the built-in synthetic objects), the Splatter Image teacher, the
pixelNeRF / Splatter Image protocol — what `splat_apps.commands` needs (`splat_apps.contract.App`)."""

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from splat_apps import SampleInput, StaticProtocol, collate
from splat_apps.contract import App, AppDefaults
from splat_apps.datacheck import given_folder
from splat_apps.views import input_batch, resize_images
from splat_apps.visualize import turntable_cameras
from splat_render import Cameras, Gaussians
from splat_teachers import SplatterImage, SplatterImageConfig, head_preset
from splat_train import BatchSource, SeededExamples

from .data import RENDER_FAR, RENDER_NEAR, SRNDataset, default_input_view, read_image, read_intrinsics
from .experiment import PRESETS, SRNExperiment
from .protocol import protocol
from .synthetic import generate_synthetic


@dataclass(frozen=True)
class SampleOptions:
    """What to sample from: an image file, or the protocol's input view of a test object."""

    image: Path | None = None  # an RGB(A) image (composited on white); default: the input view of --object-index
    intrinsics: Path | None = None  # SRN intrinsics.txt of the image (default: the head's fixed field of view)
    object_index: int = 0  # test object used when no --image is given


def dataset_root(experiment: SRNExperiment) -> Path:
    """The SRN category folder to read: the given one, or the built-in synthetic data (generated once, cached)."""
    if experiment.data.root is not None:
        return given_folder("--data.root", experiment.data.root, "an SRN category folder like srn_cars")
    return generate_synthetic(experiment.data.synthetic, cache_dir=experiment.data.cache_dir)


def open_split(experiment: SRNExperiment, split: str, root: Path) -> SRNDataset:
    resolution = experiment.data.resolution
    if resolution is None and experiment.data.root is None:
        resolution = experiment.data.synthetic.resolution
    return SRNDataset(root, split, resolution=resolution)


def image_resolution(experiment: SRNExperiment, root: Path) -> int:
    return open_split(experiment, experiment.eval.split, root).load(0, [0]).images.shape[-1]


def turntable(gaussians: Gaussians, cameras: Cameras, frames: int) -> Cameras:
    """Cameras circling the scene's opacity-weighted centre at the input camera's distance from it."""
    weights = gaussians.opacities[0, :, None]
    center = ((gaussians.means[0] * weights).sum(0) / weights.sum()).cpu()
    K = cameras.K[0, 0].cpu()
    return turntable_cameras(
        center, float(center.norm()), K, cameras.width, cameras.height, frames=frames, near=RENDER_NEAR, far=RENDER_FAR
    )


class SRNApp(AppDefaults):
    name, title, experiment_type, presets, sample_options = "srn", "SRN", SRNExperiment, PRESETS, SampleOptions

    def data(self, experiment: SRNExperiment) -> Path:
        return dataset_root(experiment)

    def training_data(self, experiment: SRNExperiment, root: Path) -> tuple[BatchSource, str]:
        """The loop picks the objects (shuffled epochs, split across the ranks under torchrun) and a seed per object;
        each object's input and target views are drawn from its seed."""
        dataset = open_split(experiment, "train", root)
        config = experiment.data
        batches = SeededExamples(
            num_items=len(dataset),
            batch_size=config.batch_size,
            example=lambda item, generator: dataset.training_example(item, config.num_targets, generator),
            collate=lambda examples: collate(examples, experiment.device),
        )
        resolution = dataset.load(0, [0]).images.shape[-1]
        return batches, f"{root} · {len(dataset)} training objects · {resolution}px"

    def teacher(self, experiment: SRNExperiment, root: Path) -> SplatterImage:
        resolution = image_resolution(experiment, root)
        if experiment.teacher_checkpoint is not None:
            teacher = SplatterImage.from_official_checkpoint(experiment.teacher_checkpoint, head=experiment.model.head)
            if teacher.config.unet.resolution != resolution:
                raise ValueError(
                    f"{experiment.teacher_checkpoint}: a {teacher.config.unet.resolution}px model, but the data is "
                    f"{resolution}px (set --data.resolution {teacher.config.unet.resolution})"
                )
            return teacher.to(experiment.device)
        head = replace(head_preset(experiment.model.head), resolution=resolution)
        config = SplatterImageConfig(unet=replace(experiment.model.teacher_unet, resolution=resolution), head=head)
        return SplatterImage(config).to(experiment.device)

    def protocol(self, experiment: SRNExperiment, root: Path) -> StaticProtocol:
        return protocol(experiment, open_split(experiment, experiment.eval.split, root))

    def sample_input(
        self, options: SampleOptions, experiment: SRNExperiment, root: Path, teacher: SplatterImage
    ) -> SampleInput:
        """The image is resized to the model's resolution; without `--intrinsics` the head's fixed field of view."""
        path = lambda gaussians, frames, cameras: turntable(gaussians, cameras, frames)
        if options.image is None:
            dataset = open_split(experiment, experiment.eval.split, root)
            if not 0 <= options.object_index < len(dataset):
                raise ValueError(
                    f"--object-index {options.object_index}: the {dataset.split} split has {len(dataset)} objects"
                )
            input_view = default_input_view(dataset.num_views(options.object_index))
            example = dataset.evaluation_example(options.object_index, input_view)
            batch = collate([example])
            return SampleInput(example.item, batch, lambda g, n: path(g, n, batch.source_cameras))
        resolution = teacher.config.unet.resolution
        image = resize_images(read_image(options.image)[None], resolution, resolution)
        if options.intrinsics is not None:
            K = read_intrinsics(options.intrinsics).matrix(resolution, resolution)
        else:
            K = teacher.head.default_intrinsics(1)[0].cpu()
        cameras = Cameras(
            torch.eye(4)[None, None], K.float()[None, None], resolution, resolution, RENDER_NEAR, RENDER_FAR
        )
        batch = input_batch(image, cameras)
        return SampleInput(options.image.stem, batch, lambda g, n: path(g, n, cameras))


APP: App = SRNApp()
