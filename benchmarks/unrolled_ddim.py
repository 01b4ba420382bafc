"""Question: what do activation checkpointing's memory savings and time overhead look like for one forward+backward
through 10 unrolled DDIM steps (the paper's multi-step training) of a UNet-sized denoiser?

Both modes run in the same process on the same inputs: `unrolled_ddim(..., checkpoint=False)` keeps every step's
activations for backward; `checkpoint=True` keeps only each step's inputs and recomputes its activations during
backward. The loss is the paper's shape, sum_t lambda_t * loss(x0_hat_t), with a pixel MSE standing in for the
rendering loss and lambda_t = min-SNR weights.

Peak memory is measured, not estimated. On CPU: `torch.profiler` with `profile_memory=True` records every CPU
allocator allocation and free in the forward+backward; the peak of their running sum is the most memory the step held
at once beyond what existed before it (parameters and inputs excluded; activations, trajectory, gradients and
temporaries included); "held for backward" is the running sum when backward starts. On CUDA:
`torch.cuda.max_memory_allocated` above the starting allocation. With `--full` on Linux, a second method cross-checks
the first: the growth of the resident set (VmHWM after a /proc/self/clear_refs reset, minus VmRSS before) over the
same forward+backward in a fresh process per mode. The per-call activation size of the denoiser is also reported:
the bytes autograd saves for backward during one call, counted with `torch.autograd.graph.saved_tensors_hooks`
(storages counted once, parameters left out).

The default denoiser, `ConvUNet`, is a stand-in with the activation sizes of a small UNet at 128x128 (27 input
channels = 3-channel conditioning image + 24-channel Gaussian map, 24 output channels); `--denoiser student-medium`
unrolls the student U-Net of splat-teachers instead (where that package provides it). Any `denoise(x_t, t) -> x0_hat`
can be passed to `run_benchmark`.

    uv run python benchmarks/unrolled_ddim.py            # --quick: small sizes, seconds
    uv run python benchmarks/unrolled_ddim.py --full     # 128x128, the sizes of benchmarks/RESULTS.md
    uv run python benchmarks/unrolled_ddim.py --full --denoiser student-medium --batch 1
"""

import argparse
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # keep the profiler's startup chatter off stderr

import torch
from torch import Tensor, nn
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

from splat_diffusion import Schedule, ddim_timesteps, sdedit_start, timestep_weights, unrolled_ddim

Denoise = Callable[[Tensor, Tensor], Tensor]


# ------------------------------------------------------------------------------------------------- stand-in denoiser


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.time = nn.Linear(temb, cout)
        self.norm2, self.conv2 = nn.GroupNorm(8, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x))) + self.time(emb)[:, :, None, None]
        h = self.conv2(nn.functional.silu(self.norm2(h)))
        return self.skip(x) + h


class ConvUNet(nn.Module):
    """Encoder-decoder with skips: `levels` resolutions (halving), `blocks` ResBlocks per level each way,
    channels base * 2**level, a learned timestep embedding."""

    def __init__(
        self, in_channels: int = 27, out_channels: int = 24, base: int = 32, levels: int = 3, blocks: int = 1
    ) -> None:
        super().__init__()
        temb = 4 * base
        self.embed = nn.Sequential(nn.Embedding(1000, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.stem = nn.Conv2d(in_channels, base, 3, padding=1)
        widths = [base * 2**i for i in range(levels)]
        self.down = nn.ModuleList()
        self.pool = nn.ModuleList()
        cin = base
        for i, width in enumerate(widths):
            self.down.append(nn.ModuleList([ResBlock(cin if j == 0 else width, width, temb) for j in range(blocks)]))
            cin = width
            if i + 1 < levels:
                self.pool.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
        self.mid = ResBlock(cin, cin, temb)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(levels)):
            width = widths[i]
            self.up.append(
                nn.ModuleList([ResBlock((cin + width) if j == 0 else width, width, temb) for j in range(blocks)])
            )
            cin = width
            if i > 0:
                self.upsample.append(nn.ConvTranspose2d(width, widths[i - 1], 2, stride=2))
                cin = widths[i - 1]
        self.head = nn.Sequential(nn.GroupNorm(8, base), nn.SiLU(), nn.Conv2d(base, out_channels, 3, padding=1))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        emb = self.embed(t)
        h = self.stem(x)
        skips = []
        for i, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb)
            skips.append(h)
            if i < len(self.pool):
                h = self.pool[i](h)
        h = self.mid(h, emb)
        for i, blocks in enumerate(self.up):
            h = torch.cat([h, skips.pop()], dim=1)
            for block in blocks:
                h = block(h, emb)
            if i < len(self.upsample):
                h = self.upsample[i](h)
        return self.head(h)


def conditioned_denoiser(model: nn.Module, image: Tensor) -> Denoise:
    """denoise(x_t, t) = model([image, x_t], t): the Gaussian map is denoised conditioned on the input image."""

    def denoise(x_t: Tensor, t: Tensor) -> Tensor:
        return model(torch.cat([image, x_t], dim=1), t)

    return denoise


# ------------------------------------------------------------------------------------------------------ measurement


def saved_bytes_per_call(denoise: Denoise, x: Tensor, t: Tensor, params: list[Tensor]) -> int:
    """Activation bytes autograd saves for backward during one denoiser call (each storage counted once; the
    parameters, which autograd also saves but which exist anyway, are left out)."""
    existing = {p.untyped_storage().data_ptr() for p in params}
    seen: dict[int, int] = {}

    def pack(tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in existing:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        denoise(x, t)
    return sum(seen.values())


def forward_backward(
    denoise: Denoise, x_start: Tensor, target: Tensor, timesteps: Tensor, schedule: Schedule, checkpoint: bool
) -> None:
    trajectory = unrolled_ddim(denoise, x_start, timesteps, schedule, checkpoint=checkpoint)
    weights = timestep_weights(schedule, timesteps).tolist()
    # mse_loss saves references to its inputs, not copies: the loss adds no step-proportional memory of its own.
    loss = sum(
        w * nn.functional.mse_loss(x0_hat, target) for w, x0_hat in zip(weights, trajectory.x0_hats, strict=True)
    )
    with record_function(BACKWARD):
        loss.backward()


BACKWARD = "unrolled_ddim_benchmark.backward"


@dataclass(frozen=True)
class Memory:
    peak: int  # most bytes held at once during forward+backward, beyond what existed before
    held: int  # bytes held when backward starts: what the forward keeps alive for backward (+ the trajectory)


def measure_memory(run: Callable[[], None], device: torch.device) -> Memory:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        run()
        torch.cuda.synchronize(device)
        return Memory(peak=torch.cuda.max_memory_allocated(device) - start, held=-1)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    events = prof.profiler.kineto_results.events()
    backward_start = min(e.start_ns() for e in events if e.name() == BACKWARD)
    allocations = sorted(
        (e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]" and e.device_type() == DeviceType.CPU
    )
    live = peak = 0
    held = None
    for start_ns, nbytes in allocations:
        if held is None and start_ns >= backward_start:
            held = live
        live += nbytes
        peak = max(peak, live)
    return Memory(peak=peak, held=live if held is None else held)


def seconds(run: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


@dataclass(frozen=True)
class Result:
    checkpoint: bool
    seconds: float
    memory: Memory


@dataclass(frozen=True)
class Problem:
    """One multi-step training step's inputs: the noisy-teacher start, the target, the DDIM grid."""

    x_start: Tensor
    target: Tensor
    timesteps: Tensor
    schedule: Schedule


def make_problem(x0_teacher: Tensor, target: Tensor, num_steps: int = 10, t_start: int = 99) -> Problem:
    schedule = Schedule.linear(100)
    noise = torch.randn(
        x0_teacher.shape, generator=torch.Generator(x0_teacher.device).manual_seed(0), device=x0_teacher.device
    )
    x_start = sdedit_start(schedule, x0_teacher, t_start, noise)
    return Problem(x_start, target, ddim_timesteps(schedule, num_steps, t_start), schedule)


def run_benchmark(denoise: Denoise, params: list[Tensor], problem: Problem, *, repeats: int = 1) -> list[Result]:
    """Time (best of `repeats`) and memory of forward+backward through the unrolled DDIM steps of `problem`, with
    checkpointing off and on, alternating so both modes see the same machine state."""
    device = problem.x_start.device

    def run(checkpoint: bool, steps: Tensor = problem.timesteps) -> Callable[[], None]:
        return lambda: forward_backward(denoise, problem.x_start, problem.target, steps, problem.schedule, checkpoint)

    def clear_grads() -> None:  # outside the measured region: frees the previous run's gradients
        for p in params:
            p.grad = None

    for checkpoint in (False, True):  # warm-up (one-time kernel/primitive setup for these shapes)
        run(checkpoint, problem.timesteps[:2])()
    times = {False: [], True: []}
    for _ in range(repeats):
        for checkpoint in (False, True):
            clear_grads()
            times[checkpoint].append(seconds(run(checkpoint), device))
    results = []
    for checkpoint in (False, True):
        clear_grads()
        results.append(Result(checkpoint, min(times[checkpoint]), measure_memory(run(checkpoint), device)))
    return results


# ---------------------------------------------------------------------------------------------- the stand-in setup


DENOISERS = ("conv-unet", "student-medium")


def build(denoiser: str, size: int, batch: int, base: int, device: torch.device) -> tuple[nn.Module, Denoise, Problem]:
    """The denoiser, conditioned on a random image, and a random problem (all seeded).

    "conv-unet": the `ConvUNet` stand-in (width `base`). "student-medium": the student U-Net of splat-teachers
    (`GaussianMapNetwork(unet_preset("medium"))`, 27 -> 24 channels, noise embedding), imported only when asked for.
    """
    torch.manual_seed(0)
    if denoiser == "conv-unet":
        model = ConvUNet(in_channels=27, out_channels=24, base=base)
    elif denoiser == "student-medium":
        from splat_teachers.unet import GaussianMapNetwork, unet_preset

        model = GaussianMapNetwork(unet_preset("medium"))
    else:
        raise ValueError(f"denoiser must be one of {DENOISERS}, got {denoiser!r}")
    model = model.to(device)
    g = torch.Generator(device).manual_seed(1)
    image = torch.rand(batch, 3, size, size, generator=g, device=device)
    x0_teacher = torch.randn(batch, 24, size, size, generator=g, device=device)
    target = torch.randn(batch, 24, size, size, generator=g, device=device)
    return model, conditioned_denoiser(model, image), make_problem(x0_teacher, target)


def _rss_child(denoiser: str, size: int, batch: int, base: int, threads: int, checkpoint: bool, queue: Any) -> None:
    """In a fresh process: the kernel's resident-set high-water mark (VmHWM, reset through /proc/self/clear_refs)
    over one forward+backward, minus the resident set before it (after a warm-up)."""

    def status(field: str) -> int:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))

    torch.set_num_threads(threads)
    model, denoise, problem = build(denoiser, size, batch, base, torch.device("cpu"))
    run = partial(
        forward_backward, denoise, problem.x_start, problem.target, schedule=problem.schedule, checkpoint=checkpoint
    )
    run(timesteps=problem.timesteps[:2])
    model.zero_grad(set_to_none=True)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status("VmRSS")
    run(timesteps=problem.timesteps)
    queue.put(status("VmHWM") - before)


def rss_high_water(denoiser: str, size: int, batch: int, base: int, threads: int, checkpoint: bool) -> int:
    """Cross-check of the profiler's numbers by a second method: the process's resident-set growth (Linux only)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_rss_child, args=(denoiser, size, batch, base, threads, checkpoint, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes (default; what CI runs)")
    mode.add_argument("--full", action="store_true", help="128x128, batch 4, UNet base width 32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--denoiser", choices=DENOISERS, default="conv-unet", help="what to unroll (see build())")
    parser.add_argument("--batch", type=int, default=None, help="override the batch size")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: 1 --quick, torch's --full)")
    args = parser.parse_args()
    full = args.full
    device = torch.device(args.device)
    size, batch, base, repeats = (128, 4, 32, 3) if full else (32, 2, 16, 2)
    batch = args.batch or batch
    if args.denoiser == "student-medium":
        size = 128  # the U-Net preset's fixed resolution, also under --quick
    # --quick's tensors are too small for intra-op parallelism to pay off, and on a shared 2-core machine a second
    # thread makes every op wait at a barrier for a descheduled thread: one thread keeps it fast and steady.
    threads = args.threads or (torch.get_num_threads() if full else 1)
    torch.set_num_threads(threads)

    model, denoise, problem = build(args.denoiser, size, batch, base, device)
    steps = problem.timesteps.shape[0]
    params = list(model.parameters())
    per_call = saved_bytes_per_call(denoise, problem.x_start, problem.timesteps[0].expand(batch), params)
    results = run_benchmark(denoise, params, problem, repeats=repeats)
    off, on = results
    cpu = device.type == "cpu"
    # The second memory method needs fresh processes (a few seconds each): --full on Linux CPUs only.
    rss = (
        {c: rss_high_water(args.denoiser, size, batch, base, threads, c) for c in (False, True)}
        if full and cpu
        else None
    )

    mib = 2**20
    count = sum(p.numel() for p in params)
    where = f"{threads} CPU threads" if cpu else torch.cuda.get_device_name(device)
    name = f"ConvUNet base {base}" if args.denoiser == "conv-unet" else "student U-Net `medium` (splat-teachers)"
    print(f"## unrolled_ddim ({'full' if full else 'quick'})\n")
    print(
        f"{steps} DDIM steps from t = {int(problem.timesteps[0])}, batch {batch}, {size}x{size}, 24-channel map + "
        f"3-channel image; {name} ({count / 1e6:.2f} M params); one denoiser call saves "
        f"{per_call / mib:.1f} MiB for backward ({steps} calls: {steps * per_call / mib:.0f} MiB); {where}, "
        f"torch {torch.__version__}.\n"
    )
    header = [
        "checkpoint",
        "forward+backward (s)",
        "time vs unrolled",
        "peak memory (MiB)",
        "peak vs unrolled",
        "held for backward (MiB)",
        "held vs unrolled",
    ]
    if rss:
        header += ["RSS growth (MiB)", "RSS vs unrolled"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in results:
        row = [
            "on" if r.checkpoint else "off",
            f"{r.seconds:.2f}",
            f"{r.seconds / off.seconds:.2f}x",
            f"{r.memory.peak / mib:.0f}",
            f"{r.memory.peak / off.memory.peak:.3f}",
        ]
        row += [f"{r.memory.held / mib:.0f}", f"{r.memory.held / off.memory.held:.3f}"] if cpu else ["n/a", "n/a"]
        if rss:
            row += [f"{rss[r.checkpoint] / mib:.0f}", f"{rss[r.checkpoint] / rss[False]:.3f}"]
        print("| " + " | ".join(row) + " |")
    print(
        f"\nCheckpointed peak memory is {on.memory.peak / off.memory.peak:.3f} of unrolled (1/{steps} = "
        f"{1 / steps:.3f}); time overhead {100 * (on.seconds / off.seconds - 1):+.0f}%."
    )


if __name__ == "__main__":
    main()
