"""Sample 3D Gaussians from a trained RealEstate10K student: a source frame (or any image + intrinsics) → N samples →
`.ply` files and a short fly-through animation per sample (and the teacher's prediction, for comparison).

    uv run apps/re10k/sample.py runs/re10k-cpu-demo                     # source frame of the split file's row 0
    uv run apps/re10k/sample.py runs/re10k --row 120 --num-samples 8
    uv run apps/re10k/sample.py runs/re10k --image room.jpg --intrinsics 0.47 0.84 0.5 0.5 --format mp4

The image is resized to the run's image size; `--intrinsics` are RealEstate10K's normalized `fx fy cx cy` (row 0 of K
divided by the width, row 1 by the height), otherwise a horizontal field of view with square pixels is assumed.
Gaussians live in the source camera's frame (OpenCV: x right, y down, z forward). The fly-through moves forward into
the scene and back while swaying sideways and turning, scaled by the median depth of the teacher's Gaussians.
Samples differ only by their starting noise (`--seed`).
"""

import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import tyro
from jaxtyping import Float
from PIL import Image, UnidentifiedImageError
from rich.console import Console
from torch import Tensor

# isort: off
from data import FAR, NEAR, load_example, pixel_intrinsics
from eval import load_models
from experiment import RE10KExperiment, data_source, load_experiment, open_split
from protocol import read_split

# isort: on
from splat_render import Cameras, Gaussians, render
from splat_render.ply import save_ply
from splat_train import sample
from splat_train.visualize import check_animation_format, save_animation, save_image_grid


@dataclass(frozen=True)
class SampleCommand:
    """Sample Gaussians from a trained RealEstate10K run."""

    run_dir: tyro.conf.Positional[Path]
    image: Path | None = None  # an RGB image; default: the source frame of split-file row --row
    intrinsics: tuple[float, float, float, float] | None = None  # normalized fx fy cx cy of --image
    fov_degrees: float = 90.0  # horizontal field of view of --image when no --intrinsics are given
    row: int = 0  # row of the run's split file whose source frame is used when no --image is given
    num_samples: int = 4
    t_start: int | None = None  # default: the run's eval t_start
    seed: int = 0
    out: Path | None = None  # default: <run_dir>/samples/<image name or key_frame>
    frames: int = 36  # fly-through frames
    format: str = "gif"  # gif or mp4 (mp4 needs imageio's ffmpeg plugin)
    device: str | None = None


def source_camera(K: Float[Tensor, "3 3"], height: int, width: int) -> Cameras:
    """The input camera: identity pose (the world frame is the source camera's), K in pixels."""
    return Cameras(torch.eye(4)[None, None], K.float()[None, None], width, height, NEAR, FAR)


def read_image(path: Path, height: int, width: int) -> Float[Tensor, "3 height width"]:
    """Any RGB(A) image file as RGB in [0, 1], resized (LANCZOS) to height × width."""
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    except (OSError, UnidentifiedImageError) as error:
        raise ValueError(f"--image {path}: cannot read it as an image ({error})") from None
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def load_input(
    command: SampleCommand, experiment: RE10KExperiment
) -> tuple[Float[Tensor, "1 3 height width"], Cameras, str]:
    height, width = experiment.image_size
    if command.image is None:
        source = data_source(experiment)
        rows = read_split(source.split_file)
        if not 0 <= command.row < len(rows):
            raise ValueError(f"--row {command.row}: {source.split_file} has {len(rows)} rows")
        row = rows[command.row]
        try:
            sequence = open_split(experiment, source, experiment.eval.split)[row.key]
        except KeyError as error:
            raise ValueError(f"--row {command.row}: {error}") from None
        example = load_example(sequence, [row.src], (height, width))
        return example.images, source_camera(example.K[0], height, width), f"{row.key}_{row.src}"
    if command.intrinsics is not None:
        fx, fy, cx, cy = command.intrinsics
        if fx <= 0 or fy <= 0:
            raise ValueError(f"--intrinsics: focal lengths must be positive, got fx={fx}, fy={fy}")
    else:
        if not 0 < command.fov_degrees < 180:
            raise ValueError(f"--fov-degrees must be in (0, 180), got {command.fov_degrees}")
        fx = 0.5 / math.tan(math.radians(command.fov_degrees) / 2)
        fy, cx, cy = fx * width / height, 0.5, 0.5
    normalized = torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    K = pixel_intrinsics(normalized, height, width)
    return read_image(command.image, height, width)[None], source_camera(K, height, width), command.image.stem


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


def fly_through(gaussians: Gaussians, cameras: Cameras, depth: float, frames: int, background: Tensor) -> Tensor:
    path = fly_through_cameras(cameras.K[0, 0].cpu(), cameras.width, cameras.height, depth, frames)
    with torch.no_grad():
        return render(gaussians, path.to(gaussians.device), background=background).rgb[0]


def main(argv: list[str] | None = None) -> int:
    command = tyro.cli(SampleCommand, args=argv, description=__doc__)
    console = Console()
    try:
        check_animation_format(command.format)
        experiment = load_experiment(command.run_dir)
        experiment = replace(experiment, run_dir=command.run_dir, device=command.device or experiment.device)
        teacher, student = load_models(experiment)
        images, cameras, name = load_input(command, experiment)
    except ValueError as error:
        console.print(f"[red]error:[/red] {error}")
        return 1
    device = experiment.device
    images, cameras = images.to(device), cameras.to(device)
    out = command.out or command.run_dir / "samples" / name
    schedule = experiment.diffusion.make_schedule().to(device)
    background = torch.tensor(experiment.eval.background, device=device)
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
    depth = float(predictions["teacher"].means[0, :, 2].median())
    strips = []
    for label, gaussians in predictions.items():
        save_ply(gaussians, out / f"{label}.ply")
        frames = fly_through(gaussians, cameras, depth, command.frames, background)
        save_animation(frames, out / f"{label}.{command.format}")
        strips.append([images[0], *frames[:: max(1, command.frames // 6)]])
    save_image_grid(strips, out / "overview.png", row_labels=list(predictions), scale=max(1, 192 // images.shape[-1]))
    console.print(f"wrote {len(predictions)} .ply files and fly-throughs to {out} (overview.png shows them all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
