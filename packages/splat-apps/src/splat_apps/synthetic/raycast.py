"""Analytic ray casting of the built-in datasets' scenes: unions of primitives (ellipsoids, boxes, elliptic cylinders,
and the inside of a box for rooms), Lambert + ambient shading from a directional or point light (optionally with hard
shadows), and images anti-aliased by supersampling only the pixels that may straddle an edge. It is independent of
our Gaussian renderer, so it is a ground truth for it.

An app describes a scene (`Scene`): its primitives, a material (`albedo(hits, points) -> RGB`, where an app puts its
colours, front/back splits, decals or procedural textures), the light, and an optional per-ray label refining the
edge detection (e.g. which side of a colour boundary a point lies on).

Primitive i occupies `centers[i] + rotations[i] @ local` for `local` in the unit ellipsoid / box / cylinder (axis
local z) scaled by `sizes[i]` (semi-axes, half extents, or (radius x, radius y, half height)); `rotations[i]`'s
columns are the primitive's axes in world coordinates. A `ROOM` is the inside of a box: rays starting inside it hit
its walls from within (normals point inwards). Every other primitive is convex and hit from outside.
"""

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

ELLIPSOID, BOX, CYLINDER, ROOM = 0, 1, 2, 3


@dataclass(frozen=True)
class Primitives:
    kinds: Int[Tensor, " primitives"]
    centers: Float[Tensor, "primitives 3"]
    rotations: Float[Tensor, "primitives 3 3"]
    sizes: Float[Tensor, "primitives 3"]


def primitive_radii(
    kinds: Int[Tensor, " primitives"], sizes: Float[Tensor, "primitives 3"]
) -> Float[Tensor, " primitives"]:
    """Radius of a sphere about each primitive's centre that contains it."""
    ellipsoid = sizes.amax(dim=-1)
    box = sizes.norm(dim=-1)
    cylinder = torch.sqrt(sizes[:, :2].amax(dim=-1) ** 2 + sizes[:, 2] ** 2)
    return torch.where(kinds == ELLIPSOID, ellipsoid, torch.where(kinds == CYLINDER, cylinder, box))


def bounding_radius(primitives: Primitives) -> float:
    """Radius of a sphere about the origin that contains every primitive."""
    return float((primitives.centers.norm(dim=-1) + primitive_radii(primitives.kinds, primitives.sizes)).max())


def _safe(values: Tensor) -> Tensor:
    """Direction components bounded away from 0 (keeping the sign) so that slab divisions stay finite."""
    return torch.where(values.abs() < 1e-9, torch.where(values < 0, -1e-9, 1e-9), values)


def _hit_ellipsoids(origins: Tensor, directions: Tensor, sizes: Tensor) -> tuple[Tensor, Tensor]:
    o, d = origins / sizes, directions / sizes
    a = (d * d).sum(-1)
    b = (o * d).sum(-1)
    c = (o * o).sum(-1) - 1
    discriminant = b * b - a * c
    t = (-b - discriminant.clamp(min=0).sqrt()) / a
    t = torch.where((discriminant >= 0) & (t > 0), t, torch.inf)
    normals = (origins + t.nan_to_num(posinf=0)[..., None] * directions) / sizes**2
    return t, normals


def _hit_boxes(origins: Tensor, directions: Tensor, sizes: Tensor) -> tuple[Tensor, Tensor]:
    d = _safe(directions)
    t1, t2 = (-sizes - origins) / d, (sizes - origins) / d
    near, far = torch.minimum(t1, t2), torch.maximum(t1, t2)
    enter, axis = near.max(dim=-1)
    leave = far.amin(dim=-1)
    t = torch.where((enter <= leave) & (enter > 0), enter, torch.inf)
    normals = F.one_hot(axis, 3).to(d.dtype) * -torch.sign(d)
    return t, normals


def _hit_cylinders(origins: Tensor, directions: Tensor, sizes: Tensor) -> tuple[Tensor, Tensor]:
    o, d = origins[..., :2] / sizes[..., :2], directions[..., :2] / sizes[..., :2]
    a = (d * d).sum(-1).clamp(min=1e-12)
    b = (o * d).sum(-1)
    c = (o * o).sum(-1) - 1
    discriminant = b * b - a * c
    root = discriminant.clamp(min=0).sqrt()
    side_enter, side_leave = (-b - root) / a, (-b + root) / a
    dz = _safe(directions[..., 2])
    t1, t2 = (-sizes[..., 2] - origins[..., 2]) / dz, (sizes[..., 2] - origins[..., 2]) / dz
    cap_enter, cap_leave = torch.minimum(t1, t2), torch.maximum(t1, t2)
    enter = torch.maximum(side_enter, cap_enter)
    leave = torch.minimum(side_leave, cap_leave)
    t = torch.where((discriminant >= 0) & (enter <= leave) & (enter > 0), enter, torch.inf)
    point = origins + t.nan_to_num(posinf=0)[..., None] * directions
    side = torch.cat([point[..., :2] / sizes[..., :2] ** 2, torch.zeros_like(point[..., 2:])], dim=-1)
    cap = torch.cat([torch.zeros_like(point[..., :2]), -torch.sign(dz)[..., None]], dim=-1)
    normals = torch.where((side_enter >= cap_enter)[..., None], side, cap)
    return t, normals


def _hit_rooms(origins: Tensor, directions: Tensor, sizes: Tensor) -> tuple[Tensor, Tensor]:
    """Exit through the walls of a box from inside: the smallest positive slab distance; normals point inwards."""
    d = _safe(directions)
    leave, axis = (torch.where(d > 0, sizes - origins, -sizes - origins) / d).min(dim=-1)
    inside = (origins.abs() <= sizes).all(dim=-1) & (leave > 0)
    normals = F.one_hot(axis, 3).to(d.dtype) * -torch.sign(d)
    return torch.where(inside, leave, torch.inf), normals


HIT_FUNCTIONS = {ELLIPSOID: _hit_ellipsoids, BOX: _hit_boxes, CYLINDER: _hit_cylinders, ROOM: _hit_rooms}


@dataclass(frozen=True)
class Hits:
    """Nearest hit per ray: distance `t` along the (unnormalized) direction (inf on a miss), the unit world normal
    there, the primitive hit (-1 on a miss) and the hit point in that primitive's local frame (unscaled)."""

    t: Float[Tensor, " rays"]
    normals: Float[Tensor, "rays 3"]
    primitive: Int[Tensor, " rays"]
    local_points: Float[Tensor, "rays 3"]


def intersect(primitives: Primitives, origins: Float[Tensor, "rays 3"], directions: Float[Tensor, "rays 3"]) -> Hits:
    """The nearest surface along each ray. Vectorized over rays; each convex primitive is tested exactly only on the
    rays that meet its bounding sphere (a room, on every ray)."""
    t_best = torch.full(origins.shape[:1], torch.inf, dtype=origins.dtype)
    normals = torch.zeros_like(origins)
    local_points = torch.zeros_like(origins)
    primitive = torch.full(origins.shape[:1], -1, dtype=torch.long)
    radii = primitive_radii(primitives.kinds, primitives.sizes)
    squared_length = (directions * directions).sum(-1)
    for p in range(primitives.kinds.shape[0]):
        kind = int(primitives.kinds[p])
        offsets = origins - primitives.centers[p]
        if kind == ROOM:
            candidates = torch.arange(origins.shape[0])
        else:
            b = (offsets * directions).sum(-1)
            c = (offsets * offsets).sum(-1) - radii[p] ** 2
            candidates = torch.nonzero(b * b - squared_length * c >= 0).flatten()
        rotation = primitives.rotations[p]  # local = R^T (world - c), i.e. rows @ R
        local_origins, local_directions = offsets[candidates] @ rotation, directions[candidates] @ rotation
        t, local_normals = HIT_FUNCTIONS[kind](local_origins, local_directions, primitives.sizes[p])
        closer = t < t_best[candidates]
        chosen = candidates[closer]
        t_best[chosen] = t[closer]
        normals[chosen] = local_normals[closer] @ rotation.T
        local_points[chosen] = local_origins[closer] + t[closer, None] * local_directions[closer]
        primitive[chosen] = p
    return Hits(t=t_best, normals=F.normalize(normals, dim=-1), primitive=primitive, local_points=local_points)


@dataclass(frozen=True)
class Light:
    """A directional light (`direction` towards the light, world frame) or, with `point=True`, a point light at
    `position`; `shadows`: hard shadows cast by every primitive but rooms (point lights only)."""

    direction: tuple[float, float, float] = (0.0, 0.0, 1.0)
    position: tuple[float, float, float] | None = None
    ambient: float = 0.35
    two_sided: bool = False  # light a surface seen from behind as if its normal faced the viewer
    shadows: bool = False


@dataclass(frozen=True)
class Scene:
    """What an app's synthetic item looks like: primitives, a material, a light and the background grey level."""

    primitives: Primitives
    albedo: Callable[[Hits, Tensor], Tensor]  # (hits, world points [rays 3]) -> RGB [rays 3]
    light: Light = Light()
    background: float = 1.0
    label: Callable[[Hits, Tensor], Tensor] | None = None  # extra per-ray label for edge detection (int [rays])


def shade(scene: Scene, hits: Hits, points: Float[Tensor, "rays 3"], directions: Tensor) -> Float[Tensor, "rays 3"]:
    """albedo · (ambient + (1 − ambient) · max(0, n·l) · lit), the background on misses."""
    light = scene.light
    normals = hits.normals
    if light.two_sided:
        normals = torch.where(((normals * directions).sum(-1) > 0)[:, None], -normals, normals)
    if light.position is None:
        towards = F.normalize(torch.tensor(light.direction, dtype=points.dtype), dim=0)
        lambert = (normals @ towards).clamp(min=0)
    else:
        to_light = torch.tensor(light.position, dtype=points.dtype) - points
        lambert = ((normals * to_light).sum(-1) / to_light.norm(dim=-1)).clamp(min=0)
        if light.shadows:
            lambert = lambert * ~_shadowed(scene.primitives, points + 1e-3 * normals, to_light - 1e-3 * normals)
    colour = scene.albedo(hits, points) * (light.ambient + (1 - light.ambient) * lambert)[:, None]
    return torch.where((hits.primitive >= 0)[:, None], colour, torch.full_like(colour, scene.background))


def _shadowed(primitives: Primitives, starts: Tensor, towards: Tensor) -> Tensor:
    """Whether a primitive other than a room lies between each start point and the light (`towards` reaches it)."""
    solid = primitives.kinds != ROOM
    if not solid.any():
        return torch.zeros(starts.shape[0], dtype=torch.bool)
    occluders = Primitives(*(getattr(primitives, name)[solid] for name in ("kinds", "centers", "rotations", "sizes")))
    return intersect(occluders, starts, towards).t < 1.0


def cast_rays(
    scene: Scene,
    cam_to_world: Float[Tensor, "views 4 4"],
    K: Float[Tensor, "views 3 3"],
    view: Int[Tensor, " rays"],
    u: Float[Tensor, " rays"],
    v: Float[Tensor, " rays"],
    max_rays: int = 1 << 18,
) -> tuple[Float[Tensor, "rays 3"], Float[Tensor, " rays"], Int[Tensor, " rays"]]:
    """Colour, camera depth (inf on a miss) and label (primitive, refined by `scene.label`; -1 on a miss) of the rays
    through image points (u, v) (pixel units, centres at +0.5) of the given views, in chunks of `max_rays`."""
    c2w = cam_to_world.float()
    K_inv = torch.linalg.inv(K.float())
    colours, depths, labels = [], [], []
    for start in range(0, view.shape[0], max_rays):
        index = view[start : start + max_rays]
        ones = torch.ones_like(index, dtype=torch.float32)
        pixels = torch.stack([u[start : start + max_rays], v[start : start + max_rays], ones], dim=-1)
        rays_cam = torch.einsum("rij,rj->ri", K_inv[index], pixels)  # camera z = 1: t is camera depth
        directions = torch.einsum("rij,rj->ri", c2w[index, :3, :3], rays_cam)
        origins = c2w[index, :3, 3]
        hits = intersect(scene.primitives, origins, directions)
        points = origins + hits.t.nan_to_num(posinf=0)[:, None] * directions
        colours.append(shade(scene, hits, points, directions))
        depths.append(hits.t)
        label = hits.primitive if scene.label is None else scene.label(hits, points)
        labels.append(torch.where(hits.primitive >= 0, label, -1))
    return torch.cat(colours), torch.cat(depths), torch.cat(labels)


def edge_pixels(
    labels: Int[Tensor, "views height width"], colours: Float[Tensor, "views 3 height width"], threshold: float
) -> Tensor:
    """Pixels whose label differs from an 8-neighbour's, or whose colour differs from one by more than
    `threshold` (any channel): where a pixel's footprint may straddle an edge."""
    height, width = labels.shape[1:]
    padded_labels = F.pad(labels[:, None].double(), (1, 1, 1, 1), mode="replicate")[:, 0]  # exact below 2^53
    padded_colours = F.pad(colours, (1, 1, 1, 1), mode="replicate")
    edge = torch.zeros_like(labels, dtype=torch.bool)
    for dy in range(3):
        for dx in range(3):
            edge |= padded_labels[:, dy : dy + height, dx : dx + width] != labels
            difference = (padded_colours[:, :, dy : dy + height, dx : dx + width] - colours).abs().amax(dim=1)
            edge |= difference > threshold
    return edge


@dataclass(frozen=True)
class SceneRender:
    """Anti-aliased images and the camera depth at each pixel centre (inf where it sees background)."""

    rgb: Float[Tensor, "views 3 height width"]
    depth: Float[Tensor, "views height width"]


@runtime_checkable
class Describable(Protocol):
    """An app's scene type: anything that can describe itself for the ray caster."""

    def described(self) -> Scene: ...


def render_scene(
    scene: Scene | Describable,
    cam_to_world: Float[Tensor, "views 4 4"],
    K: Float[Tensor, "views 3 3"],
    height: int,
    width: int,
    supersampling: int = 3,
    adaptive: bool = True,
    edge_threshold: float = 0.02,
) -> SceneRender:
    """Ray-cast `scene` from each camera. Pixel colour = mean of `supersampling`^2 samples on a regular sub-grid
    (sample k at (k + 0.5) / supersampling of the pixel). `adaptive`: one sample at each pixel centre first, then
    the full sub-grid only where a pixel may straddle an edge (`edge_pixels`); in smooth interiors the centre sample
    equals the sub-grid mean up to the (second-order) curvature of the shading. `scene` may be an app's scene type
    (`Describable`). Colours are clamped to [0, 1]."""
    scene = scene if isinstance(scene, Scene) else scene.described()
    views = cam_to_world.shape[0]
    s = supersampling
    view, row, col = torch.meshgrid(torch.arange(views), torch.arange(height), torch.arange(width), indexing="ij")
    view, row, col = view.flatten(), row.flatten().float(), col.flatten().float()
    colour, depth, label = cast_rays(scene, cam_to_world, K, view, col + 0.5, row + 0.5)
    rgb = colour.reshape(views, height, width, 3).permute(0, 3, 1, 2).contiguous()
    depth = depth.reshape(views, height, width)
    if s == 1:
        return SceneRender(rgb=rgb.clamp(0, 1), depth=depth)
    if adaptive:
        refine = torch.nonzero(edge_pixels(label.reshape(views, height, width), rgb, edge_threshold).flatten())
        refine = refine.flatten()
    else:
        refine = torch.arange(views * height * width)
    offsets = (torch.arange(s, dtype=torch.float32) + 0.5) / s
    dv, du = (o.flatten() for o in torch.meshgrid(offsets, offsets, indexing="ij"))
    samples = refine.repeat_interleave(s * s)
    du, dv = du.repeat(refine.shape[0]), dv.repeat(refine.shape[0])
    colour, _, _ = cast_rays(scene, cam_to_world, K, view[samples], col[samples] + du, row[samples] + dv)
    flat = rgb.permute(0, 2, 3, 1).reshape(-1, 3).clone()
    flat[refine] = colour.reshape(-1, s * s, 3).mean(dim=1)
    rgb = flat.reshape(views, height, width, 3).permute(0, 3, 1, 2).contiguous()
    return SceneRender(rgb=rgb.clamp(0, 1), depth=depth)


def to_uint8(images: Float[Tensor, "views 3 height width"]) -> Tensor:
    """[views 3 H W] in [0, 1] → [views H W 3] uint8 (rounded, clamped)."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with `count` intra-op threads, then restore the previous setting. Ray casting is many small
    tensor operations, for which one thread is the fastest on a busy machine (and the output does not depend on it)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
