"""torch.distributed for the stage runners and the apps: start from torchrun's environment, and the few collectives
the training loop needs — with a single-process no-op path, so that `uv run apps/<app>/train.py` works unchanged
(how to launch: README.md, "Training on one GPU, several GPUs, several nodes").

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT for every process; `init_distributed`
reads them (`init_method="env://"`) and starts a process group: NCCL when training on CUDA (each process on
`cuda:LOCAL_RANK`), gloo on the CPU. Without torchrun's environment nothing is started and every helper below
answers for one process (rank 0 of 1; collectives return their input; barriers return at once).

The helpers read torch.distributed's own state (`dist.is_initialized()`), so there is no state of ours to pass
around: the loop works the same whether the app, a test or nobody started the process group.
"""

import os
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Literal, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")
ReduceOp = Literal["sum", "mean", "min", "max"]
_TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    """Whether this process was started by torchrun (or anything else that sets its environment variables)."""
    return all(name in os.environ for name in _TORCHRUN_VARIABLES)


def local_rank() -> int:
    """This process's index on its node (torchrun's LOCAL_RANK; 0 for a single process)."""
    return int(os.environ.get("LOCAL_RANK", "0")) if launched_by_torchrun() else 0


def rank_device(device: str | torch.device) -> torch.device:
    """The device of this process: `cuda` (without an index) under torchrun means `cuda:LOCAL_RANK`. A fixed index
    (`cuda:1`) is kept for one process per node, and refused for several (they would all share that GPU)."""
    device = torch.device(device)
    if device.type != "cuda" or not launched_by_torchrun():
        return device
    if device.index is None:
        return torch.device("cuda", local_rank())
    if int(os.environ.get("LOCAL_WORLD_SIZE", "1")) > 1:
        raise ValueError(
            f"device {device} under torchrun with several processes per node: pass `cuda` (no index); "
            "each process then takes cuda:LOCAL_RANK"
        )
    return device


def init_distributed(device: str | torch.device = "cpu", *, timeout: timedelta | None = None) -> torch.device:
    """Start the process group from torchrun's environment (NCCL on CUDA, gloo on the CPU) and return this
    process's device. Without torchrun's environment (or when a group is already running) nothing is started.

    `device` is the app's `--device`: under torchrun `cuda` becomes `cuda:LOCAL_RANK` (and is made the current
    CUDA device, as NCCL needs).
    """
    device = rank_device(device)
    if not launched_by_torchrun() or dist.is_initialized():
        return device
    if not dist.is_available():
        raise ValueError("launched by torchrun, but this PyTorch build has no torch.distributed")
    if device.type == "cuda":
        if not torch.cuda.is_available() or device.index >= torch.cuda.device_count():
            raise ValueError(
                f"--device cuda under torchrun needs GPU {device.index} (LOCAL_RANK) on this node; "
                f"{torch.cuda.device_count()} visible (use --nproc-per-node <= the number of GPUs)"
            )
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", init_method="env://", timeout=timeout, device_id=device)
    else:
        dist.init_process_group("gloo", init_method="env://", timeout=timeout)
    return device


def shutdown() -> None:
    """Destroy the process group if one is running (every rank must call it; a no-op otherwise)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    """This process's global rank (0 for a single process)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """How many processes train together (1 for a single process)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """Whether this is rank 0, the process that logs, evaluates and writes files."""
    return rank() == 0


def _collective_device() -> torch.device:
    """Where collective tensors live: the current CUDA device for NCCL, the CPU for gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    """Wait until every rank gets here (a no-op for a single process)."""
    if world_size() > 1:
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def all_reduce_floats(values: Sequence[float], op: ReduceOp = "sum") -> list[float]:
    """Element-wise reduction of Python floats over all ranks (float64); every rank gets the result."""
    values = [float(v) for v in values]
    if world_size() == 1 or not values:
        return values
    if op not in ("sum", "mean", "min", "max"):
        raise ValueError(f"op must be 'sum', 'mean', 'min' or 'max', got {op!r}")
    tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    torch_op = {"sum": dist.ReduceOp.SUM, "mean": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}
    dist.all_reduce(tensor, op=torch_op[op])
    if op == "mean":
        tensor /= world_size()
    return tensor.tolist()


def all_reduce(value: float, op: ReduceOp = "sum") -> float:
    """A Python float reduced over all ranks (`sum`, `mean`, `min`, `max`); every rank gets the result."""
    return all_reduce_floats([value], op)[0]


def all_true(flag: bool) -> bool:
    """True on every rank when `flag` is true on every rank (e.g. "my loss is finite")."""
    return all_reduce(1.0 if flag else 0.0, "min") == 1.0


def all_gather_floats(value: float) -> list[float]:
    """Every rank's `value`, indexed by rank (a one-element list for a single process)."""
    gathered = [0.0] * world_size()
    gathered[rank()] = float(value)
    return all_reduce_floats(gathered, "sum") if world_size() > 1 else gathered


def broadcast_object(value: T) -> T:
    """Rank 0's `value` (any picklable object) on every rank."""
    if world_size() == 1:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0, device=_collective_device())
    return holder[0]


def on_main(fn: Callable[[], T], *, errors: tuple[type[Exception], ...] = (ValueError,)) -> T:
    """Run `fn` on rank 0 only (e.g. write a file) and give its result to every rank. When it raises one of `errors`,
    every rank raises a `ValueError` with its message, so that no rank is left waiting for the others."""
    result, failure = None, None
    if is_main():
        try:
            result = fn()
        except errors as error:
            if world_size() == 1:
                raise
            failure = error
    result, message = broadcast_object((result, None if failure is None else str(failure)))
    if failure is not None:
        raise failure
    if message is not None:
        raise ValueError(message)
    return result
