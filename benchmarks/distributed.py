"""Training steps per second on 1 vs 2 gloo ranks (torchrun, CPU) at the tiny preset, the same global batch.

Each configuration is a real `torchrun --nproc-per-node W` launch (`python -m torch.distributed.run`) of this
script in worker mode, running a stage runner (`splat_train.stages`) on random blobs (a `BatchSource`) with a
global batch of 4 objects x 2 target views: 1 rank x 4 objects, or 2 ranks x 2 objects (DDP averages the gradients).
Every rank uses one torch thread, so 2 ranks use twice the cores of 1 rank (`--full` adds 1 rank with 2 threads,
the same cores as 2 ranks). On a 2-core CPU shared with other work expect little gain; the point is correctness.
Steps/s: the median over the timed steps of the loop's own per-step `steps_per_s` log records (after 2 warm-up
steps), from rank 0.

    uv run benchmarks/distributed.py            # quick: teacher stage, 6 timed steps
    uv run benchmarks/distributed.py --full     # teacher, stage 1 and stage 2, 20 timed steps
"""

import argparse
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from _measure import machine, table

from splat_render import Cameras, Gaussians, fov_to_focal, intrinsics, look_at, render, rigid_inverse
from splat_render.sh import rgb_to_sh_dc
from splat_teachers import SplatterImage, UNetConfig, splatter_image_preset
from splat_train import (
    BootstrapConfig,
    DiffusionConfig,
    GaussianDenoiser,
    LoopConfig,
    MultistepConfig,
    StudentConfig,
    TeacherStageConfig,
    ViewBatch,
    bootstrap,
    distributed,
    multistep,
    train_teacher,
)
from splat_train.runs import fit_normalizer

SIZE, VIEWS, GLOBAL_BATCH, WARMUP = 32, 2, 4, 2
FOV = 51.98948897809546
CENTRE = torch.tensor([0.0, 0.0, 1.3])


class Blobs:
    """A `BatchSource` of 16 random blobs; each object's target cameras are drawn from its seed."""

    def __init__(self, batch_size: int) -> None:
        self.num_items, self.batch_size = 16, batch_size

    def make_batch(self, items: Sequence[int], seeds: Sequence[int]) -> ViewBatch:
        images, cameras = [], []
        for item, seed in zip(items, seeds, strict=True):
            g = torch.Generator().manual_seed(seed)
            scene_g = torch.Generator().manual_seed(item)
            scene = Gaussians(
                means=CENTRE + 0.25 * torch.randn(1, 1000, 3, generator=scene_g),
                quats=torch.randn(1, 1000, 4, generator=scene_g),
                scales=0.01 + 0.03 * torch.rand(1, 1000, 3, generator=scene_g),
                opacities=0.5 + 0.5 * torch.rand(1, 1000, generator=scene_g),
                sh=rgb_to_sh_dc(torch.rand(1, 1000, 3, generator=scene_g))[:, :, None],
            )
            poses = []
            for angle in [0.0, *(-60 + 120 * torch.rand(VIEWS, generator=g)).tolist()]:
                offset = torch.tensor([math.sin(math.radians(angle)), 0.0, -math.cos(math.radians(angle))]) * 1.3
                poses.append(look_at(CENTRE + offset, CENTRE, torch.tensor([0.0, -1.0, 0.0])))
            c2w = torch.stack(poses)
            focal = fov_to_focal(FOV, SIZE)
            K = intrinsics(focal, focal, SIZE / 2, SIZE / 2).expand(1, VIEWS + 1, 3, 3).clone()
            camera = Cameras.from_cam_to_world((rigid_inverse(c2w[:1]) @ c2w)[None], K, SIZE, SIZE, 0.2, 100.0)
            with torch.no_grad():
                images.append(render(scene, camera, background=1.0).rgb)
            cameras.append(camera)
        rgb, camera = torch.cat(images), Cameras.cat(cameras, along="batch")
        return ViewBatch(rgb[:, 0], camera.select_views(0), rgb[:, 1:], camera.select_views(slice(1, None)))


def tiny_models() -> tuple[SplatterImage, GaussianDenoiser]:
    teacher = SplatterImage(splatter_image_preset("tiny"), generator=torch.Generator().manual_seed(0))
    unet = UNetConfig(
        resolution=SIZE,
        in_channels=27,
        out_channels=24,
        model_channels=16,
        channel_mult=(1, 2, 2),
        num_blocks=1,
        attn_resolutions=(8,),
        noise_embedding=True,
        dropout=0.0,
    )
    student = GaussianDenoiser(StudentConfig(unet=unet), teacher.map_spec, generator=torch.Generator().manual_seed(0))
    return teacher, student


WHITE = (1.0, 1.0, 1.0)


def train(stage: str, run_dir: Path, steps: int, log_every: int) -> None:
    """`steps` steps of `stage` (resuming from `run_dir`), global batch GLOBAL_BATCH over the ranks."""
    batches = Blobs(GLOBAL_BATCH // distributed.world_size())
    loop = LoopConfig(max_steps=steps, log_every=log_every, progress=False, checkpoint_every=10**6)
    teacher, student = tiny_models()
    if stage == "teacher":
        train_teacher(teacher, batches, TeacherStageConfig(loop=loop), run_dir, background=WHITE)
        return
    fit_normalizer(student, teacher, batches, batches=1)
    shared = {"diffusion": DiffusionConfig(ddim_steps=10), "background": WHITE}
    if stage == "bootstrap":
        bootstrap(student, teacher, batches, BootstrapConfig(loop=loop), run_dir, **shared)
    else:
        multistep(student, teacher, batches, MultistepConfig(loop=loop), run_dir, **shared)


def worker(stage: str, run_dir: Path, steps: int, threads: int) -> None:
    torch.set_num_threads(threads)
    distributed.init_distributed("cpu")
    try:
        train(stage, run_dir, WARMUP + steps, log_every=1)
    finally:
        distributed.shutdown()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(stage: str, ranks: int, steps: int, threads: int, workdir: Path) -> float:
    """Steps per second of `stage` on `ranks` gloo ranks (each with `threads` torch threads) started by torchrun."""
    run_dir = workdir / f"{stage}-{ranks}x{threads}"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={ranks}",
        "--master-addr=127.0.0.1",
        f"--master-port={free_port()}",
        __file__,
        "--worker",
        stage,
        str(run_dir),
        str(steps),
        str(threads),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["steps_per_s"] for r in records if r["step"] > WARMUP)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        stage, run_dir, steps, threads = sys.argv[2:]
        worker(stage, Path(run_dir), int(steps), int(threads))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="teacher stage, 6 timed steps (default; what CI runs)")
    group.add_argument("--full", action="store_true", help="all three stages, 20 timed steps")
    args = parser.parse_args()
    stages, steps = (["teacher", "bootstrap", "multistep"], 20) if args.full else (["teacher"], 6)
    setups = [(1, 1), (2, 1), (1, 2)] if args.full else [(1, 1), (2, 1)]  # (ranks, threads per rank)
    print(f"## distributed\n\nMachine: {machine()}\n")
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for stage in stages:
            rates = {(ranks, threads): launch(stage, ranks, steps, threads, Path(workdir)) for ranks, threads in setups}
            for (ranks, threads), rate in rates.items():
                per_rank = GLOBAL_BATCH // ranks
                rows.append(
                    [
                        stage,
                        f"{ranks} x {threads}",
                        f"{ranks} x {per_rank} = {GLOBAL_BATCH}",
                        f"{rate:.2f}",
                        f"{rate / rates[(1, 1)]:.2f}x",
                    ]
                )
    headers = ["stage (tiny, 32 px)", "ranks x threads", "objects (ranks x per rank)", "steps/s", "vs 1 rank x 1"]
    print(table(headers, rows))
    print(f"\n{VIEWS} target views per object; median of {steps} timed steps after {WARMUP} warm-up steps; gloo.\n")


if __name__ == "__main__":
    main()
