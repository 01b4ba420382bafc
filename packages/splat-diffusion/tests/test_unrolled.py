import pytest
import torch
from diffusion_strategies import randn
from torch import nn

from splat_diffusion import Schedule, ddim_timesteps, q_sample, unrolled_ddim

SCHEDULE = Schedule.linear(100)


class TinyConvDenoiser(nn.Module):
    """A small time-conditioned conv net with dropout: enough structure for checkpointing to matter."""

    def __init__(self, channels: int = 3, hidden: int = 8, dropout: float = 0.0) -> None:
        super().__init__()
        self.inp = nn.Conv2d(channels, hidden, 3, padding=1)
        self.time = nn.Embedding(SCHEDULE.num_train_steps, hidden)
        self.out = nn.Conv2d(hidden, channels, 3, padding=1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.silu(self.inp(x) + self.time(t)[:, :, None, None])
        return x + self.out(self.dropout(h))


@pytest.mark.parametrize("checkpoint", [False, True])
@pytest.mark.parametrize("eta", [0.0, 0.6])
def test_unrolled_ddim_gradcheck_through_three_steps(checkpoint: bool, eta: float) -> None:
    timesteps = ddim_timesteps(SCHEDULE, num_steps=3, t_start=60)
    x_start = randn((2, 3), 0).requires_grad_()
    weight = (0.3 * randn((3, 3), 1)).requires_grad_()
    time_scale = (0.1 * randn((SCHEDULE.num_train_steps,), 2)).requires_grad_()

    def sample(x: torch.Tensor, weight: torch.Tensor, time_scale: torch.Tensor) -> torch.Tensor:
        def denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return torch.tanh(x_t @ weight) * (1 + time_scale[t][:, None])

        generator = torch.Generator().manual_seed(1)  # same step noise on every evaluation
        trajectory = unrolled_ddim(denoise, x, timesteps, SCHEDULE, checkpoint=checkpoint, eta=eta, generator=generator)
        return trajectory.sample

    assert torch.autograd.gradcheck(sample, (x_start, weight, time_scale))


@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_checkpoint_on_and_off_give_identical_outputs_and_gradients(eta: float) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = TinyConvDenoiser(dropout=0.2).train()  # dropout: recomputation must replay the same RNG draws
    x0 = randn((2, 3, 8, 8), 0, torch.float32)
    x_start = q_sample(SCHEDULE, x0, 80, randn((2, 3, 8, 8), 1, torch.float32)).requires_grad_()
    timesteps = ddim_timesteps(SCHEDULE, 5, t_start=80)
    weights = torch.linspace(0.5, 2.0, 5)

    results = []
    for checkpoint in (False, True):
        model.zero_grad()
        x_start.grad = None
        with torch.random.fork_rng():
            torch.manual_seed(123)  # dropout masks
            trajectory = unrolled_ddim(
                model,
                x_start,
                timesteps,
                SCHEDULE,
                checkpoint=checkpoint,
                eta=eta,
                generator=torch.Generator().manual_seed(7),
            )
            loss = (weights[:, None] * (trajectory.x0_hats - x0).square().flatten(1)).sum()
            loss.backward()
        grads = [x_start.grad.clone()] + [p.grad.clone() for p in model.parameters()]
        results.append((trajectory.xs.detach(), trajectory.x0_hats.detach(), grads))

    (xs_off, x0_off, grads_off), (xs_on, x0_on, grads_on) = results
    assert torch.equal(xs_off, xs_on) and torch.equal(x0_off, x0_on)
    for off, on in zip(grads_off, grads_on, strict=True):
        torch.testing.assert_close(on, off, rtol=0, atol=0)
        assert off.abs().sum() > 0


@pytest.mark.parametrize("checkpoint", [False, True])
def test_gradients_reach_the_parameters_used_at_the_first_step(checkpoint: bool) -> None:
    """A loss on the final sample alone back-propagates through all steps into the first step's parameters."""
    scale = torch.zeros(SCHEDULE.num_train_steps, requires_grad=True)  # one parameter per timestep
    timesteps = ddim_timesteps(SCHEDULE, 10)

    def denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 0.5 * x_t * (1 + scale[t][:, None])

    x_start = torch.randn(4, 6)
    trajectory = unrolled_ddim(denoise, x_start, timesteps, SCHEDULE, checkpoint=checkpoint)
    trajectory.sample.square().sum().backward()
    used = torch.zeros(SCHEDULE.num_train_steps, dtype=torch.bool)
    used[timesteps] = True
    assert scale.grad[timesteps[0]].abs().item() > 0  # the first step
    assert bool((scale.grad[used] != 0).all())
    assert bool((scale.grad[~used] == 0).all())


def test_checkpointing_recomputes_each_step_during_backward() -> None:
    calls = []

    def denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        calls.append(int(t[0]))
        return x_t * weight

    weight = torch.tensor(0.9, requires_grad=True)
    timesteps = ddim_timesteps(SCHEDULE, 4)
    for checkpoint, expected_calls in ((False, 4), (True, 8)):
        calls.clear()
        unrolled_ddim(denoise, torch.randn(2, 3), timesteps, SCHEDULE, checkpoint=checkpoint).sample.sum().backward()
        assert len(calls) == expected_calls
        assert calls[:4] == timesteps.tolist()


def test_unrolled_ddim_under_no_grad_keeps_no_graph_and_skips_checkpointing() -> None:
    model = TinyConvDenoiser()
    with torch.no_grad():
        trajectory = unrolled_ddim(model, torch.randn(1, 3, 4, 4), ddim_timesteps(SCHEDULE, 3), SCHEDULE)
    assert not trajectory.xs.requires_grad and not trajectory.sample.requires_grad


def test_stochastic_ddim_is_reproducible_with_a_generator_and_varies_with_the_seed() -> None:
    model = TinyConvDenoiser().eval()
    x_start, timesteps = torch.randn(2, 3, 4, 4), ddim_timesteps(SCHEDULE, 5)

    def run(seed: int) -> torch.Tensor:
        with torch.no_grad():
            generator = torch.Generator().manual_seed(seed)
            return unrolled_ddim(model, x_start, timesteps, SCHEDULE, eta=1.0, generator=generator).sample

    assert torch.equal(run(0), run(0))
    assert not torch.allclose(run(0), run(1))
