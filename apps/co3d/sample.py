"""Sample 3D Gaussians from a trained Co3D student: an input frame → N samples → `.ply` files and a turntable
animation per sample (and the teacher's prediction, for comparison).

    uv run apps/co3d/sample.py runs/co3d-cpu-demo                          # first frame of the first test sequence
    uv run apps/co3d/sample.py runs/co3d-hydrant --sequence-index 5 --num-samples 8
    uv run apps/co3d/sample.py runs/co3d-hydrant --image hydrant.png --focal 2.4 --origin-distance 2.1

An `--image` must be square (crop it centred on the principal point first, as the preprocessing does), with the
object on black (an alpha channel is composited on black); `--focal` is its focal length in NDC units (focal in
pixels / half the image side) and `--origin-distance` the depth of the object's centre along the optical axis in the
dataset's normalised units (default: the mean over the evaluation split's input frames). The turntable circles the
object's centre (the world origin) about the world's up axis (for an image: the camera's up). Samples differ only by
their starting noise (`--seed`).
"""

import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import tyro
from jaxtyping import Float
from PIL import Image
from rich.console import Console
from torch import Tensor

# isort: off
from data import RENDER_FAR, RENDER_NEAR, Co3DDataset, co3d_intrinsics, collate, resize_images
from eval import load_models
from experiment import Co3DExperiment, dataset_root, image_size, load_experiment, open_split, to_view_batch

# isort: on
from splat_render import Cameras, Gaussians, render, rigid_inverse
from splat_render.ply import save_ply
from splat_train import GaussianDenoiser, ViewBatch, sample
from splat_train.visualize import check_animation_format, save_animation, save_image_grid, turntable_cameras


@dataclass(frozen=True)
class SampleCommand:
    """Sample Gaussians from a trained Co3D run."""

    run_dir: tyro.conf.Positional[Path]
    image: Path | None = None  # a square RGB(A) image on black; default: first frame of test sequence --sequence-index
    focal: float | None = None  # focal length of --image in NDC units (focal_px / (side / 2)); required with --image
    origin_distance: float | None = None  # of --image (default: mean over the evaluation split's input frames)
    sequence_index: int = 0  # test sequence used when no --image is given
    num_samples: int = 4
    t_start: int | None = None  # default: the run's eval t_start
    seed: int = 0
    out: Path | None = None  # default: <run_dir>/samples/<image or sequence>
    frames: int = 36  # turntable frames
    format: str = "gif"  # gif or mp4 (mp4 needs imageio's ffmpeg plugin)
    device: str | None = None


@dataclass(frozen=True)
class SampleInput:
    """One input frame with its camera (identity pose), origin distance, and where the turntable goes."""

    name: str
    batch: ViewBatch  # source view only matters; targets = the source view
    center: Float[Tensor, "3"]  # the object's centre (world origin) in the input camera's frame
    up: Float[Tensor, "3"]  # the world's up axis in the input camera's frame


def read_image(path: Path) -> Float[Tensor, "3 height width"]:
    """RGB in [0, 1]; an alpha channel is composited on black (Co3D's background)."""
    try:
        with Image.open(path) as file:
            image = np.asarray(file.convert("RGBA"), dtype=np.float32) / 255
    except (OSError, ValueError) as error:
        raise ValueError(f"--image {path}: cannot read it as an image ({error})") from None
    rgb = image[..., :3] * image[..., 3:]
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))


def mean_input_origin_distance(dataset: Co3DDataset) -> float:
    """Mean origin distance of the evaluation split's input frames (view 0 of each sequence)."""
    return float(torch.stack([dataset.load(i, [0]).origin_distances[0] for i in range(len(dataset))]).mean())


def image_input(command: SampleCommand, dataset: Co3DDataset, resolution: int, device: str) -> SampleInput:
    if command.focal is None or not command.focal > 0:
        raise ValueError(f"--focal: an --image needs its positive focal length in NDC units, got {command.focal}")
    image = read_image(command.image)
    height, width = image.shape[-2:]
    if height != width:
        raise ValueError(
            f"--image {command.image}: must be square (crop it centred on the principal point), got {width}x{height}"
        )
    if height != resolution:
        image = resize_images(image, resolution)
    distance = command.origin_distance if command.origin_distance is not None else mean_input_origin_distance(dataset)
    K = co3d_intrinsics(torch.tensor([[command.focal, command.focal]]), resolution).float()[None]
    cameras = Cameras(torch.eye(4)[None, None], K, resolution, resolution, RENDER_NEAR, RENDER_FAR)
    origin = torch.tensor([distance], dtype=torch.float32)
    batch = ViewBatch(
        source_images=image[None],
        source_cameras=cameras,
        target_images=image[None, None],
        target_cameras=cameras,
        teacher_inputs={"origin_distance": origin},
        target_teacher_inputs={"origin_distance": origin[None]},
    ).to(device)
    return SampleInput(command.image.stem, batch, torch.tensor([0.0, 0.0, distance]), torch.tensor([0.0, -1.0, 0.0]))


def sequence_input(command: SampleCommand, dataset: Co3DDataset, device: str) -> SampleInput:
    if not 0 <= command.sequence_index < len(dataset):
        raise ValueError(
            f"--sequence-index {command.sequence_index}: the {dataset.split} split has {len(dataset)} sequences"
        )
    example = dataset.evaluation_example(command.sequence_index)
    cam_to_world = example.input_cam_to_world.double()
    center = rigid_inverse(cam_to_world)[:3, 3].float()  # the world origin in the input camera's frame
    up = cam_to_world[1, :3].float()  # world +y (up after the sequence normalisation) in the camera's frame
    return SampleInput(example.sequence, to_view_batch(collate([example]), device), center, up)


def turntable(
    gaussians: Gaussians,
    source: Cameras,
    center: Float[Tensor, "3"],
    up: Float[Tensor, "3"],
    frames: int,
    background: Float[Tensor, "3"],
) -> Float[Tensor, "frames 3 height width"]:
    """Frames circling `center` about `up` at the input camera's distance from it (starting near the input view)."""
    orbit = turntable_cameras(
        center.cpu(),
        float(center.norm()),
        source.K[0, 0].cpu(),
        source.width,
        source.height,
        frames=frames,
        up=up.cpu(),
        near=RENDER_NEAR,
        far=RENDER_FAR,
    )
    with torch.no_grad():
        return render(gaussians, orbit.to(gaussians.device), background=background).rgb[0]


def load_input(
    command: SampleCommand, experiment: Co3DExperiment
) -> tuple[SampleInput, torch.nn.Module, GaussianDenoiser]:
    dataset = open_split(experiment, experiment.eval.split, dataset_root(experiment))
    resolution = image_size(dataset)
    teacher, student = load_models(experiment, resolution)
    if command.image is not None:
        return image_input(command, dataset, resolution, experiment.device), teacher, student
    if command.focal is not None or command.origin_distance is not None:
        raise ValueError("--focal and --origin-distance describe an --image; a test sequence brings its own")
    return sequence_input(command, dataset, experiment.device), teacher, student


def main(argv: list[str] | None = None) -> int:
    command = tyro.cli(SampleCommand, args=argv, description=__doc__)
    console = Console()
    try:
        check_animation_format(command.format)
        experiment = load_experiment(command.run_dir)
        experiment = replace(experiment, run_dir=command.run_dir, device=command.device or experiment.device)
        item, teacher, student = load_input(command, experiment)
    except ValueError as error:
        console.print(f"[red]error:[/red] {error}")
        return 1
    out = command.out or command.run_dir / "samples" / item.name
    batch = item.batch
    schedule = experiment.diffusion.make_schedule().to(experiment.device)
    background = torch.tensor(experiment.multistep.background, device=experiment.device)
    t_start = command.t_start if command.t_start is not None else experiment.eval.t_start
    with torch.no_grad():
        predictions = {"teacher": teacher(batch.source_images, batch.source_cameras, **batch.teacher_inputs).gaussians}
        samples = sample(
            student,
            teacher,
            schedule,
            batch.source_images,
            batch.source_cameras,
            num_samples=command.num_samples,
            t_start=t_start,
            steps=experiment.diffusion.ddim_steps,
            generator=torch.Generator().manual_seed(command.seed),
            **batch.teacher_inputs,
        )
    predictions |= {f"sample_{i + 1}": g for i, g in enumerate(samples)}
    strips = []
    for label, gaussians in predictions.items():
        save_ply(gaussians, out / f"{label}.ply")
        frames = turntable(gaussians, batch.source_cameras, item.center, item.up, command.frames, background)
        save_animation(frames, out / f"{label}.{command.format}")
        strips.append([batch.source_images[0], *frames[:: max(1, command.frames // 6)]])
    scale = max(1, 96 // batch.source_images.shape[-1])
    save_image_grid(strips, out / "overview.png", row_labels=list(predictions), scale=scale)
    console.print(f"wrote {len(predictions)} .ply files and turntables to {out} (overview.png shows them all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
