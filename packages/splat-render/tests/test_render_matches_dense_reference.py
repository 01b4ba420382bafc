"""The tiled, chunked torch backend computes exactly the function of the dense reference (every Gaussian against
every pixel), whatever the tile size and chunking, for values and gradients."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from render_strategies import orbit_cameras, random_gaussians, seeds

from splat_render import RenderConfig, render
from splat_render._reference import _render_dense


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(
    seed=seeds,
    batch=st.integers(1, 2),
    views=st.integers(1, 3),
    count=st.integers(1, 60),
    width=st.integers(5, 40),
    height=st.integers(5, 40),
    sh_degree=st.integers(0, 3),
    tile_size=st.sampled_from([4, 8, 16]),
    chunk_elements=st.sampled_from([1, 500, 2**21]),
)
def test_tiled_render_equals_dense_render(
    seed, batch, views, count, width, height, sh_degree, tile_size, chunk_elements
) -> None:
    generator = torch.Generator().manual_seed(seed)
    gaussians = random_gaussians(generator, batch, count, sh_degree=sh_degree, scale_range=(0.01, 0.4))
    cameras = orbit_cameras(generator, batch, views, width, height)
    background = torch.rand(batch, views, 3, generator=generator, dtype=torch.float64)
    config = RenderConfig(tile_size=tile_size, chunk_elements=chunk_elements)
    tiled = render(gaussians, cameras, background=background, backend="torch", config=config)
    dense = _render_dense(gaussians, cameras, background, sh_degree)
    _close(tiled.rgb, dense.rgb)
    _close(tiled.alpha, dense.alpha)
    _close(tiled.depth, dense.depth)


@settings(max_examples=10, deadline=None)
@given(seed=seeds, count=st.integers(1, 40), tile_size=st.sampled_from([4, 8]))
def test_tiled_render_gradients_equal_dense_render_gradients(seed, count, tile_size) -> None:
    generator = torch.Generator().manual_seed(seed)
    gaussians = random_gaussians(generator, 1, count, sh_degree=2, scale_range=(0.02, 0.3))
    tensors = {k: v.requires_grad_() for k, v in gaussians.tensors().items()}
    cameras = orbit_cameras(generator, 1, 2, 24, 20)
    background = torch.rand(1, 2, 3, generator=generator, dtype=torch.float64)
    cotangents = [torch.randn(1, 2, c, 20, 24, generator=generator, dtype=torch.float64) for c in (3, 1, 1)]

    def vjp(out) -> tuple[torch.Tensor, ...]:
        loss = sum((o * c).sum() for o, c in zip((out.rgb, out.alpha, out.depth), cotangents, strict=True))
        return torch.autograd.grad(loss, list(tensors.values()), allow_unused=True)

    config = RenderConfig(tile_size=tile_size, chunk_elements=300)
    tiled = vjp(render(gaussians, cameras, background=background, backend="torch", config=config))
    dense = vjp(_render_dense(gaussians, cameras, background, 2))
    for name, a, b in zip(tensors, tiled, dense, strict=True):
        a = torch.zeros_like(tensors[name]) if a is None else a
        b = torch.zeros_like(tensors[name]) if b is None else b
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-9, msg=f"gradient of {name}")


def test_float32_render_matches_float64_render() -> None:
    generator = torch.Generator().manual_seed(0)
    gaussians = random_gaussians(generator, 2, 500, sh_degree=1, scale_range=(0.01, 0.1))
    cameras = orbit_cameras(generator, 2, 2, 48, 40)
    out64 = render(gaussians, cameras, background=1.0, backend="torch")
    out32 = render(gaussians.to(torch.float32), cameras.to(torch.float32), background=1.0, backend="torch")
    # thresholds (1/255, 1e-4) may flip for a few pixel-Gaussian pairs in float32: compare in the mean and the bulk
    difference = (out32.rgb.double() - out64.rgb).abs()
    assert difference.mean() < 1e-5 and torch.quantile(difference.flatten(), 0.999) < 1e-3


def test_render_gradients_are_bit_for_bit_reproducible_on_cpu() -> None:
    generator = torch.Generator().manual_seed(4)
    gaussians = random_gaussians(generator, 2, 3000, sh_degree=1, scale_range=(0.01, 0.2), dtype=torch.float32)
    cameras = orbit_cameras(generator, 2, 2, 48, 40, dtype=torch.float32)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        grads = []
        for _ in range(3):
            leaves = {k: v.clone().requires_grad_() for k, v in gaussians.tensors().items()}
            out = render(type(gaussians)(**leaves), cameras, background=1.0, backend="torch")
            (out.rgb.square().sum() + out.depth.sum()).backward()
            grads.append([leaf.grad for leaf in leaves.values()])
    finally:
        torch.set_num_threads(threads)
    for other in grads[1:]:
        assert all(torch.equal(a, b) for a, b in zip(grads[0], other, strict=True))
