"""The one loop skeleton shared by every stage runner (teacher, bootstrap, multistep), on one process or many.

A stage supplies a model, an optimizer over its parameters, its data — a `BatchSource` (any number of ranks) or
an old `sample_batch(step, generator)` callable (one process) — and a `compute_loss(batch, generator) -> LossOutput`
function; the loop does the rest, identically for every stage:

* seeded and deterministic on CPU: data comes from the `BatchSource` in the order of `splat_train.sharding` (or from
  the callable, drawing from the loop's checkpointed generator); the global torch RNG (dropout) is re-seeded every
  step from (seed, step, rank); so `resume` continues bit-for-bit;
* gradient clipping, optional bf16 autocast on CUDA, EMA of the weights (decay, every N steps, from step M);
* a progress bar with the loss and throughput, a JSON-lines metrics log (`metrics.jsonl`);
* atomic checkpoints every N steps and at exit; on resume the newest checkpoint of the stage is loaded and log
  lines past it are dropped;
* a NaN/Inf loss or gradient stops the run with `NonFiniteLossError` naming the step and the last good checkpoint
  (the weights before the bad step are saved; nothing is lost).

Under torchrun (a process group of W > 1 ranks, see `splat_train.distributed`) the model and its loss are wrapped
in `DistributedDataParallel`, which averages the gradients; each rank draws `batch_size` items per step (global
batch = batch_size × W); optimizer, clipping and EMA run on every rank on identical gradients, so the weights stay
identical; only rank 0 logs, shows the progress bar and writes checkpoints (followed by a barrier); every rank loads
the checkpoint rank 0 names on resume — also with another W, continuing at the checkpoint's step (the global batch
then changes with W). A non-finite loss or gradient on any rank stops every rank (the flags are all-reduced first).
The run directory must be visible to every rank (one machine, or a shared filesystem across nodes).
"""

import gc
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from . import distributed
from .batch import BatchSource
from .checkpoint import (
    TrainingState,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    load_module_state,
    save_checkpoint,
)
from .sharding import ShardedSampler, step_seed


@dataclass(frozen=True)
class LoopConfig:
    """Optimisation and bookkeeping shared by all stages."""

    max_steps: int = 1000  # optimizer steps of this stage
    grad_clip: float | None = 1.0  # max global gradient norm; None disables clipping
    ema_decay: float = 0.9999  # EMA of the weights (Splatter Image: 0.9999)
    ema_every: int = 10  # update the EMA every N steps (Splatter Image: 10)
    ema_start: int = 100  # start the EMA after this many steps (before: EMA = weights)
    checkpoint_every: int = 1000  # write a checkpoint every N steps (and always at the end)
    keep_checkpoints: int = 2  # how many checkpoints of the stage to keep on disk
    log_every: int = 10  # metrics.jsonl / progress-bar refresh every N steps
    seed: int = 0  # seeds the data order, the per-sample seeds, the stage's generator and the global torch RNG
    bf16: bool = False  # bf16 autocast of the forward pass (CUDA only; ignored on CPU)
    progress: bool = True  # show a progress bar


@dataclass(frozen=True)
class LossOutput:
    """A scalar loss to minimise plus named, detached terms for logging."""

    loss: Tensor
    terms: dict[str, float] = field(default_factory=dict)


class NonFiniteLossError(RuntimeError):
    """Raised when the loss or the gradient norm is NaN or Inf."""


class ExponentialMovingAverage:
    """EMA of a module's floating-point parameters and buffers: ema ← d·ema + (1 − d)·w (buffers copied)."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        for key, value in module.state_dict().items():
            if value.is_floating_point():
                self.shadow[key].lerp_(value.detach(), 1 - self.decay)
            else:
                self.shadow[key].copy_(value)

    @torch.no_grad()
    def copy_from(self, module: nn.Module) -> None:
        for key, value in module.state_dict().items():
            self.shadow[key].copy_(value)

    def state_dict(self) -> dict[str, Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for key, value in state.items():
            self.shadow[key].copy_(value)


@dataclass(frozen=True)
class LoopResult:
    steps: int  # the step count reached (== config.max_steps unless stopped early)
    last_checkpoint: Path
    final_loss: float
    ema: dict[str, Tensor]


def to_jsonable(config: Any) -> Any:
    if is_dataclass(config) and not isinstance(config, type):
        return {k: to_jsonable(v) for k, v in asdict(config).items()}
    if isinstance(config, dict):
        return {str(k): to_jsonable(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [to_jsonable(v) for v in config]
    if isinstance(config, Path):
        return str(config)
    return config


def _rng_state(generator: torch.Generator) -> dict[str, Tensor]:
    # the global torch RNG needs no saving: it is re-seeded every step from (seed, step, rank)
    return {"generator": generator.get_state()}


class _StageLoss(nn.Module):
    """The trained model and its loss as one module, so that DistributedDataParallel sees the model's parameters
    (its only submodule; a frozen teacher stays outside, in the loss function's closure) and prepares the gradient
    all-reduce in its forward. forward(batch, generator) -> (loss, terms)."""

    def __init__(self, model: nn.Module, compute_loss: Callable[[Any, torch.Generator], LossOutput]) -> None:
        super().__init__()
        self.model = model
        self.compute_loss = compute_loss

    def forward(self, batch: Any, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        output = self.compute_loss(batch, generator)
        return output.loss, output.terms


def _reduce_step(loss: float, terms: dict[str, float]) -> tuple[list[float], dict[str, float]]:
    """Every rank's loss (indexed by rank) and the terms averaged over ranks, in one all-reduce."""
    world, rank = distributed.world_size(), distributed.rank()
    if world == 1:
        return [loss], terms
    names = sorted(terms)
    values = [0.0] * world + [terms[name] / world for name in names]
    values[rank] = loss
    reduced = distributed.all_reduce_floats(values, "sum")
    return reduced[:world], dict(zip(names, reduced[world:], strict=True))


def _ranks(indices: list[int]) -> str:
    return f" on rank{'s' if len(indices) > 1 else ''} {', '.join(map(str, indices))}"


def _truncate_log(path: Path, stage: str, step: int) -> None:
    """Drop log lines of `stage` past `step` (written after the checkpoint we resume from)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record.get("stage") == stage and record.get("step", 0) > step:
            continue
        kept.append(line)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("".join(f"{line}\n" for line in kept))
    os.replace(temporary, path)


def run_loop(
    *,
    stage: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    compute_loss: Callable[[Any, torch.Generator], LossOutput],
    config: LoopConfig,
    run_dir: str | os.PathLike,
    batches: BatchSource | None = None,
    sample_batch: Callable[[int, torch.Generator], Any] | None = None,
    stage_config: Any = None,
    extra_state: dict[str, Any] | None = None,
    before_step: Callable[[int], None] | None = None,
) -> LoopResult:
    """Train `model` for `config.max_steps` steps, resuming from `run_dir/checkpoints/<stage>` if present.

    Data: `batches`, a `BatchSource` (`batches.batch_size` items per rank and step), or `sample_batch(step,
    generator)` (single process only); exactly one of them. `before_step(step)` is called before each step's batch is
    drawn (e.g. to switch a loss term on at some step). Under a process group of several ranks every rank must call
    this with the same arguments (see the module docstring).
    """
    if (batches is None) == (sample_batch is None):
        raise ValueError(f"{stage}: give exactly one of batches (a BatchSource) and sample_batch (a callable)")
    world, rank, main = distributed.world_size(), distributed.rank(), distributed.is_main()
    sampler = None
    if batches is not None:
        if not isinstance(batches, BatchSource):
            raise ValueError(
                f"{stage}: batches must be a BatchSource (num_items, batch_size, make_batch(items, seeds))"
            )
        sampler = ShardedSampler(batches.num_items, batches.batch_size, seed=config.seed, rank=rank, world_size=world)
    elif world > 1:
        raise ValueError(
            f"{stage}: a sample_batch(step, generator) callable cannot be split across {world} ranks; "
            "give a BatchSource (splat_train.BatchSource) instead"
        )
    run_dir = Path(run_dir)
    checkpoint_dir = run_dir / "checkpoints" / stage
    log_path = run_dir / "metrics.jsonl"
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    saved_config = {
        "loop": to_jsonable(config),
        "stage": to_jsonable(stage_config),
        "world_size": world,
        "batch_size": None if batches is None else batches.batch_size,
    }
    extra = dict(extra_state or {})

    step = 0
    resume_from = distributed.broadcast_object(latest_checkpoint(checkpoint_dir) if main else None)
    if resume_from is not None:
        state = load_checkpoint(resume_from)  # the same file on every rank
        load_module_state(model, state.model, what=f"{stage} model", source=resume_from)
        optimizer.load_state_dict(state.optimizer)
        generator.set_state(state.rng["generator"])
        step = state.step
        extra = state.extra or extra
        if main:
            _truncate_log(log_path, stage, step)

    trained: nn.Module = _StageLoss(model, compute_loss)
    if world > 1:
        # DDP broadcasts rank 0's parameters and buffers here, then averages gradients in backward. Every trainable
        # parameter must take part in every step's loss (the stage losses mask terms instead of skipping them).
        trained = DistributedDataParallel(
            trained, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=False
        )
    ema = ExponentialMovingAverage(model, config.ema_decay)  # after DDP's broadcast: the same on every rank
    if resume_from is not None:
        ema.load_state_dict(state.ema)

    def save(rng: dict[str, Tensor] | None = None) -> Path:
        """Rank 0 writes (atomically), every rank waits for it; returns the checkpoint's path on every rank."""
        if main:
            save_checkpoint(
                checkpoint_dir,
                TrainingState(
                    step=step,
                    model=model.state_dict(),
                    ema=ema.state_dict(),
                    optimizer=optimizer.state_dict(),
                    rng=rng if rng is not None else _rng_state(generator),
                    config=saved_config,
                    extra=extra,
                ),
                keep=config.keep_checkpoints,
            )
        distributed.barrier()
        return checkpoint_path(checkpoint_dir, step)

    last_checkpoint = resume_from if resume_from is not None else save()
    final_loss = math.nan
    autocast = config.bf16 and device.type == "cuda"
    progress = Progress(
        TextColumn(f"[bold]{stage}[/bold]"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not (config.progress and main),
    )
    trained.train()
    log = open(log_path, "a") if main else None  # closed in `finally`
    try:
        with progress:
            task = progress.add_task(stage, total=config.max_steps, completed=step, status="")
            window_start, window_steps = time.perf_counter(), 0
            while step < config.max_steps:
                if before_step is not None:
                    before_step(step)
                rng_before = _rng_state(generator)  # so that a failed step can be checkpointed as never having started
                torch.manual_seed(step_seed(config.seed, step, rank))  # dropout
                if sampler is not None:
                    plan = sampler.batch(step)
                    batch = batches.make_batch(list(plan.items), list(plan.seeds))
                else:
                    batch = sample_batch(step, generator)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                    loss, terms = trained(batch, generator)
                losses, terms = _reduce_step(float(loss.detach()), terms)
                bad = [r for r, value in enumerate(losses) if not math.isfinite(value)]
                if bad:  # every rank sees the same list: all stop together, before any backward
                    last_checkpoint = save(rng_before)  # weights and RNG as before this step: nothing is lost
                    where = _ranks(bad) if world > 1 else ""
                    raise NonFiniteLossError(
                        f"{stage}: loss is {losses[bad[0]]} at step {step + 1}{where}; stopped. The last good "
                        f"checkpoint is {last_checkpoint} (state after step {step})"
                    )
                loss_value = sum(losses) / world
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # DDP: gradients averaged over the ranks
                parameters = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
                max_norm = config.grad_clip if config.grad_clip is not None else math.inf
                grad_norm = float(torch.nn.utils.clip_grad_norm_(parameters, max_norm)) if parameters else 0.0
                if not distributed.all_true(math.isfinite(grad_norm)):
                    optimizer.zero_grad(set_to_none=True)
                    last_checkpoint = save(rng_before)
                    raise NonFiniteLossError(
                        f"{stage}: gradient norm is {grad_norm} at step {step + 1} (loss {loss_value}); stopped. "
                        f"The last good checkpoint is {last_checkpoint} (state after step {step})"
                    )
                optimizer.step()
                step += 1
                if step <= config.ema_start:
                    ema.copy_from(model)
                elif step % config.ema_every == 0:
                    ema.update(model)
                final_loss = loss_value
                window_steps += 1
                if log is not None and (step % config.log_every == 0 or step == config.max_steps):
                    elapsed = time.perf_counter() - window_start
                    record = {
                        "stage": stage,
                        "step": step,
                        "loss": loss_value,
                        **terms,
                        "grad_norm": grad_norm,
                        "lr": optimizer.param_groups[0]["lr"],
                        "steps_per_s": window_steps / max(elapsed, 1e-9),
                        "world_size": world,
                        "time": time.time(),
                    }
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    progress.update(task, status=f"loss {loss_value:.4g} · {record['steps_per_s']:.2f} it/s")
                    window_start, window_steps = time.perf_counter(), 0
                progress.update(task, completed=step)
                if step % config.checkpoint_every == 0 or step == config.max_steps:
                    last_checkpoint = save()
    finally:
        if log is not None:
            log.close()
        if world > 1:
            # drop DDP's gradient hooks on the model's parameters before a later stage wraps them again
            del trained
            gc.collect()
    return LoopResult(steps=step, last_checkpoint=last_checkpoint, final_loss=final_loss, ema=ema.state_dict())
