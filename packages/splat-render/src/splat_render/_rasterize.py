"""Pure-PyTorch tile rasterizer: the same function as gsplat's `rasterize_to_pixels` (3DGS, classic mode).

For a pixel centre p (pixel (i, j) has centre (j + 0.5, i + 0.5)) and the Gaussians overlapping its tile sorted
front to back by camera-space depth:

    sigma_k = 1/2 (p - mu_k)^T Sigma'_k^{-1} (p - mu_k)
    alpha_k = min(0.999, o_k exp(-sigma_k)), skipped when alpha_k < 1/255
    T_k     = prod_{j < k} (1 - alpha_j); compositing stops before the first k with T_k (1 - alpha_k) <= 1e-4
    C(p)    = sum_k alpha_k T_k c_k + T_final * background

How it avoids both the dense (all Gaussians x all pixels) cost and Python loops over tiles or Gaussians:

1. Binning (no gradients): each visible Gaussian covers a rectangle of tiles from its bounding radius; the
   (image, tile, Gaussian) intersections are generated with `repeat_interleave` in depth order and stably sorted by
   (image, tile), which keeps each tile's list sorted front to back.
2. Tiles of *all* images are sorted by their intersection count and cut into chunks of at most `chunk_elements`
   (pixels x Gaussians) each; a chunk is padded only to its own largest count, so padding waste stays small.
3. Per chunk the exponent is one batched matmul: in tile-centred coordinates (u, v) of a pixel,
   log(o) - sigma = [u^2, uv, v^2, u, v, 1] . psi_k, with psi_k holding the conic, mean and log-opacity.
   Transmittance is a cumulative product; termination is the (detached) mask T_k (1 - alpha_k) > 1e-4, which
   reproduces the kernel's exclusive stop; colours (and depth, and 1 for the alpha) come from a second matmul.

Everything after binning is differentiable by autograd, in float32 and float64.
"""

import math

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from .projection import ALPHA_THRESHOLD, MAX_ALPHA, TRANSMITTANCE_EPS

# log-opacity used for padding entries: exp(-1e4) is exactly 0 in float32 and float64.
_PAD_LOG_OPACITY = -1.0e4


def bin_gaussians(
    means2d: Float[Tensor, "images gaussians 2"],
    radii: Int[Tensor, "images gaussians 2"],
    depths: Float[Tensor, "images gaussians"],
    visible: Bool[Tensor, "images gaussians"],
    tile_size: int,
    tiles_x: int,
    tiles_y: int,
) -> tuple[Int[Tensor, " intersections"], Int[Tensor, " tiles"]]:
    """Front-to-back Gaussian lists of every tile of every image.

    Returns `flat_ids` (index into images*gaussians, grouped by tile, each group sorted by depth) and
    `tile_counts` (length of each group; tiles numbered image-major, then row-major).
    """
    with torch.no_grad():
        images, count = depths.shape
        device = depths.device
        centre = means2d.detach() / tile_size
        extent = radii.to(centre.dtype) / tile_size
        lo = torch.floor(centre - extent).clamp_min(0).long()
        hi = torch.ceil(centre + extent).long()
        x0, y0 = lo[..., 0].clamp_max(tiles_x), lo[..., 1].clamp_max(tiles_y)
        x1 = hi[..., 0].clamp(0, tiles_x)
        y1 = hi[..., 1].clamp(0, tiles_y)
        span_x = (x1 - x0).clamp_min(0)
        counts = span_x * (y1 - y0).clamp_min(0) * visible

        # Depth order per image (culled Gaussians last; they have no intersections anyway).
        order = torch.argsort(torch.where(visible, depths.detach(), torch.inf), dim=1, stable=True)
        flat_order = (order + torch.arange(images, device=device)[:, None] * count).flatten()
        counts = counts.flatten()[flat_order]
        owner = torch.repeat_interleave(flat_order, counts)  # gaussian (flat) of each intersection, depth order
        starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        local = torch.arange(owner.numel(), device=device) - starts
        span = span_x.flatten()[owner]
        tile_x = x0.flatten()[owner] + local % span
        tile_y = y0.flatten()[owner] + local // span
        image = owner // count
        key = (image * tiles_y + tile_y) * tiles_x + tile_x
        key, perm = torch.sort(key, stable=True)
        flat_ids = owner[perm]
        tile_counts = torch.bincount(key, minlength=images * tiles_y * tiles_x)
    return flat_ids, tile_counts


def plan_chunks(
    tile_counts: Int[Tensor, " tiles"], pixels_per_tile: int, chunk_elements: int
) -> list[tuple[int, int, int]]:
    """Cut the non-empty tiles, sorted by decreasing count, into chunks (start, stop, padded count) of at most
    `chunk_elements` pixel-Gaussian pairs (a single tile may exceed it)."""
    sorted_counts = torch.sort(tile_counts[tile_counts > 0], descending=True).values.tolist()
    chunks = []
    start = 0
    while start < len(sorted_counts):
        padded = sorted_counts[start]
        size = max(1, chunk_elements // (pixels_per_tile * padded))
        stop = min(len(sorted_counts), start + size)
        chunks.append((start, stop, padded))
        start = stop
    return chunks


def _tile_pixel_features(tile_size: int, dtype: torch.dtype, device: torch.device) -> Float[Tensor, "pixels 6"]:
    """[u^2, uv, v^2, u, v, 1] for the pixel centres of a tile, relative to the tile centre."""
    offsets = torch.arange(tile_size, dtype=dtype, device=device) + 0.5 - tile_size / 2
    v, u = torch.meshgrid(offsets, offsets, indexing="ij")
    u, v = u.flatten(), v.flatten()
    return torch.stack([u * u, u * v, v * v, u, v, torch.ones_like(u)], dim=-1)


def _composite_chunk(
    features_px: Float[Tensor, "pixels 6"],
    means_local: Float[Tensor, "tiles k 2"],
    conics: Float[Tensor, "tiles k 3"],
    log_opacities: Float[Tensor, "tiles k"],
    colors: Float[Tensor, "tiles k channels"],
) -> Float[Tensor, "tiles pixels channels"]:
    """Front-to-back compositing of one chunk of tiles; `colors` carries a last channel of ones (-> alpha)."""
    a, b, c = conics.unbind(-1)
    mx, my = means_local.unbind(-1)
    grad_x = a * mx + b * my
    grad_y = b * mx + c * my
    constant = log_opacities - 0.5 * (mx * grad_x + my * grad_y)
    psi = torch.stack([-0.5 * a, -b, -0.5 * c, grad_x, grad_y, constant], dim=1)  # [G 6 K]
    raw_alpha = torch.exp(torch.matmul(features_px, psi))  # [G P K] = o exp(-sigma)
    alpha = torch.where(raw_alpha >= ALPHA_THRESHOLD, raw_alpha.clamp_max(MAX_ALPHA), 0.0)
    keep = 1 - alpha
    transmittance = torch.cumprod(keep, dim=-1)  # T after each Gaussian
    with torch.no_grad():
        alive = transmittance > TRANSMITTANCE_EPS  # the kernel stops *before* the Gaussian that crosses 1e-4
    weights = torch.where(alive, alpha * (transmittance / keep), 0.0)
    return torch.bmm(weights, colors)


def rasterize_tiles(
    means2d: Float[Tensor, "images gaussians 2"],
    conics: Float[Tensor, "images gaussians 3"],
    opacities: Float[Tensor, "images gaussians"],
    colors: Float[Tensor, "images gaussians channels"],
    flat_ids: Int[Tensor, " intersections"],
    tile_counts: Int[Tensor, " tiles"],
    width: int,
    height: int,
    tile_size: int,
    chunk_elements: int,
) -> tuple[Float[Tensor, "images height width channels"], Float[Tensor, "images height width 1"]]:
    """Composite binned Gaussians; returns accumulated colors (no background) and alpha = 1 - T_final."""
    images, count, channels = colors.shape
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    pixels = tile_size * tile_size
    dtype, device = colors.dtype, colors.device

    # Per-Gaussian parameters packed into rows [mean 2 | conic 3 | log opacity 1 | colors C | 1], flattened over
    # images, with one padding row at the end. Chunks gather rows with `index_select`, whose backward (index_add) is
    # deterministic on CPU, unlike advanced indexing's (index_put with accumulate): runs are reproducible bit for bit.
    log_opacities = torch.log(opacities.clamp_min(ALPHA_THRESHOLD))
    rows = torch.cat([means2d, conics, log_opacities[..., None], colors, torch.ones_like(colors[..., :1])], -1)
    pad_row = torch.zeros_like(rows[0, :1])
    pad_row[:, 5] = _PAD_LOG_OPACITY
    rows = torch.cat([rows.reshape(-1, rows.shape[-1]), pad_row])
    pad = flat_ids.new_full((1,), images * count)

    tile_starts = torch.cumsum(tile_counts, 0) - tile_counts
    nonempty = torch.nonzero(tile_counts > 0).squeeze(1)
    nonempty = nonempty[torch.argsort(tile_counts[nonempty], descending=True, stable=True)]
    features_px = _tile_pixel_features(tile_size, dtype, device)
    tile_local = torch.arange(tiles_y * tiles_x, device=device)
    centre_x = ((tile_local % tiles_x) * tile_size + tile_size / 2).to(dtype)
    centre_y = ((tile_local // tiles_x) * tile_size + tile_size / 2).to(dtype)
    tile_centres = torch.stack([centre_x, centre_y], dim=-1).repeat(images, 1)  # [I*T 2]

    outputs = []
    for start, stop, padded in plan_chunks(tile_counts, pixels, chunk_elements):
        tiles = nonempty[start:stop]
        slot = torch.arange(padded, device=device)
        index = tile_starts[tiles, None] + slot
        valid = slot < tile_counts[tiles, None]
        ids = torch.where(valid, flat_ids[index.clamp_max(flat_ids.numel() - 1)], pad)
        gathered = rows.index_select(0, ids.flatten()).unflatten(0, ids.shape)  # [G K 7+C]
        means_local = gathered[..., 0:2] - tile_centres[tiles, None, :]
        outputs.append(
            _composite_chunk(features_px, means_local, gathered[..., 2:5], gathered[..., 5], gathered[..., 6:])
        )
    outputs.append(colors.new_zeros(1, pixels, channels + 1))  # shared by all empty tiles
    stacked = torch.cat(outputs)
    position = torch.full((images * tiles_y * tiles_x,), nonempty.numel(), dtype=torch.long, device=device)
    position[nonempty] = torch.arange(nonempty.numel(), device=device)
    tiled = stacked.index_select(0, position).reshape(images, tiles_y, tiles_x, tile_size, tile_size, channels + 1)
    image = tiled.permute(0, 1, 3, 2, 4, 5).reshape(images, tiles_y * tile_size, tiles_x * tile_size, channels + 1)
    image = image[:, :height, :width]
    return image[..., :channels], image[..., channels:]
