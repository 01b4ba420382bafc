"""The one loop skeleton shared by every stage runner (teacher, bootstrap, multistep), on one process or many.

A stage supplies a model, an optimizer over its parameters, its data — a `BatchSource` — and a
`compute_loss(batch) -> LossOutput` function; the loop does the rest, identically for every stage:

* seeded and deterministic on CPU: data comes from the `BatchSource` in the order of `splat_train.sharding`, each
  batch carrying its per-sample seeds; the global torch RNG (dropout) is re-seeded every step from (seed, step,
  rank); so `resume` continues bit-for-bit;
* gradient clipping, optional bf16 autocast on CUDA, EMA of the weights (decay, every N steps, from step M);
* a JSON-lines metrics log (`metrics.jsonl`) and an optional `progress` callback (`LoopProgress`) that a command
  line turns into a progress bar — this package prints nothing;
* atomic, checksummed checkpoints every N steps and at exit; on resume the newest good checkpoint of the stage is
  loaded (a corrupt one is set aside with a warning) and log lines past it, or torn by a crash, are dropped;
* SIGTERM, SIGINT (Ctrl-C) or SIGUSR1 (SLURM's `--signal`) finish the current step, write a checkpoint and raise
  `TrainingStopped` ("stopped at <stage> step N; run the same command to resume");
* a NaN/Inf loss or gradient, weights that became non-finite, Gaussians with non-finite values or a loss that no
  longer depends on the weights stop the run with `NonFiniteLossError` naming the stage, the step, the loss terms,
  the learning rate and the last good checkpoint (nothing is lost).

Under torchrun the model and its loss are wrapped in `DistributedDataParallel`; what runs on which rank, the global
batch and resuming on another world size: README.md, "Training on one GPU, several GPUs, several nodes".
"""

import dataclasses
import gc
import json
import math
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from splat_render import NonFiniteInputError
from splat_teachers.config_io import to_jsonable

from . import distributed
from .batch import BatchSource, ViewBatch
from .checkpoint import (
    TrainingState,
    checkpoint_path,
    latest_good_checkpoint,
    load_checkpoint,
    load_module_state,
    save_checkpoint,
)
from .sharding import ShardedSampler, step_seed
from .validation import Problem, at_least, check_config, positive


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
    seed: int = 0  # seeds the data order, the per-sample seeds and the global torch RNG (dropout)
    bf16: bool = False  # bf16 autocast of the forward pass (CUDA only; ignored on CPU)
    progress: bool = True  # report progress (the command line shows a progress bar)

    def problems(self) -> list[Problem]:
        minimums = {"max_steps": 0, "ema_every": 1, "ema_start": 0, "checkpoint_every": 1, "log_every": 1}
        found = at_least(self, minimums | {"keep_checkpoints": 1}) + positive(self, ["grad_clip"])
        if not 0 <= self.ema_decay <= 1:
            found.append(("ema_decay", "must be in [0, 1]"))
        return found


@dataclass(frozen=True)
class LoopProgress:
    """What the loop reports to its `progress` callback: after every step, and with the logged `record` (loss terms,
    steps/s, ...) every `log_every` steps. `step == 0` with `record is None` announces a (re)started stage."""

    stage: str
    step: int
    total: int
    record: dict[str, Any] | None = None


ProgressCallback = Callable[[LoopProgress], None]


@dataclass(frozen=True)
class LossOutput:
    """A scalar loss to minimise plus named, detached terms for logging."""

    loss: Tensor
    terms: dict[str, float] = field(default_factory=dict)


class NonFiniteLossError(RuntimeError):
    """The run diverged: a NaN/Inf loss, gradient, weight or Gaussian, or a loss without gradient."""


class TrainingStopped(RuntimeError):
    """A stage stopped on a signal after writing a checkpoint; `exit_code` is 128 + the signal's number."""

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signal_number


STOP_SIGNALS = ("SIGTERM", "SIGINT", "SIGUSR1")


@contextmanager
def _stop_requests() -> Iterator[dict[str, int]]:
    """A dict whose "signal" the first SIGTERM / SIGINT / SIGUSR1 sets (the loop stops after the current step); a
    second SIGINT interrupts at once. The previous handlers come back on exit; outside the main thread nothing is
    installed (Python delivers signals to the main thread only)."""
    requested: dict[str, int] = {}
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def handler(number: int, frame: object) -> None:
        if number == signal.SIGINT and "signal" in requested:
            raise KeyboardInterrupt
        requested.setdefault("signal", number)

    previous = {}
    for name in STOP_SIGNALS:
        if hasattr(signal, name):
            previous[getattr(signal, name)] = signal.signal(getattr(signal, name), handler)
    try:
        yield requested
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


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


class _StageLoss(nn.Module):
    """The trained model and its loss as one module, so that DistributedDataParallel sees the model's parameters
    (its only submodule; a frozen teacher stays outside, in the loss function's closure) and prepares the gradient
    all-reduce in its forward. forward(batch) -> (loss, terms)."""

    def __init__(self, model: nn.Module, compute_loss: Callable[[Any], LossOutput]) -> None:
        super().__init__()
        self.model = model
        self.compute_loss = compute_loss

    def forward(self, batch: Any) -> tuple[Tensor, dict[str, float]]:
        output = self.compute_loss(batch)
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


def _repair_log(path: Path, stage: str, step: int) -> None:
    """Drop log lines of `stage` past `step` (written after the checkpoint we resume from) and lines that are not
    JSON objects (torn by a crash or a full disk; one RuntimeWarning names the file and the line numbers)."""
    if not path.is_file():
        return
    kept, torn = [], []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            torn.append(number)
        elif not (record.get("stage") == stage and record.get("step", 0) > step):
            kept.append(line)
    if torn:
        warnings.warn(f"{path}: dropped unreadable line(s) {torn} (torn by a crash?)", RuntimeWarning, stacklevel=3)
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    temporary.write_text("".join(f"{line}\n" for line in kept))
    os.replace(temporary, path)


def _wrap_for_ranks(model: nn.Module, compute_loss: Callable, device: torch.device) -> nn.Module:
    """The model and its loss as one module; in DDP with several ranks. DDP broadcasts rank 0's parameters and
    buffers here, then averages gradients in backward: every trainable parameter must take part in every step's loss
    (the stage losses mask terms instead of skipping them)."""
    trained: nn.Module = _StageLoss(model, compute_loss)
    if distributed.world_size() > 1:
        trained = DistributedDataParallel(
            trained, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=False
        )
    return trained


def _non_finite_fields(batch: Any) -> list[str]:
    """The tensor fields of a batch (a dataclass) holding NaN or Inf, with the batch positions affected."""
    if not dataclasses.is_dataclass(batch):
        return []
    found = []
    for item in dataclasses.fields(batch):
        value = getattr(batch, item.name)
        if isinstance(value, Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            rows = (~torch.isfinite(value)).flatten(1).any(1).nonzero().flatten().tolist() if value.ndim else []
            found.append(f"{item.name} (batch positions {rows})" if rows else item.name)
    return found


def _diverged(
    stage: str, step: int, what: str, terms: dict[str, float], lr: float, last_good: Path, batch: Any = None
) -> str:
    shown = ", ".join(f"{name} {value:.4g}" for name, value in terms.items()) or "none logged yet"
    bad_data = _non_finite_fields(batch)
    advice = (
        f"the batch itself holds NaN/Inf in {', '.join(bad_data)}: check the dataset (--check-data), then start from it"
        if bad_data
        else "if the run diverged, lower the learning rate and start from it"
    )
    return (
        f"{stage}: {what} at step {step + 1} (loss terms: {shown}; learning rate {lr:g}); stopped. The last good "
        f"checkpoint is {last_good}; {advice}"
    )


def _step_gradients(
    stage: str,
    step: int,
    trained: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Any,
    config: LoopConfig,
    autocast: bool,
    checkpoint_before: Callable[[], Path],
    last_good: Path,
    last_terms: dict[str, float],
) -> tuple[float, dict[str, float], float]:
    """Forward, a finite-loss check on every rank, backward and clipping; returns (loss averaged over ranks, terms,
    gradient norm). A non-finite loss or gradient norm on any rank saves the state before this step on rank 0
    (`checkpoint_before`) and raises `NonFiniteLossError` on every rank; so do non-finite Gaussians (weights that
    overflow) and a loss that does not depend on the weights, naming the newest checkpoint on disk (`last_good`) and
    the terms of the last logged step (`last_terms`) instead of saving."""
    world = distributed.world_size()
    lr = optimizer.param_groups[0]["lr"]
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            loss, terms = trained(batch)
    except NonFiniteInputError as error:
        what = f"rendering failed ({error})"
        raise NonFiniteLossError(_diverged(stage, step, what, last_terms, lr, last_good, batch)) from None
    losses, terms = _reduce_step(float(loss.detach()), terms)
    bad = [r for r, value in enumerate(losses) if not math.isfinite(value)]
    if bad:  # every rank sees the same list: all stop together, before any backward
        where = _ranks(bad) if world > 1 else ""
        raise NonFiniteLossError(
            _diverged(stage, step, f"loss is {losses[bad[0]]}{where}", terms, lr, checkpoint_before(), batch)
            + f" (state after step {step})"
        )
    if not distributed.all_true(loss.requires_grad):
        what = "the loss does not depend on the weights (every Gaussian culled or transparent?)"
        raise NonFiniteLossError(_diverged(stage, step, what, terms, lr, last_good))
    loss_value = sum(losses) / world
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # DDP: gradients averaged over the ranks
    parameters = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    max_norm = config.grad_clip if config.grad_clip is not None else math.inf
    grad_norm = float(torch.nn.utils.clip_grad_norm_(parameters, max_norm)) if parameters else 0.0
    if not distributed.all_true(math.isfinite(grad_norm)):
        optimizer.zero_grad(set_to_none=True)
        raise NonFiniteLossError(
            _diverged(stage, step, f"gradient norm is {grad_norm}", terms, lr, checkpoint_before())
            + f" (state after step {step})"
        )
    return loss_value, terms, grad_norm


def _weights_finite(optimizer: torch.optim.Optimizer) -> bool:
    parameters = [p.detach() for group in optimizer.param_groups for p in group["params"]]
    return bool(torch.stack([torch.isfinite(p).all() for p in parameters]).all()) if parameters else True


def run_loop(
    *,
    stage: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: BatchSource,
    compute_loss: Callable[[ViewBatch], LossOutput],
    config: LoopConfig,
    run_dir: str | os.PathLike,
    stage_config: Any = None,
    before_step: Callable[[int], None] | None = None,
    progress: ProgressCallback | None = None,
) -> LoopResult:
    """Train `model` for `config.max_steps` steps, resuming from `run_dir/checkpoints/<stage>` if present.

    Each step draws `batches.batch_size` items per rank from `batches` (a `BatchSource`), with their per-sample seeds
    set on the batch when it is a `ViewBatch` (`ViewBatch.seeds`). `before_step(step)` is called before each step's
    batch is drawn (e.g. to switch a loss term on at some step); `progress` (rank 0 only, when `config.progress`)
    gets a `LoopProgress` after every step. Under a process group of several ranks every rank must call this with the
    same arguments (see the module docstring).
    """
    if not isinstance(batches, BatchSource):
        raise ValueError(f"{stage}: batches must be a BatchSource (num_items, batch_size, make_batch(items, seeds))")
    check_config(config, f"{stage}: bad loop config", f"{stage}.loop.")
    if batches.num_items < 1:
        raise ValueError(f"{stage}: no training items (an empty split?)")
    world, rank, main = distributed.world_size(), distributed.rank(), distributed.is_main()
    sampler = ShardedSampler(batches.num_items, batches.batch_size, seed=config.seed, rank=rank, world_size=world)
    run_dir = Path(run_dir)
    checkpoint_dir, log_path = run_dir / "checkpoints" / stage, run_dir / "metrics.jsonl"
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    saved_config = {
        "loop": to_jsonable(config),
        "stage": to_jsonable(stage_config),
        "world_size": world,
        "batch_size": batches.batch_size,
    }

    step = 0
    found = latest_good_checkpoint(checkpoint_dir) if main else None
    resume_from = distributed.broadcast_object(found[0] if found is not None else None)
    if resume_from is not None:
        state = found[1] if found is not None else load_checkpoint(resume_from)  # the same file on every rank
        load_module_state(model, state.model, what=f"{stage} model", source=resume_from)
        try:
            optimizer.load_state_dict(state.optimizer)
        except (ValueError, KeyError, IndexError) as error:
            raise ValueError(f"{resume_from}: its optimizer state does not fit this {stage} stage ({error})") from None
        step = state.step
    if main:
        _repair_log(log_path, stage, step)
    trained = _wrap_for_ranks(model, compute_loss, device)
    ema = ExponentialMovingAverage(model, config.ema_decay)  # after DDP's broadcast: the same on every rank
    if resume_from is not None:
        ema.load_state_dict(state.ema)

    def save() -> Path:
        """Rank 0 writes (atomically), every rank waits for it; returns the checkpoint's path on every rank."""
        if main:
            state = TrainingState(
                step=step,
                model=model.state_dict(),
                ema=ema.state_dict(),
                optimizer=optimizer.state_dict(),
                rng={},  # nothing to save: every random draw is seeded by (seed, step, rank) or a sample's seed
                config=saved_config,
            )
            save_checkpoint(checkpoint_dir, state, keep=config.keep_checkpoints)
        distributed.barrier()
        return checkpoint_path(checkpoint_dir, step)

    report = progress if (progress is not None and config.progress and main) else (lambda update: None)
    last_checkpoint = resume_from if resume_from is not None else save()
    final_loss = math.nan
    last_terms: dict[str, float] = {}
    autocast = config.bf16 and device.type == "cuda"
    trained.train()
    log = open(log_path, "a") if main else None  # closed in `finally`
    with _stop_requests() as requested:
        try:
            report(LoopProgress(stage, step, config.max_steps))
            window_start, window_steps = time.perf_counter(), 0
            while step < config.max_steps:
                if before_step is not None:
                    before_step(step)
                torch.manual_seed(step_seed(config.seed, step, rank))  # dropout
                plan = sampler.batch(step)
                batch = batches.make_batch(list(plan.items), list(plan.seeds))
                if isinstance(batch, ViewBatch):
                    batch = batch.with_seeds(plan.seeds)
                loss_value, terms, grad_norm = _step_gradients(
                    stage, step, trained, optimizer, batch, config, autocast, save, last_checkpoint, last_terms
                )
                optimizer.step()
                if not distributed.all_true(_weights_finite(optimizer)):
                    what = f"the weights became non-finite after the update (gradient norm {grad_norm:.4g})"
                    lr = optimizer.param_groups[0]["lr"]
                    raise NonFiniteLossError(_diverged(stage, step, what, terms, lr, last_checkpoint))
                step += 1
                if step <= config.ema_start:
                    ema.copy_from(model)
                elif step % config.ema_every == 0:
                    ema.update(model)
                final_loss = loss_value
                window_steps += 1
                record = None
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
                    window_start, window_steps = time.perf_counter(), 0
                    last_terms = {"loss": loss_value, **terms}
                report(LoopProgress(stage, step, config.max_steps, record))
                if step % config.checkpoint_every == 0 or step == config.max_steps:
                    last_checkpoint = save()
                if not distributed.all_true("signal" not in requested):  # every rank stops at the same step
                    if last_checkpoint != checkpoint_path(checkpoint_dir, step):
                        last_checkpoint = save()
                    number = requested.get("signal", signal.SIGTERM)
                    raise TrainingStopped(
                        f"stopped at {stage} step {step} on {signal.Signals(number).name} "
                        f"(checkpoint {last_checkpoint}); run the same command to resume",
                        number,
                    )
        finally:
            if log is not None:
                log.close()
            if world > 1:
                # drop DDP's gradient hooks on the model's parameters before a later stage wraps them again
                del trained
                gc.collect()
    return LoopResult(steps=step, last_checkpoint=last_checkpoint, final_loss=final_loss, ema=ema.state_dict())
