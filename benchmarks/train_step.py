"""Time and peak memory of one optimizer step of each stage: teacher, stage 1 (bootstrap) and stage 2 (multi-step,
10 DDIM steps, activation checkpointing on and off), on a fixed batch.

CPU (default): the `tiny` networks at 32x32 (the scale of the CPU tests and the cpu-demo), batch 2 objects x 4 views.
`--full` adds the cpu-demo networks at batch 4. On a CUDA machine `--full` also measures the paper presets (128x128,
Splatter Image teacher, `medium` student, stage-2 batch 10 and 100) and searches the largest stage-2 batch that fits
in GPU memory with checkpointing.

    uv run benchmarks/train_step.py            # quick
    uv run benchmarks/train_step.py --full
"""

import functools
import math
from dataclasses import replace

import torch
from _measure import machine, megabytes, parse_mode, peak_memory, table, timed

from splat_render import Cameras, Gaussians, fov_to_focal, intrinsics, look_at, render, rigid_inverse
from splat_render.sh import rgb_to_sh_dc
from splat_teachers import SplatterImage, SplatterImageConfig, UNetConfig, head_preset, unet_preset
from splat_train import BootstrapConfig, DiffusionConfig, GaussianDenoiser, MultistepConfig, StudentConfig, ViewBatch
from splat_train.stages import bootstrap_loss, multistep_loss

FOV = 51.98948897809546


def make_batch(batch: int, views: int, size: int, device: str) -> ViewBatch:
    """Random blobs seen from a source camera and `views` cameras orbiting them (relative to the source)."""
    generator = torch.Generator().manual_seed(0)
    centre = torch.tensor([0.0, 0.0, 1.3])
    poses = []
    for v in range(views + 1):
        angle = math.radians(0 if v == 0 else -60 + 120 * v / views)
        offset = torch.tensor([math.sin(angle), 0.0, -math.cos(angle)]) * 1.3
        poses.append(look_at(centre + offset, centre, torch.tensor([0.0, -1.0, 0.0])))
    c2w = torch.stack(poses)
    c2w = (rigid_inverse(c2w[:1]) @ c2w)[None].expand(batch, -1, -1, -1)
    focal = fov_to_focal(FOV, size)
    K = intrinsics(focal, focal, size / 2, size / 2).expand(batch, views + 1, 3, 3).clone()
    cameras = Cameras.from_cam_to_world(c2w.clone(), K, size, size, 0.2, 100.0)
    count = 2000
    scene = Gaussians(
        means=centre + 0.25 * torch.randn(batch, count, 3, generator=generator),
        quats=torch.randn(batch, count, 4, generator=generator),
        scales=0.01 + 0.03 * torch.rand(batch, count, 3, generator=generator),
        opacities=0.5 + 0.5 * torch.rand(batch, count, generator=generator),
        sh=rgb_to_sh_dc(torch.rand(batch, count, 3, generator=generator))[:, :, None],
    )
    with torch.no_grad():
        images = render(scene, cameras, background=1.0).rgb
    return ViewBatch(images[:, 0], cameras.select_views(0), images[:, 1:], cameras.select_views(slice(1, None))).to(
        device
    )


def models(kind: str, size: int, device: str) -> tuple[SplatterImage, GaussianDenoiser]:
    if kind == "tiny":
        teacher_unet = UNetConfig(
            resolution=size, model_channels=16, channel_mult=(1, 2, 2), num_blocks=1, attn_resolutions=(8,), dropout=0.0
        )
        student_unet = UNetConfig(
            resolution=size,
            in_channels=27,
            model_channels=16,
            channel_mult=(1, 2, 2),
            num_blocks=1,
            attn_resolutions=(8,),
            dropout=0.0,
            noise_embedding=True,
        )
    elif kind == "cpu-demo":
        teacher_unet = UNetConfig(
            resolution=size, model_channels=32, channel_mult=(1, 2, 2), num_blocks=2, attn_resolutions=(8,), dropout=0.0
        )
        student_unet = UNetConfig(
            resolution=size,
            in_channels=27,
            model_channels=24,
            channel_mult=(1, 2, 2),
            num_blocks=1,
            attn_resolutions=(8,),
            dropout=0.0,
            noise_embedding=True,
        )
    else:  # the paper presets
        teacher_unet, student_unet = unet_preset("splatter-image"), unet_preset("medium")
    head = replace(head_preset("cars"), resolution=size)
    teacher = SplatterImage(SplatterImageConfig(unet=teacher_unet, head=head))
    student = GaussianDenoiser(StudentConfig(unet=student_unet), teacher.map_spec)
    return teacher.to(device), student.to(device)


def one_step(stage: str, kind: str, batch_size: int, views: int, size: int, device: str, checkpoint: bool = True):
    """Setup: returns a closure running one forward + backward + Adam step of `stage`."""
    torch.manual_seed(0)
    teacher, student = models(kind, size, device)
    batch = make_batch(batch_size, views, size, device).with_seeds(range(batch_size))
    diffusion, white = DiffusionConfig(), (1.0, 1.0, 1.0)
    schedule = diffusion.make_schedule().to(device)
    if stage == "teacher":
        optimizer = torch.optim.Adam(teacher.parameters(), lr=1e-4, eps=1e-15)

        def loss_fn() -> torch.Tensor:
            output = teacher(batch.source_images, batch.source_cameras)
            rendered = render(output.gaussians, batch.target_cameras, background=1.0).rgb
            return (rendered - batch.target_images).square().mean()
    else:
        teacher.eval().requires_grad_(False)
        optimizer = torch.optim.Adam(student.parameters(), lr=1e-4)
        if stage == "bootstrap":
            config = BootstrapConfig()

            def loss_fn() -> torch.Tensor:
                return bootstrap_loss(
                    student, teacher, schedule, batch, config, t_star=diffusion.t_star, background=white
                ).loss
        else:
            config = MultistepConfig(checkpoint_steps=checkpoint)

            def loss_fn() -> torch.Tensor:
                return multistep_loss(
                    student, teacher, schedule, batch, config, diffusion=diffusion, background=white
                ).loss

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn().backward()
        optimizer.step()

    return step


def measure(stage: str, kind: str, batch_size: int, views: int, size: int, device: str, checkpoint: bool = True):
    setup = functools.partial(one_step, stage, kind, batch_size, views, size, device, checkpoint)
    seconds = timed(setup(), repeats=2)
    memory = peak_memory(setup, device)
    return seconds, memory


def main() -> None:
    args = parse_mode(__doc__.splitlines()[0])
    print(f"## train_step\n\nMachine: {machine()}\n")
    configs = [("tiny", 2, 4, 32, "cpu")]
    if args.full:
        configs.append(("cpu-demo", 4, 4, 32, "cpu"))
        if torch.cuda.is_available():
            configs += [("paper", 10, 4, 128, "cuda"), ("paper", 100, 4, 128, "cuda")]
    rows = []
    for kind, batch_size, views, size, device in configs:
        for stage, checkpoint in [("teacher", True), ("bootstrap", True), ("multistep", True), ("multistep", False)]:
            try:
                seconds, memory = measure(stage, kind, batch_size, views, size, device, checkpoint)
                result = [f"{seconds:.3f} s", megabytes(memory)]
            except torch.OutOfMemoryError:
                result = ["out of memory", "-"]
            label = stage if stage != "multistep" else f"multistep (checkpoint {'on' if checkpoint else 'off'})"
            rows.append([kind, f"{batch_size}x{views}", f"{size}", label, *result])
    print(table(["networks", "objects x views", "px", "stage", "time / step", "peak memory"], rows))
    if args.full and torch.cuda.is_available():
        low, high = 1, 512
        while low < high:  # the largest stage-2 batch (checkpointing on) that fits
            middle = (low + high + 1) // 2
            try:
                measure("multistep", "paper", middle, 4, 128, "cuda", True)
                low = middle
            except torch.OutOfMemoryError:
                high = middle - 1
            torch.cuda.empty_cache()
        print(f"\nlargest stage-2 batch that fits on {torch.cuda.get_device_name()} with checkpointing: {low}")
    print()


if __name__ == "__main__":
    main()
