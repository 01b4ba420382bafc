"""The built-in synthetic RealEstate10K-format rooms: generated on first use, cached on disk.

Each scene is a room (walls, floor and ceiling textured with checkers, stripes, bricks, grids or value noise) with a
few boxes and spheres, ray-cast by `splat_apps.synthetic.raycast` under a ceiling point light with hard shadows.
Shading does not depend on the viewing direction, so a surface point has the same colour in every frame. The camera
(OpenCV axes, world z up) walks forward along a slowly turning loop around the room centre, 2-3 cm and about 1° per
frame, more than a metre from the walls and half a metre from the objects, so frames 30 apart still overlap.

Written under `<cache>/re10k-<hash of the options>/` (published by `splat_apps.synthetic.cache.cached`) in the
layouts `data.py` reads, `chunks/` and `txt/` (optional), with `splits/test_files.txt` of the test scenes.
"""

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from splat_apps.synthetic import raycast
from splat_apps.synthetic.cache import cached, default_cache_dir, options_key
from splat_apps.synthetic.raycast import torch_threads
from splat_render import look_at

from .data import (
    SPLIT_FILE,
    ChunkDataset,
    FrameSequence,
    TxtDataset,
    encode_jpeg,
    pixel_intrinsics,
    write_chunk,
    write_txt,
)
from .protocol import generate_split, write_split

GENERATOR_VERSION = 2  # part of the cache key: bump it whenever generated scenes or files change
SPLITS = ("train", "test")
FRAME_MICROSECONDS = 33_367  # timestamps advance like a 29.97 fps video
TEXTURES = ("checker", "stripes", "noise", "bricks", "grid")
LATTICE_SIZE = 8  # value-noise and per-tile lattices: [8, 8]
CELLS = 256  # pattern cells are labelled modulo CELLS along each direction (edge detection only)
AMBIENT = 0.35
Progress = Callable[[str, int, int], None]  # (split, scenes done, scenes in the split)


@dataclass(frozen=True)
class SyntheticOptions:
    """What to generate; every field is part of the cache key."""

    height: int = 64  # frame rows
    width: int = 96  # frame columns (3:2 like Flash3D's 256x384)
    train_scenes: int = 20  # scenes of the train split
    test_scenes: int = 10  # scenes of the test split
    frames: int = 60  # frames per scene
    seed: int = 0  # scene i of a split is the same for every scene count
    supersample: int = 2  # samples per pixel side (anti-aliasing)
    jpeg_quality: int = 95
    scenes_per_chunk: int = 8  # sequences per pixelSplat chunk file
    split_every: int = 10  # evaluation split: a source every k frames of each test scene
    write_txt: bool = True  # also write the original txt layout (same JPEGs)

    def __post_init__(self) -> None:
        for name in ("height", "width", "frames", "supersample", "scenes_per_chunk", "split_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.train_scenes < 0 or self.test_scenes < 0:
            raise ValueError("train_scenes and test_scenes must be non-negative")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")

    def scenes(self, split: str) -> int:
        return {"train": self.train_scenes, "test": self.test_scenes}[split]

    def key(self) -> str:
        """The cache folder name: `re10k-<hash of the options and GENERATOR_VERSION>`."""
        return options_key("re10k", self, GENERATOR_VERSION)


@dataclass(frozen=True, eq=False)
class Texture:
    """A procedural pattern on a surface with coordinates (u, v) in metres."""

    kind: str  # one of TEXTURES
    colours: np.ndarray  # [2, 3] RGB in [0, 1]: base and pattern colour
    scale: float  # pattern period in metres
    angle: float  # rotation of the pattern in radians
    lattice: np.ndarray  # [8, 8] values in [0, 1]: value noise and per-tile variation


@dataclass(frozen=True, eq=False)
class Box:
    centre: np.ndarray  # [3]
    half_size: np.ndarray  # [3] half extents along the box's own axes
    yaw: float  # rotation about world z
    texture: Texture


@dataclass(frozen=True, eq=False)
class Sphere:
    centre: np.ndarray  # [3]
    radius: float
    texture: Texture


@dataclass(frozen=True, eq=False)
class Scene:
    """A room [-hx, hx] × [-hy, hy] × [0, height] (z up) with textured faces, objects and a point light."""

    half_extent: np.ndarray  # [2] hx, hy
    height: float
    faces: tuple[Texture, ...]  # x-, x+, y-, y+, floor, ceiling
    boxes: tuple[Box, ...]
    spheres: tuple[Sphere, ...]
    light: np.ndarray  # [3]
    objects: tuple[Box | Sphere, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "objects", (*self.boxes, *self.spheres))

    def described(self) -> raycast.Scene:
        """The scene for the ray caster: the room as a ROOM centred at (0, 0, height / 2), then the objects (yawed
        boxes, spheres as ELLIPSOIDs); textured albedo and face edges (`material`); the point light, hard shadows."""
        (hx, hy), hz = (float(x) for x in self.half_extent), self.height / 2
        primitives = raycast.Primitives(
            kinds=torch.tensor(
                [raycast.ROOM] + [raycast.BOX] * len(self.boxes) + [raycast.ELLIPSOID] * len(self.spheres)
            ),
            centers=_floats([[0.0, 0.0, hz], *(o.centre for o in self.objects)]),
            rotations=_floats([np.eye(3), *(_yaw(b.yaw) for b in self.boxes), *(np.eye(3) for _ in self.spheres)]),
            sizes=_floats([[hx, hy, hz], *(b.half_size for b in self.boxes), *([s.radius] * 3 for s in self.spheres)]),
        )
        albedo, label = material(primitives, TextureTable.of((*self.faces, *(o.texture for o in self.objects))))
        light = raycast.Light(position=tuple(float(x) for x in self.light), ambient=AMBIENT, shadows=True)
        return raycast.Scene(primitives, albedo, light, 1.0, label)


def _floats(values) -> Tensor:
    return torch.tensor(np.asarray(values, dtype=np.float32))


def _yaw(angle: float) -> np.ndarray:
    """Rotation about world z by `angle` (columns: the rotated x, y, z axes)."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _hsv_to_rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6.0) % 6.0
    return value - value * saturation * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _random_texture(rng: np.random.Generator, hue: float, kind: str | None = None) -> Texture:
    base = _hsv_to_rgb(hue % 1.0, rng.uniform(0.25, 0.75), rng.uniform(0.55, 0.95))
    pattern = _hsv_to_rgb((hue + rng.uniform(0.25, 0.75)) % 1.0, rng.uniform(0.3, 0.9), rng.uniform(0.2, 0.6))
    return Texture(
        kind=kind if kind is not None else TEXTURES[int(rng.integers(len(TEXTURES)))],
        colours=np.stack([base, pattern]),
        scale=float(rng.uniform(0.35, 0.8)),
        angle=float(rng.uniform(0.0, math.pi)),
        lattice=rng.uniform(0.0, 1.0, size=(LATTICE_SIZE, LATTICE_SIZE)),
    )


@dataclass(frozen=True)
class CameraPath:
    """Camera-to-world poses (OpenCV axes, world z up) and normalized intrinsics of one scene's frames."""

    cam_to_world: Float[Tensor, "views 4 4"]
    intrinsics: Float[Tensor, "views 3 3"]  # normalized: row 0 / width, row 1 / height


def sample_path(rng: np.random.Generator, half_extent: np.ndarray, frames: int, aspect: float) -> CameraPath:
    """A smooth forward walk on an ellipse at 50% of the room's half extents (aspect = width / height of the frames),
    looking along the direction of travel with a slow ±6° yaw wobble, a small downward pitch, 1.5 m eye height and
    ±1.5 cm walking bob."""
    radii = 0.5 * half_extent
    step = rng.uniform(0.02, 0.03)  # metres per frame
    direction = rng.choice([-1.0, 1.0])
    start = rng.uniform(0.0, 2 * math.pi)
    mean_radius = float(np.sqrt(radii[0] * radii[1]))
    frame = np.arange(frames, dtype=np.float64)
    theta = start + direction * step * frame / mean_radius
    breathing = 1.0 + 0.04 * np.sin(2 * math.pi * frame / rng.uniform(70, 110) + rng.uniform(0, 2 * math.pi))
    x = radii[0] * breathing * np.cos(theta)
    y = radii[1] * breathing * np.sin(theta)
    z = rng.uniform(1.4, 1.6) + 0.015 * np.sin(2 * math.pi * frame / 12.0 + rng.uniform(0, 2 * math.pi))
    # heading: the ellipse's tangent plus a slow wobble
    tangent = np.stack([-radii[0] * np.sin(theta), radii[1] * np.cos(theta)], axis=-1) * direction
    yaw = np.arctan2(tangent[:, 1], tangent[:, 0])
    yaw = yaw + math.radians(6.0) * np.sin(2 * math.pi * frame / rng.uniform(40, 70) + rng.uniform(0, 2 * math.pi))
    pitch = math.radians(rng.uniform(-8.0, 0.0)) + math.radians(2.0) * np.sin(2 * math.pi * frame / 45.0)
    forward = np.stack([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)], axis=-1)
    eye = torch.from_numpy(np.stack([x, y, z], axis=-1))
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(frames, 3)
    cam_to_world = look_at(eye, eye + torch.from_numpy(forward), up)
    fov = math.radians(rng.uniform(75.0, 90.0))  # horizontal field of view (RealEstate10K: about 90°)
    fx = 0.5 / math.tan(fov / 2)  # normalized by the width
    fy = fx * aspect  # square pixels: fy_pixels = fx_pixels
    K = torch.tensor([[fx, 0.0, 0.5], [0.0, fy, 0.5], [0.0, 0.0, 1.0]], dtype=torch.float64).expand(frames, 3, 3)
    return CameraPath(cam_to_world=cam_to_world, intrinsics=K.clone())


def _footprint_distance(points: np.ndarray, obj: Box | Sphere) -> np.ndarray:
    """Horizontal distance from points [n, 2] to an object's footprint."""
    if isinstance(obj, Sphere):
        return np.linalg.norm(points - obj.centre[:2], axis=-1) - obj.radius
    c, s = math.cos(obj.yaw), math.sin(obj.yaw)
    local = np.einsum("nj,jk->nk", points - obj.centre[:2], np.array([[c, -s], [s, c]]))
    outside = np.maximum(np.abs(local) - obj.half_size[:2], 0.0)
    return np.linalg.norm(outside, axis=-1)


def sample_scene(
    rng: np.random.Generator, half_extent: np.ndarray, path_xy: np.ndarray, clearance: float = 0.5
) -> Scene:
    """A room with one texture per face, 4-6 boxes and 2-3 spheres at least `clearance` metres from the camera
    path `path_xy` [n, 2] (horizontally) and inside the room."""
    height = float(rng.uniform(2.5, 3.0))
    hue = rng.uniform(0.0, 1.0)
    kinds = [*rng.permutation(TEXTURES).tolist(), TEXTURES[int(rng.integers(len(TEXTURES)))]]
    faces = tuple(_random_texture(rng, hue + 0.618 * i, kinds[i]) for i in range(6))
    objects: list[Box | Sphere] = []
    wanted = [("box", int(rng.integers(4, 7))), ("sphere", int(rng.integers(2, 4)))]
    for kind, count in wanted:
        placed, attempts = 0, 0
        while placed < count and attempts < 200:
            attempts += 1
            centre_xy = rng.uniform(-1.0, 1.0, size=2) * (half_extent - 0.5)
            object_hue = hue + rng.uniform(0.0, 1.0)
            if kind == "box":
                half = np.array([rng.uniform(0.15, 0.45), rng.uniform(0.15, 0.45), rng.uniform(0.2, 0.7)])
                candidate: Box | Sphere = Box(
                    centre=np.array([*centre_xy, half[2]]),
                    half_size=half,
                    yaw=float(rng.uniform(0.0, math.pi)),
                    texture=_random_texture(rng, object_hue),
                )
            else:
                radius = float(rng.uniform(0.2, 0.4))
                z = radius if rng.uniform() < 0.5 else float(rng.uniform(0.6, height - radius - 0.3))
                candidate = Sphere(np.array([*centre_xy, z]), radius, _random_texture(rng, object_hue))
            reach = float(np.linalg.norm(candidate.half_size[:2])) if isinstance(candidate, Box) else candidate.radius
            outside = np.any(np.abs(centre_xy) + reach > half_extent - 0.05)  # would cut into a wall
            too_close = _footprint_distance(path_xy, candidate).min() < clearance
            overlaps = any(_footprint_distance(other.centre[None, :2], candidate)[0] < 0.5 for other in objects)
            if not (too_close or outside or overlaps):
                objects.append(candidate)
                placed += 1
    light = np.array([*(rng.uniform(-0.3, 0.3, size=2) * half_extent), height - 0.3])
    boxes = tuple(o for o in objects if isinstance(o, Box))
    spheres = tuple(o for o in objects if isinstance(o, Sphere))
    return Scene(half_extent=half_extent, height=height, faces=faces, boxes=boxes, spheres=spheres, light=light)


# ---------------------------------------------------------------------------------------------------------------------
# The material: this app's procedural textures for the shared ray caster


@dataclass(frozen=True)
class TextureTable:
    """Textures stacked for per-ray lookup; slot s: the room's faces 0-5 (x-, x+, y-, y+, floor, ceiling), then
    object i at 6 + i (boxes, then spheres, as in `Scene.objects`)."""

    kinds: Int[Tensor, " slots"]  # index into TEXTURES
    colours: Float[Tensor, "slots 2 3"]
    scales: Float[Tensor, " slots"]
    cos: Float[Tensor, " slots"]
    sin: Float[Tensor, " slots"]
    lattices: Float[Tensor, "slots cells"]  # the [8, 8] lattices, row-major

    @staticmethod
    def of(textures: tuple[Texture, ...]) -> "TextureTable":
        return TextureTable(
            kinds=torch.tensor([TEXTURES.index(t.kind) for t in textures]),
            colours=_floats([t.colours for t in textures]),
            scales=_floats([t.scale for t in textures]),
            cos=_floats([math.cos(t.angle) for t in textures]),
            sin=_floats([math.sin(t.angle) for t in textures]),
            lattices=_floats([t.lattice.reshape(-1) for t in textures]),
        )


Lookup = Callable[[Tensor, Tensor], Tensor]  # (lattice row, column) [n] int -> value [n], indices taken mod 8


def _value_noise(lattice: Lookup, a: Tensor, b: Tensor) -> Tensor:
    ia, ib = torch.floor(a), torch.floor(b)
    fa, fb = a - ia, b - ib
    fa, fb = fa * fa * (3 - 2 * fa), fb * fb * (3 - 2 * fb)
    i0, j0 = ia.long(), ib.long()
    top = lattice(j0, i0) * (1 - fa) + lattice(j0, i0 + 1) * fa
    bottom = lattice(j0 + 1, i0) * (1 - fa) + lattice(j0 + 1, i0 + 1) * fa
    return top * (1 - fb) + bottom * fb


def _cell(row: Tensor, column: Tensor) -> Tensor:
    """A label of a pattern's cell, distinct from its neighbours' (for the edge detection)."""
    return torch.remainder(row.long(), CELLS) * CELLS + torch.remainder(column.long(), CELLS)


# Patterns: (a, b) in periods, the texture's lattice -> (mix towards the pattern colour in [0, 1], cell label). Cells
# change across the pattern's sharp edges (checker and brick borders, grid lines, stripe transitions), so that an edge
# lying between two pixel centres is supersampled even where both centres have the same colour.


def _checker(a: Tensor, b: Tensor, lattice: Lookup) -> tuple[Tensor, Tensor]:
    fa, fb = torch.floor(a), torch.floor(b)
    return torch.remainder(fa + fb, 2), _cell(fb, fa)


def _stripes(a: Tensor, b: Tensor, lattice: Lookup) -> tuple[Tensor, Tensor]:
    return (0.5 + 1.5 * torch.sin(2 * math.pi * a)).clamp(0.0, 1.0), _cell(torch.zeros_like(a), torch.floor(2 * a))


def _noise(a: Tensor, b: Tensor, lattice: Lookup) -> tuple[Tensor, Tensor]:
    coarse = _value_noise(lattice, 2 * a, 2 * b)
    fine = _value_noise(lambda row, column: lattice(column, row), 5 * a, 5 * b)  # the transposed lattice
    return ((0.65 * coarse + 0.35 * fine - 0.5) * 2.5 + 0.5).clamp(0.0, 1.0), torch.zeros_like(a, dtype=torch.long)


def _bricks(a: Tensor, b: Tensor, lattice: Lookup) -> tuple[Tensor, Tensor]:
    row = torch.floor(2 * b)
    shifted = a + 0.5 * torch.remainder(row, 2)
    column = torch.floor(shifted)
    mortar = ((shifted - column) < 0.06) | ((2 * b - row) < 0.12)
    return torch.where(mortar, 1.0, 0.3 * lattice(row.long(), column.long())), _cell(row, column)


def _grid(a: Tensor, b: Tensor, lattice: Lookup) -> tuple[Tensor, Tensor]:
    fa, fb = torch.floor(a), torch.floor(b)
    line = ((a - fa) < 0.08) | ((b - fb) < 0.08)
    return torch.where(line, 1.0, 0.35 * lattice(fb.long(), fa.long())), _cell(fb, fa)


PATTERNS = {"checker": _checker, "stripes": _stripes, "noise": _noise, "bricks": _bricks, "grid": _grid}


def texture_colours(
    table: TextureTable, slot: Int[Tensor, " rays"], u: Float[Tensor, " rays"], v: Float[Tensor, " rays"]
) -> tuple[Float[Tensor, "rays 3"], Int[Tensor, " rays"]]:
    """RGB of texture `slot` of `table` at surface coordinates (u, v) in metres (the base colour mixed towards the
    pattern colour by the pattern, rotated by the texture's angle, period `scale`) and the pattern's cell label (in
    [0, CELLS²)). One pass per texture kind present."""
    cos, sin, scale = table.cos[slot], table.sin[slot], table.scales[slot]
    a, b = (cos * u + sin * v) / scale, (cos * v - sin * u) / scale
    mix, cell = torch.zeros_like(a), torch.zeros_like(slot)
    kinds = table.kinds[slot]
    size = LATTICE_SIZE
    for code, kind in enumerate(TEXTURES):
        rays = torch.nonzero(kinds == code).flatten()
        if rays.numel() == 0:
            continue
        base = slot[rays] * size * size

        def lattice(row: Tensor, column: Tensor, base: Tensor = base) -> Tensor:
            return table.lattices.view(-1)[base + torch.remainder(row, size) * size + torch.remainder(column, size)]

        mix[rays], cell[rays] = PATTERNS[kind](a[rays], b[rays], lattice)
    colours = table.colours[slot]
    return colours[:, 0] * (1 - mix[:, None]) + colours[:, 1] * mix[:, None], cell


def surface_coordinates(
    primitives: raycast.Primitives, hits: raycast.Hits, points: Float[Tensor, "rays 3"]
) -> tuple[Int[Tensor, " rays"], Int[Tensor, " rays"], Float[Tensor, " rays"], Float[Tensor, " rays"]]:
    """(texture slot, face, u, v) of the hits on `Scene.described()`'s primitives (the room, then `Scene.objects`).
    The face of the room or a box is 2 · axis + [local coordinate > 0] (0 on spheres), from the hit point in the
    primitive's frame; the room is textured in world coordinates (x-/x+ walls: (y, z), y-/y+ walls: (x, z), floor and
    ceiling: (x, y)), a box face in the box frame (the same pairs, u shifted by the axis), a sphere by (longitude ·
    radius, height above the centre)."""
    primitive = hits.primitive.clamp(min=0)
    lx, ly, lz = hits.local_points.T.contiguous()  # [3, rays]: row arithmetic, no reductions over size-3 dims
    sx, sy, sz = primitives.sizes.T[:, primitive]
    rx, ry, rz = lx.abs() / sx, ly.abs() / sy, lz.abs() / sz
    on_x = (rx >= ry) & (rx >= rz)  # the face's axis: the largest |coordinate| / half extent (the first on ties)
    on_y = ~on_x & (ry >= rz)
    axis = torch.where(on_x, 0, torch.where(on_y, 1, 2))
    face = 2 * axis + (torch.where(on_x, lx, torch.where(on_y, ly, lz)) > 0).long()
    room = primitive == 0  # its local x and y are the world's (centre (0, 0, height / 2), no rotation)
    u = torch.where(on_x, ly, lx) + torch.where(room, 0, axis)
    v = torch.where(on_x | on_y, torch.where(room, points[:, 2], lz), ly)
    sphere = primitives.kinds[primitive] == raycast.ELLIPSOID
    u = torch.where(sphere, torch.atan2(ly, lx) * sx, u)
    v = torch.where(sphere, lz, v)
    return torch.where(room, face, 5 + primitive), torch.where(sphere, 0, face), u, v


def material(
    primitives: raycast.Primitives, table: TextureTable
) -> tuple[Callable[[raycast.Hits, Tensor], Tensor], Callable[[raycast.Hits, Tensor], Tensor]]:
    """The albedo (textures at the surface coordinates) and edge label ((6 · primitive + face) · CELLS² + the
    pattern's cell) callbacks. The caster calls the label right after the albedo on the same hits, which then share
    one evaluation. Labels stay below 2^24, exact in the float32 that `raycast.edge_pixels` compares them in."""
    last: list = [None, None, None]  # hits, face, cell

    def evaluate(hits: raycast.Hits, points: Tensor) -> Tensor:
        slot, face, u, v = surface_coordinates(primitives, hits, points)
        colour, cell = texture_colours(table, slot, u, v)
        last[:] = hits, face, cell
        return colour

    def label(hits: raycast.Hits, points: Tensor) -> Tensor:
        if last[0] is not hits:
            evaluate(hits, points)
        _, face, cell = last
        last[:] = None, None, None
        return (6 * hits.primitive + face) * CELLS**2 + cell

    return evaluate, label


def render_depth(
    scene: Scene, cam_to_world: Float[Tensor, "views 4 4"], K: Float[Tensor, "views 3 3"], height: int, width: int
) -> Float[Tensor, "views height width"]:
    """Depth (camera z) [views, height, width] of the surface seen through each pixel centre."""
    return raycast.render_scene(scene, cam_to_world, K, height, width, supersampling=1).depth


# ---------------------------------------------------------------------------------------------------------------------
# Scenes → sequences → files


def scene_key(seed: int, split: str, index: int) -> str:
    """A 16-hex-digit key like RealEstate10K's."""
    return hashlib.sha256(f"re10k-synthetic:{seed}:{split}:{index}".encode()).hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class SyntheticScene:
    """One generated scene: its geometry, camera path and frames (before JPEG)."""

    key: str
    scene: Scene
    path: CameraPath
    images: Float[Tensor, "views 3 height width"]  # in [0, 1]
    timestamps: list[int]


def generate_scene(options: SyntheticOptions, split: str, index: int) -> SyntheticScene:
    """Scene `index` of `split`: room, path, objects and rendered frames (deterministic in options.seed)."""
    rng = np.random.default_rng([options.seed, SPLITS.index(split), index])
    half_extent = np.array([rng.uniform(3.0, 4.0), rng.uniform(2.5, 3.2)])  # a living room of 6-8 m × 5-6.4 m
    path = sample_path(rng, half_extent, options.frames, options.width / options.height)
    scene = sample_scene(rng, half_extent, path.cam_to_world[:, :2, 3].numpy())
    K = pixel_intrinsics(path.intrinsics, options.height, options.width)
    images = raycast.render_scene(scene, path.cam_to_world, K, options.height, options.width, options.supersample).rgb
    start = int(rng.integers(10_000_000, 300_000_000))
    timestamps = [start + FRAME_MICROSECONDS * i for i in range(options.frames)]
    return SyntheticScene(scene_key(options.seed, split, index), scene, path, images, timestamps)


def to_sequence(scene: SyntheticScene, quality: int, source: Path) -> FrameSequence:
    """The scene as a `FrameSequence` with JPEG frames (what the chunk and txt writers store)."""
    jpegs = [encode_jpeg(image, quality) for image in raycast.to_uint8(scene.images).numpy()]
    return FrameSequence(
        key=scene.key,
        url=f"synthetic://re10k/{scene.key}",
        timestamps=torch.tensor(scene.timestamps, dtype=torch.int64),
        intrinsics=scene.path.intrinsics.float(),
        world_to_cam=torch.linalg.inv(scene.path.cam_to_world).float(),
        frames=tuple(torch.frombuffer(bytearray(jpeg), dtype=torch.uint8) for jpeg in jpegs),
        source=source,
    )


@dataclass(frozen=True)
class SyntheticDataset:
    """Where a generated dataset lives: `chunks` and `txt` (None unless written) are roots of the two layouts."""

    root: Path
    options: SyntheticOptions

    @property
    def chunks(self) -> Path:
        return self.root / "chunks"

    @property
    def txt(self) -> Path | None:
        return self.root / "txt" if self.options.write_txt else None

    @property
    def split_file(self) -> Path:
        return self.root / "splits" / SPLIT_FILE

    def open(self, split: str, layout: Literal["chunks", "txt"] = "chunks") -> ChunkDataset | TxtDataset:
        """The sequences of `split` read through the given layout's reader."""
        if layout == "chunks":
            return ChunkDataset(self.chunks, split)
        if layout == "txt" and self.txt is not None:
            return TxtDataset(self.txt, split)
        raise ValueError(f"layout must be 'chunks' or 'txt' (txt only when written), got {layout!r}")


def _write(options: SyntheticOptions, root: Path, progress: Progress | None) -> dict:
    """Every split in both layouts and the test split file under `root`; the manifest."""
    manifest: dict = {"generator_version": GENERATOR_VERSION, "options": asdict(options), "scenes": {}}
    for split in SPLITS:
        chunk_dir, txt_dir = root / "chunks" / split, root / "txt" / split
        chunk_dir.mkdir(parents=True)
        if options.write_txt:
            txt_dir.mkdir(parents=True)
        index: dict[str, str] = {}
        counts: dict[str, int] = {}
        total = options.scenes(split)
        for first in range(0, total, options.scenes_per_chunk):
            name = f"{first // options.scenes_per_chunk:06d}.torch"
            sequences = []
            for i in range(first, min(first + options.scenes_per_chunk, total)):
                sequence = to_sequence(generate_scene(options, split, i), options.jpeg_quality, chunk_dir / name)
                sequences.append(sequence)
                index[sequence.key], counts[sequence.key] = name, len(sequence)
                if options.write_txt:
                    write_txt(txt_dir / f"{sequence.key}.txt", txt_dir / sequence.key, sequence)
                if progress is not None:
                    progress(split, i + 1, total)
            write_chunk(chunk_dir / name, sequences)
        (chunk_dir / "index.json").write_text(json.dumps(index, indent=1) + "\n")
        manifest["scenes"][split] = list(index)
        if split == "test":
            rows = generate_split(counts, every=options.split_every, seed=options.seed)
            (root / "splits").mkdir()
            write_split(root / "splits" / SPLIT_FILE, rows)
            manifest["split_rows"] = len(rows)
    return manifest


def generate_synthetic(
    options: SyntheticOptions | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: Progress | None = None,
    threads: int = 1,
) -> SyntheticDataset:
    """Generate (or find in `cache_dir`, default `splat_apps.synthetic.cache.default_cache_dir()`) the dataset for
    `options`; `progress(split, done, total)` after every scene. `threads`: torch threads while rendering (the frames
    do not depend on it; one is the fastest for the caster's many small operations on a busy machine)."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    options = options if options is not None else SyntheticOptions()
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    def write(partial: Path) -> dict:
        with torch_threads(threads):
            return _write(options, partial, progress)

    return SyntheticDataset(cached(cache_dir / options.key(), write), options)


def _generate_command(options: SyntheticOptions, cache_dir: Path | None = None, threads: int = 1) -> SyntheticDataset:
    """Generate (or find) the synthetic RealEstate10K dataset and print its folder (default cache:
    <repo>/data/synthetic, or $LESSON_SPLATS_DATA/synthetic); `threads`: torch threads while rendering."""
    begin = time.perf_counter()
    progress: Progress = lambda split, done, total: print(f"{split}: {done}/{total}")
    dataset = generate_synthetic(options, cache_dir, progress, threads)
    print(f"{dataset.root} ({time.perf_counter() - begin:.1f} s)")
    return dataset


def main(argv: list[str] | None = None) -> int:
    import tyro

    tyro.cli(_generate_command, args=argv, config=(tyro.conf.OmitArgPrefixes,))
    return 0
