"""A toy regression trained by `splat_train.loop.run_loop`: the loop tests' model, data and run (also run as a
script by the signal tests: `python toy_loop.py RUN_DIR MAX_STEPS DELAY`)."""

import pathlib
import sys
import time

import torch
from torch import nn

from splat_train.loop import LoopConfig, LossOutput, TrainingStopped, run_loop


def model_under_test() -> nn.Module:
    torch.manual_seed(123)
    return nn.Sequential(nn.Linear(4, 16), nn.SiLU(), nn.Dropout(0.2), nn.Linear(16, 1))


TRUE_WEIGHTS = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])


class _Points:
    """A `BatchSource` of noisy linear-regression points: item k of a batch is drawn from its seed."""

    num_items, batch_size = 1000, 32

    def make_batch(self, items, seeds) -> tuple[torch.Tensor, torch.Tensor]:
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        x = torch.stack([torch.randn(4, generator=g) for g in generators])
        noise = torch.stack([torch.randn(1, generator=g) for g in generators])
        return x, x @ TRUE_WEIGHTS + 0.01 * noise


def run(
    run_dir: pathlib.Path,
    max_steps: int,
    nan_at: int | None = None,
    *,
    delay: float = 0.0,
    lr: float = 1e-2,
    **overrides,
):
    """Train the toy model for `max_steps` in `run_dir` (resuming); `nan_at`: the loss of that call is NaN; `delay`:
    seconds of sleep per step (for the signal tests)."""
    model = model_under_test()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    calls = {"n": 0}

    def compute_loss(batch) -> LossOutput:
        calls["n"] += 1
        time.sleep(delay)
        x, y = batch
        loss = (model(x) - y).square().mean()
        if nan_at is not None and calls["n"] == nan_at:
            loss = loss * torch.nan
        return LossOutput(loss, {"mse": float(loss.detach())})

    config = LoopConfig(
        max_steps=max_steps, checkpoint_every=7, ema_start=5, ema_every=2, log_every=3, progress=False, **overrides
    )
    result = run_loop(
        stage="toy",
        model=model,
        optimizer=optimizer,
        batches=_Points(),
        compute_loss=compute_loss,
        config=config,
        run_dir=run_dir,
    )
    return model, optimizer, result


if __name__ == "__main__":
    try:
        run(pathlib.Path(sys.argv[1]), int(sys.argv[2]), delay=float(sys.argv[3]))
    except TrainingStopped as stopped:
        print(stopped, flush=True)
        sys.exit(stopped.exit_code)
