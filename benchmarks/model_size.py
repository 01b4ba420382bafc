"""How large are the teachers and the student, against the efficiency table of "A Lesson in Splats"?

For every preset: parameters, fp32 weights, the size of a checkpoint holding the weights *and* Adam's two moment
tensors (the paper's "MB" column matches that accounting: 56,378,736 parameters x 3 x 4 bytes = 645 MiB for
Splatter Image), and the peak memory of one inference at batch 1 on CPU (a fresh process: peak resident set above
the loaded model) and, on a CUDA machine, on the GPU (peak allocated above the loaded model). Paper (Table
"efficiency"): Splatter Image (Large) 646 MB / 1.71 GB VRAM; Ours (Medium) 295 MB / 1.15 GB VRAM.

    uv run benchmarks/model_size.py            # quick: counts, computed checkpoint sizes, CPU memory of tiny presets
    uv run benchmarks/model_size.py --full     # measured checkpoint sizes and inference memory of every preset
"""

import functools
import io
import multiprocessing
import re

import torch
from _measure import machine, megabytes, parse_mode, peak_memory, table

from splat_teachers import (
    Flash3D,
    GaussianMapNetwork,
    SplatterImage,
    flash3d_preset,
    splatter_image_preset,
    unet_preset,
)

# name -> (description, measure its inference memory in --quick too)
PRESETS = {
    "splatter-image (cars)": ("teacher: U-Net `splatter-image` + 1x1 conv + head, 128 px", False),
    "student medium": ("student denoiser: U-Net `medium` + 1x1 conv (27 -> 24 ch, noise embedding), 128 px", False),
    "splatter-image tiny": ("tests: U-Net `tiny`, 32 px", True),
    "flash3d re10k": ("Flash3D: ResNet-50 + decoders + learned depth head (ResNet-18), 256x384", False),
    "flash3d tiny": ("tests: ResNet-10 bodies, narrow decoders, 32x32", False),
}


def build(name: str) -> torch.nn.Module:
    if name == "splatter-image (cars)":
        return SplatterImage(splatter_image_preset("cars"))
    if name == "student medium":
        return GaussianMapNetwork(unet_preset("medium"))
    if name == "splatter-image tiny":
        return SplatterImage(splatter_image_preset("tiny"))
    if name == "flash3d re10k":
        return Flash3D(flash3d_preset("re10k"))
    if name == "flash3d tiny":
        return Flash3D(flash3d_preset("tiny"))
    raise ValueError(f"unknown preset {name!r}")


def inference(name: str, device: str = "cpu"):
    """Setup for `peak_memory`: builds the model and inputs, returns one batch-1 inference (no autograd)."""
    model = build(name).eval().to(device)
    if isinstance(model, GaussianMapNetwork):
        config = model.config
        x = torch.rand(1, config.in_channels, config.resolution, config.resolution, device=device)
        noise_labels = torch.full((1,), 0.5, device=device)

        def run():
            with torch.no_grad():
                return model(x, noise_labels)

        return run
    if isinstance(model, SplatterImage):
        size = model.config.unet.resolution
        images, cameras = torch.rand(1, 3, size, size, device=device), model.input_cameras(1)
    else:
        config = model.config
        images = torch.rand(1, 3, config.height, config.width, device=device)
        K = torch.tensor(
            [[0.6 * config.width, 0, config.width / 2], [0, 0.6 * config.width, config.height / 2], [0, 0, 1.0]],
            device=device,
        )
        from splat_render import Cameras

        cameras = Cameras(torch.eye(4, device=device)[None, None], K[None, None], config.width, config.height)

    def run():
        with torch.no_grad():
            return model(images, cameras)

    return run


def _kilobytes(field: str) -> int:
    with open("/proc/self/status") as status:
        return int(re.search(rf"{field}:\s+(\d+) kB", status.read()).group(1))


def _cpu_child(setup, threads: int, queue) -> None:
    torch.set_num_threads(threads)
    fn = setup()
    before = _kilobytes("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset this process's peak RSS (VmHWM) to its current RSS
    fn()
    queue.put(1024 * max(0, _kilobytes("VmHWM") - before))


def cpu_peak_memory(setup) -> int:
    """Peak resident bytes of the first call above the resident set just before it, in a fresh process (a second
    call would reuse memory the allocator kept, and read lower). Not `_measure.peak_memory`: the ru_maxrss of a
    spawned child includes the parent's resident set at fork time, which here holds large checkpoints."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_cpu_child, args=(setup, torch.get_num_threads(), queue))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"memory measurement child exited with {process.exitcode}")
    return queue.get()


def counts(name: str) -> tuple[int, int]:
    """(parameters, buffer elements), from a model built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        model = build(name)
    return sum(p.numel() for p in model.parameters()), sum(b.numel() for b in model.buffers())


def checkpoint_bytes(name: str) -> int:
    """Bytes of `torch.save({"model": state_dict, "optimizer": Adam state_dict})` after one Adam step."""
    model = build(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    return buffer.tell()


def main() -> None:
    args = parse_mode(__doc__.splitlines()[0])
    print(f"model_size ({'full' if args.full else 'quick'}), {machine()}\n")
    cuda = torch.cuda.is_available()
    header = ["preset", "what", "parameters", "fp32 weights", "checkpoint incl. Adam", "CPU inference peak, b=1"]
    if cuda:
        header.append("GPU inference peak, b=1")
    rows, sizes = [], {}
    for name, (what, small) in PRESETS.items():
        parameters, buffers = counts(name)
        weights = 4 * (parameters + buffers)
        if args.full:
            checkpoint = megabytes(checkpoint_bytes(name))
        else:
            checkpoint = megabytes(weights + 8 * parameters) + " (computed)"
        sizes[name] = (parameters, weights + 8 * parameters)
        if args.full or small:
            cpu = megabytes(cpu_peak_memory(functools.partial(inference, name)))
        else:
            cpu = "(--full)"
        row = [name, what, f"{parameters:,}", megabytes(weights), checkpoint, cpu]
        if cuda:
            row.append(megabytes(peak_memory(functools.partial(inference, name, "cuda"), "cuda")))
        rows.append(row)
    print(table(header, rows))
    print("\n(inference peaks are above the loaded model: add the fp32 weights for the total)")

    teacher, student = sizes["splatter-image (cars)"], sizes["student medium"]
    print("\nAgainst the paper's efficiency table (MB = 2^20 bytes of weights + Adam moments):\n")
    print(
        table(
            ["model", "paper: checkpoint", "ours: checkpoint (computed)", "ours: parameters", "paper: VRAM"],
            [
                ["Splatter Image (Large)", "646 MB", megabytes(teacher[1]), f"{teacher[0]:,}", "1.71 GB"],
                [
                    "Ours (Medium) / our `medium`",
                    "295 MB (about 25.8M parameters)",
                    megabytes(student[1]),
                    f"{student[0]:,}",
                    "1.15 GB",
                ],
                [
                    "ratio student / teacher",
                    f"{295 / 646:.2f}",
                    f"{student[1] / teacher[1]:.2f}",
                    f"{student[0] / teacher[0]:.2f}",
                    f"{1.15 / 1.71:.2f}",
                ],
            ],
        )
    )
    if not cuda:
        print("\n(no CUDA device here: GPU inference memory not measured)")


if __name__ == "__main__":
    main()
