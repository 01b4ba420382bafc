"""The one loop skeleton shared by every stage runner (teacher, bootstrap, multistep).

A stage supplies a model, an optimizer over some of its parameters, a `sample_batch(step, generator)` function and
a `compute_loss(batch, generator) -> LossOutput` function; the loop does the rest, identically for every stage:

* seeded and deterministic on CPU: all randomness comes from one `torch.Generator` (data sampling, noise) plus the
  global torch RNG (dropout), and both are checkpointed, so `resume` continues bit-for-bit;
* gradient clipping, optional bf16 autocast on CUDA, EMA of the weights (decay, every N steps, from step M);
* a progress bar with the loss and throughput, a JSON-lines metrics log (`metrics.jsonl`);
* atomic checkpoints every N steps and at exit; on resume the newest checkpoint of the stage is loaded and log
  lines past it are dropped;
* a NaN/Inf loss or gradient stops the run with `NonFiniteLossError` naming the step and the last good checkpoint
  (the weights before the bad step are saved; nothing is lost).
"""

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

from .checkpoint import TrainingState, latest_checkpoint, load_checkpoint, load_module_state, save_checkpoint


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
    seed: int = 0  # seeds the stage's generator and the global torch RNG
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
    state = {"generator": generator.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(generator: torch.Generator, state: dict[str, Tensor]) -> None:
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


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
    sample_batch: Callable[[int, torch.Generator], Any],
    compute_loss: Callable[[Any, torch.Generator], LossOutput],
    config: LoopConfig,
    run_dir: str | os.PathLike,
    stage_config: Any = None,
    extra_state: dict[str, Any] | None = None,
) -> LoopResult:
    """Train `model` for `config.max_steps` steps, resuming from `run_dir/checkpoints/<stage>` if present."""
    run_dir = Path(run_dir)
    checkpoint_dir = run_dir / "checkpoints" / stage
    log_path = run_dir / "metrics.jsonl"
    run_dir.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    torch.manual_seed(config.seed)
    ema = ExponentialMovingAverage(model, config.ema_decay)
    saved_config = {"loop": to_jsonable(config), "stage": to_jsonable(stage_config)}
    extra = dict(extra_state or {})

    step = 0
    resume_from = latest_checkpoint(checkpoint_dir)
    if resume_from is not None:
        state = load_checkpoint(resume_from)
        load_module_state(model, state.model, what=f"{stage} model", source=resume_from)
        ema.load_state_dict(state.ema)
        optimizer.load_state_dict(state.optimizer)
        _set_rng_state(generator, state.rng)
        step = state.step
        extra = state.extra or extra
        _truncate_log(log_path, stage, step)

    def save(rng: dict[str, Tensor] | None = None) -> Path:
        return save_checkpoint(
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
        disable=not config.progress,
    )
    model.train()
    with progress, open(log_path, "a") as log:
        task = progress.add_task(stage, total=config.max_steps, completed=step, status="")
        window_start, window_steps = time.perf_counter(), 0
        while step < config.max_steps:
            rng_before = _rng_state(generator)  # so that a failed step can be checkpointed as never having started
            batch = sample_batch(step, generator)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                output = compute_loss(batch, generator)
            loss_value = float(output.loss.detach())
            if not math.isfinite(loss_value):
                last_checkpoint = save(rng_before)  # weights and RNG as before this step: nothing is lost
                raise NonFiniteLossError(
                    f"{stage}: loss is {loss_value} at step {step + 1}; stopped. The last good checkpoint is "
                    f"{last_checkpoint} (state after step {step})"
                )
            optimizer.zero_grad(set_to_none=True)
            output.loss.backward()
            parameters = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            max_norm = config.grad_clip if config.grad_clip is not None else math.inf
            grad_norm = float(torch.nn.utils.clip_grad_norm_(parameters, max_norm)) if parameters else 0.0
            if not math.isfinite(grad_norm):
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
            if step % config.log_every == 0 or step == config.max_steps:
                elapsed = time.perf_counter() - window_start
                record = {
                    "stage": stage,
                    "step": step,
                    "loss": loss_value,
                    **output.terms,
                    "grad_norm": grad_norm,
                    "lr": optimizer.param_groups[0]["lr"],
                    "steps_per_s": window_steps / max(elapsed, 1e-9),
                    "time": time.time(),
                }
                log.write(json.dumps(record) + "\n")
                log.flush()
                progress.update(task, status=f"loss {loss_value:.4g} · {record['steps_per_s']:.2f} it/s")
                window_start, window_steps = time.perf_counter(), 0
            progress.update(task, completed=step)
            if step % config.checkpoint_every == 0 or step == config.max_steps:
                last_checkpoint = save()
    return LoopResult(steps=step, last_checkpoint=last_checkpoint, final_loss=final_loss, ema=ema.state_dict())
