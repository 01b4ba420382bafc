"""Sample 3D Gaussians from a trained SRN student: an image (+ optional camera) → N samples → `.ply` files and a
turntable animation per sample (and the teacher's prediction, for comparison).

    uv run apps/srn/sample.py runs/srn-cpu-demo                       # input view of the first test object
    uv run apps/srn/sample.py runs/srn-cars --image car.png --num-samples 8
    uv run apps/srn/sample.py runs/srn-cars --image car.png --intrinsics intrinsics.txt --format mp4

The image is resized to the model's resolution and composited on white if it has alpha; without `--intrinsics` (an
SRN `intrinsics.txt`) the dataset head's fixed field of view is used. Samples differ only by their starting noise
(`--seed`, then seed + 1, ...).
"""

import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import tyro
from rich.console import Console

# isort: off
from data import collate, default_input_view, read_image, read_intrinsics, resize_images
from eval import load_models
from experiment import RENDER_FAR, RENDER_NEAR, dataset_root, load_experiment, open_split, to_view_batch

# isort: on
from splat_render import Cameras, Gaussians, render
from splat_render.ply import save_ply
from splat_train import sample
from splat_train.visualize import check_animation_format, save_animation, save_image_grid, turntable_cameras


@dataclass(frozen=True)
class SampleCommand:
    """Sample Gaussians from a trained SRN run."""

    run_dir: tyro.conf.Positional[Path]
    image: Path | None = None  # an RGB(A) image; default: the input view of test object --object-index
    intrinsics: Path | None = None  # SRN intrinsics.txt of the image (default: the head's fixed field of view)
    object_index: int = 0  # test object used when no --image is given
    num_samples: int = 4
    t_start: int | None = None  # default: the run's eval t_start
    seed: int = 0
    out: Path | None = None  # default: <run_dir>/samples/<image or object>
    frames: int = 36  # turntable frames
    format: str = "gif"  # gif or mp4 (mp4 needs imageio's ffmpeg plugin)
    device: str | None = None


def load_input(command: SampleCommand, experiment, teacher) -> tuple[torch.Tensor, Cameras, str]:
    resolution = teacher.config.unet.resolution
    if command.image is None:
        dataset = open_split(experiment, experiment.eval.split, dataset_root(experiment))
        if not 0 <= command.object_index < len(dataset):
            raise ValueError(
                f"--object-index {command.object_index}: the {dataset.split} split has {len(dataset)} objects"
            )
        example = dataset.evaluation_example(
            command.object_index, default_input_view(dataset.num_views(command.object_index))
        )
        batch = to_view_batch(collate([example]), experiment.device)
        return batch.source_images, batch.source_cameras, example.object_id
    image = read_image(command.image)
    height, width = image.shape[-2:]
    if command.intrinsics is not None:
        K = read_intrinsics(command.intrinsics).matrix(resolution, resolution)
    else:
        K = teacher.head.default_intrinsics(1)[0]
    image = (
        resize_images(image[None], resolution, resolution)
        if (height, width) != (resolution, resolution)
        else image[None]
    )
    eye = torch.eye(4)[None, None]
    cameras = Cameras(eye, K.float()[None, None], resolution, resolution, RENDER_NEAR, RENDER_FAR)
    return image.float().to(experiment.device), cameras.to(experiment.device), command.image.stem


def turntable(gaussians: Gaussians, cameras: Cameras, frames: int, background: torch.Tensor) -> torch.Tensor:
    """Frames of the scene circling its opacity-weighted centre at the input camera's distance."""
    weights = gaussians.opacities[0, :, None]
    center = (gaussians.means[0] * weights).sum(0) / weights.sum()
    orbit = turntable_cameras(
        center.cpu(),
        float(center.norm()),
        cameras.K[0, 0].cpu(),
        cameras.width,
        cameras.height,
        frames=frames,
        near=RENDER_NEAR,
        far=RENDER_FAR,
    )
    with torch.no_grad():
        return render(gaussians, orbit.to(gaussians.device), background=background).rgb[0]


def main(argv: list[str] | None = None) -> int:
    command = tyro.cli(SampleCommand, args=argv, description=__doc__)
    console = Console()
    try:
        experiment = load_experiment(command.run_dir)
        experiment = replace(experiment, run_dir=command.run_dir, device=command.device or experiment.device)
        dataset = open_split(experiment, experiment.eval.split, dataset_root(experiment))
        teacher, student = load_models(experiment, dataset.load(0, [0]).images.shape[-1])
        images, cameras, name = load_input(command, experiment, teacher)
        check_animation_format(command.format)
    except ValueError as error:
        console.print(f"[red]error:[/red] {error}")
        return 1
    out = command.out or command.run_dir / "samples" / name
    schedule = experiment.diffusion.make_schedule().to(experiment.device)
    background = torch.tensor(experiment.multistep.background, device=experiment.device)
    t_start = command.t_start if command.t_start is not None else experiment.eval.t_start
    with torch.no_grad():
        predictions = {"teacher": teacher(images, cameras).gaussians}
        samples = sample(
            student,
            teacher,
            schedule,
            images,
            cameras,
            num_samples=command.num_samples,
            t_start=t_start,
            steps=experiment.diffusion.ddim_steps,
            generator=torch.Generator().manual_seed(command.seed),
        )
    predictions |= {f"sample_{i + 1}": g for i, g in enumerate(samples)}
    strips = []
    for label, gaussians in predictions.items():
        save_ply(gaussians, out / f"{label}.ply")
        frames = turntable(gaussians, cameras, command.frames, background)
        save_animation(frames, out / f"{label}.{command.format}")
        strips.append([images[0], *frames[:: max(1, command.frames // 6)]])
    save_image_grid(strips, out / "overview.png", row_labels=list(predictions), scale=max(1, 96 // images.shape[-1]))
    console.print(f"wrote {len(predictions)} .ply files and turntables to {out} (overview.png shows them all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
