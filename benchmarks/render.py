"""How fast and how lean is the pure-PyTorch renderer, forward + backward, against two baselines measured in the
same run: a dense rasterizer (every Gaussian against every pixel) and a per-tile Python loop (the pattern of the
public pure-PyTorch rasterizers, e.g. hbb1/torch-splatting, Mxbonn/gsplat-pytorch). All three compute the same
image (checked: max |difference| is printed). On a CUDA machine it also reports gsplat throughput for
100 scenes x 4 views at 128x128.

Scene (as in shared/notes/gsplat.md): means ~ N((0, 0, 3), 0.5^2), scales ~ U(0.004, 0.02), random rotations,
opacities ~ U(0, 1), SH degree 1; cameras at the origin with f = image width.

    uv run benchmarks/render.py            # quick sizes
    uv run benchmarks/render.py --full     # the table of RESULTS.md
"""

import functools

import torch
from _measure import machine, megabytes, parse_mode, peak_memory, table, timed

from splat_render import Cameras, Gaussians, RenderOutput, intrinsics, render
from splat_render._reference import _render_dense
from splat_render.projection import ALPHA_THRESHOLD, MAX_ALPHA, TRANSMITTANCE_EPS, project_gaussians
from splat_render.sh import eval_sh


def make_scene(batch: int, views: int, count: int, size: int, device: str = "cpu") -> tuple[Gaussians, Cameras]:
    generator = torch.Generator().manual_seed(0)
    gaussians = Gaussians(
        means=torch.randn(batch, count, 3, generator=generator) * 0.5 + torch.tensor([0.0, 0.0, 3.0]),
        quats=torch.randn(batch, count, 4, generator=generator),
        scales=0.004 + 0.016 * torch.rand(batch, count, 3, generator=generator),
        opacities=torch.rand(batch, count, generator=generator),
        sh=0.5 * torch.randn(batch, count, 4, 3, generator=generator),
    ).to(device)
    K = intrinsics(float(size), float(size), size / 2, size / 2).expand(batch, views, 3, 3).clone()
    w2c = torch.eye(4).expand(batch, views, 4, 4).clone()
    # views differ by a small sideways shift so that they are not identical images
    w2c[..., 0, 3] = torch.linspace(-0.2, 0.2, views)
    return gaussians, Cameras(w2c, K, size, size).to(device)


def render_tile_loop(gaussians: Gaussians, cameras: Cameras, background: float, tile: int = 16) -> RenderOutput:
    """Baseline: a Python loop over images and tiles; each tile gathers its Gaussians, sorts them and composites
    densely (same formulas as our backend)."""
    batch, views, height, width = cameras.batch_size, cameras.num_views, cameras.height, cameras.width
    projection = project_gaussians(gaussians, cameras)
    directions = gaussians.means[:, None] - cameras.centers[:, :, None]
    rgb = torch.clamp_min(
        eval_sh(gaussians.sh_degree, gaussians.sh[:, None].expand(-1, views, -1, -1, -1), directions) + 0.5, 0
    )
    images = []
    for b in range(batch):
        for v in range(views):
            means2d, conics = projection.means2d[b, v], projection.conics[b, v]
            depths, radii, visible = projection.depths[b, v], projection.radii[b, v], projection.visible[b, v]
            opacities, colors = gaussians.opacities[b], torch.cat([rgb[b, v], depths[:, None]], -1)
            rows = []
            for y0 in range(0, height, tile):
                row = []
                for x0 in range(0, width, tile):
                    y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
                    with torch.no_grad():
                        hit = visible & (means2d[:, 0] + radii[:, 0] > x0) & (means2d[:, 0] - radii[:, 0] < x1)
                        hit &= (means2d[:, 1] + radii[:, 1] > y0) & (means2d[:, 1] - radii[:, 1] < y1)
                        ids = torch.nonzero(hit).squeeze(1)
                        ids = ids[torch.argsort(depths[ids])]
                    ys, xs = torch.meshgrid(
                        torch.arange(y0, y1, dtype=means2d.dtype) + 0.5,
                        torch.arange(x0, x1, dtype=means2d.dtype) + 0.5,
                        indexing="ij",
                    )
                    dx = xs.reshape(-1, 1) - means2d[ids, 0]
                    dy = ys.reshape(-1, 1) - means2d[ids, 1]
                    a, bb, c = conics[ids].unbind(-1)
                    sigma = 0.5 * (a * dx * dx + c * dy * dy) + bb * dx * dy
                    alpha = torch.clamp_max(opacities[ids] * torch.exp(-sigma), MAX_ALPHA)
                    alpha = torch.where(alpha >= ALPHA_THRESHOLD, alpha, 0.0)
                    transmittance = torch.cumprod(1 - alpha, -1)
                    alive = (transmittance > TRANSMITTANCE_EPS).detach()
                    weights = torch.where(alive, alpha * transmittance / (1 - alpha), 0.0)
                    accumulated = weights @ colors[ids]
                    total = weights.sum(-1, keepdim=True)
                    pixel = torch.cat([accumulated[:, :3] + (1 - total) * background, accumulated[:, 3:], total], -1)
                    row.append(pixel.reshape(y1 - y0, x1 - x0, 5))
                rows.append(torch.cat(row, 1))
            images.append(torch.cat(rows, 0))
    out = torch.stack(images).unflatten(0, (batch, views)).permute(0, 1, 4, 2, 3)
    alpha = out[:, :, 4:5]
    return RenderOutput(rgb=out[:, :, :3], alpha=alpha, depth=out[:, :, 3:4] / alpha.clamp_min(1e-10))


def forward_backward(method: str, batch: int, views: int, count: int, size: int, device: str = "cpu"):
    """Setup for one measurement: returns a closure running forward + backward once."""
    gaussians, cameras = make_scene(batch, views, count, size, device)
    leaves = {k: v.requires_grad_() for k, v in gaussians.tensors().items()}
    gaussians = Gaussians(**leaves)

    def run() -> RenderOutput:
        for leaf in leaves.values():
            leaf.grad = None
        if method == "torch":
            out = render(gaussians, cameras, background=1.0, backend="torch")
        elif method == "gsplat":
            out = render(gaussians, cameras, background=1.0, backend="gsplat")
        elif method == "dense":
            out = _render_dense(gaussians, cameras, torch.ones(batch, views, 3), gaussians.sh_degree)
        else:
            out = render_tile_loop(gaussians, cameras, background=1.0)
        (out.rgb.sum() + out.alpha.sum() + (out.depth * out.alpha).sum()).backward()
        return out

    return run


def forward_only(method: str, batch: int, views: int, count: int, size: int) -> RenderOutput:
    gaussians, cameras = make_scene(batch, views, count, size)
    with torch.no_grad():
        if method == "torch":
            return render(gaussians, cameras, background=1.0, backend="torch")
        if method == "dense":
            return _render_dense(gaussians, cameras, torch.ones(batch, views, 3), gaussians.sh_degree)
        return render_tile_loop(gaussians, cameras, background=1.0)


def dense_bytes(batch: int, views: int, count: int, size: int) -> int:
    """Rough autograd footprint of the dense baseline: ~12 float32 tensors of images x pixels x gaussians."""
    return 12 * 4 * batch * views * size * size * count


def main() -> None:
    args = parse_mode(__doc__.splitlines()[0])
    if args.full:
        configs = [(1, 1, 4096, 64), (8, 4, 4096, 64), (1, 1, 16384, 128), (8, 4, 16384, 128)]
        repeats = 5
    else:
        configs = [(1, 1, 1024, 32), (2, 2, 1024, 32)]
        repeats = 2
    dense_limit = 12 * 2**30
    print(f"## render (torch backend, forward + backward)\n\nMachine: {machine()}\n")
    rows = []
    for batch, views, count, size in configs:
        images = batch * views
        reference = forward_only("torch", batch, views, count, size)
        times, memories, errors = {}, {}, {}
        # the tile loop keeps a graph per tile and image: ~0.45 GB per 128x128 image of 16k Gaussians, so 32 such images
        # would not fit in 24 GB; it is measured where images x gaussians x pixels stays below 2^31
        loop_fits = images * count * size * size < 2**31
        methods = ["torch"] + (["loop"] if loop_fits else [])
        methods += ["dense"] if dense_bytes(batch, views, count, size) < dense_limit else []
        for method in methods:
            setup = functools.partial(forward_backward, method, batch, views, count, size)
            slow = method != "torch" and images * count * size * size > 2**30
            times[method] = timed(setup(), repeats=1 if slow else repeats)
            memories[method] = peak_memory(setup)
            if method != "torch":
                errors[method] = float(
                    (forward_only(method, batch, views, count, size).rgb - reference.rgb).abs().max()
                )
        row = [
            f"{batch}x{views}",
            f"{size}x{size}",
            f"{count}",
            f"{times['torch']:.3f} s ({times['torch'] / images * 1000:.0f} ms/img)",
            megabytes(memories["torch"]),
        ]
        if "loop" in times:
            row += [f"{times['loop']:.2f} s", f"{times['loop'] / times['torch']:.1f}x"]
        else:
            row += ["n/a (> 12 GB)", "-"]
        if "dense" in times:
            row += [f"{times['dense']:.2f} s", f"{times['dense'] / times['torch']:.1f}x", megabytes(memories["dense"])]
        else:
            row += [f"n/a (needs ~{dense_bytes(batch, views, count, size) / 2**30:.0f} GB)", "-", "-"]
        row.append(f"{max(errors.values()):.1e}" if errors else "-")
        rows.append(row)
    header = ["scenes x views", "image", "gaussians", "torch fwd+bwd", "torch peak mem", "tile loop", "loop/torch"]
    header += ["dense", "dense/torch", "dense peak mem", "max abs rgb diff"]
    print(table(header, rows))

    if torch.cuda.is_available():
        from splat_render import gsplat_available

        if gsplat_available():
            run = forward_backward("gsplat", 100, 4, 16384, 128, device="cuda")
            seconds = timed(run, repeats=5)
            memory = peak_memory(functools.partial(forward_backward, "gsplat", 100, 4, 16384, 128, "cuda"), "cuda")
            print(
                f"\ngsplat, 100 scenes x 4 views, 128x128, 16384 Gaussians: {seconds:.3f} s fwd+bwd "
                f"({400 / seconds:.0f} images/s), peak {megabytes(memory)}"
            )
    print()


if __name__ == "__main__":
    main()
