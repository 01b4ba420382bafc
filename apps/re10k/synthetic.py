"""Synthetic RealEstate10K-format scenes: the embedded default dataset, generated on first use and cached on disk.

Each scene is a room-like box (textured walls, floor and ceiling: checkers, stripes, bricks, grids, value noise, in
different colours) with a few boxes and spheres inside, ray-cast analytically in NumPy (nearest hit, Lambertian
shading from a ceiling point light with hard shadows, `supersample`² samples per pixel). It is independent of our
Gaussian renderer, so it can serve as ground truth for it. Shading does not depend on the viewing direction, so a
surface point has the same colour in every frame (up to anti-aliasing and JPEG), which the tests use to check camera
conventions photometrically.

The camera walks forward along a slowly turning loop around the room centre (2-3 cm and about 1° of turn per frame, a
small yaw wobble, slight walking bob and pitch), always more than a metre from the walls and half a metre from the
objects, so frames 30 apart still share a good part of their view (at least 15%, typically 30-40% of the pixels).
Cameras are OpenCV (x right, y down, z forward); world z is up.

Written exactly in the public layouts that `data.py` reads:

    <cache>/<name>/chunks/{train,test}/NNNNNN.torch + index.json   pixelSplat chunks (JPEG bytes, cameras [N, 18])
    <cache>/<name>/txt/{train,test}/<key>.txt + <key>/<ts>.jpg     the original RealEstate10K layout (optional)
    <cache>/<name>/splits/test_files.txt                           Flash3D-format evaluation split of the test scenes
    <cache>/<name>/manifest.json                                   options, generator version, scene keys
    <cache>/<name>/COMPLETE                                        written last

`<name>` is `re10k-<hash of the options and generator version>`. A run writes into a temporary sibling folder and
renames it into place after the marker, so an interrupted run never leaves a folder that looks complete.

    uv run apps/re10k/synthetic.py --train-scenes 20 --frames 60     # generate (or find) and print the folder
"""

import hashlib
import json
import math
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from splat_render import look_at

# sibling modules of apps/re10k (first on sys.path under `uv run apps/re10k/...`); left unsorted because
# ruff would call `data` first-party whenever a data/ folder exists at the repository root
# isort: off
from data import ChunkDataset, FrameSequence, TxtDataset, encode_jpeg, pixel_intrinsics, write_chunk, write_txt
from protocol import generate_split, write_split
# isort: on

GENERATOR_VERSION = 1  # part of the cache key: bump it whenever generated scenes or files change
DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[2] / "data" / "synthetic"
MARKER = "COMPLETE"
SPLITS = ("train", "test")
SPLIT_FILE = "test_files.txt"  # Flash3D's name for the evaluation split
FRAME_MICROSECONDS = 33_367  # timestamps advance like a 29.97 fps video
TEXTURES = ("checker", "stripes", "noise", "bricks", "grid")
EPSILON = 1e-4
AMBIENT = 0.35
RAYS_PER_BLOCK = 1 << 16
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
        payload = json.dumps({"version": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return "re10k-" + hashlib.sha256(payload.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------------------------------
# Scenes


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

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        hx, hy = self.half_extent
        return np.array([-hx, -hy, 0.0]), np.array([hx, hy, self.height])


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
        lattice=rng.uniform(0.0, 1.0, size=(8, 8)),
    )


@dataclass(frozen=True)
class CameraPath:
    """Camera-to-world poses (OpenCV axes, world z up) and normalized intrinsics of one scene's frames."""

    cam_to_world: Float[Tensor, "views 4 4"]
    intrinsics: Float[Tensor, "views 3 3"]  # normalized: row 0 / width, row 1 / height


def sample_path(rng: np.random.Generator, half_extent: np.ndarray, frames: int, aspect: float) -> CameraPath:
    """A smooth forward walk on a loop around the room centre (aspect = width / height of the frames).

    The loop is an ellipse at 50% of the room's half extents; the camera looks along the direction of travel with a
    slow ±6° yaw wobble, a small downward pitch, 1.5 m eye height with ±1.5 cm walking bob.
    """
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


def sample_room_extent(rng: np.random.Generator) -> np.ndarray:
    """Half extents (hx, hy) in metres of a living-room-sized box (6-8 m × 5-6.4 m)."""
    return np.array([rng.uniform(3.0, 4.0), rng.uniform(2.5, 3.2)])


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
# Ray casting (NumPy; independent of splat_render's Gaussian renderer)


# Rays are held as [3, n] float32 arrays (one contiguous row per coordinate): elementwise NumPy over long rows is what
# makes a 20-scene dataset take seconds.


def _value_noise(lattice: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    size = lattice.shape[0]
    ia, ib = np.floor(a), np.floor(b)
    fa, fb = a - ia, b - ib
    fa, fb = fa * fa * (3 - 2 * fa), fb * fb * (3 - 2 * fb)
    i0, j0 = ia.astype(np.int64) % size, ib.astype(np.int64) % size
    i1, j1 = (i0 + 1) % size, (j0 + 1) % size
    top = lattice[j0, i0] * (1 - fa) + lattice[j0, i1] * fa
    bottom = lattice[j1, i0] * (1 - fa) + lattice[j1, i1] * fa
    return top * (1 - fb) + bottom * fb


def texture_colour(texture: Texture, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """RGB [3, n] of a texture at surface coordinates (u, v) [n] in metres."""
    c, s = math.cos(texture.angle), math.sin(texture.angle)
    a = (c * u + s * v) / texture.scale
    b = (-s * u + c * v) / texture.scale
    size = texture.lattice.shape[0]
    if texture.kind == "checker":
        mix = (np.floor(a) + np.floor(b)) % 2
    elif texture.kind == "stripes":
        mix = np.clip(0.5 + 1.5 * np.sin(2 * math.pi * a), 0.0, 1.0)
    elif texture.kind == "noise":
        coarse, fine = _value_noise(texture.lattice, 2 * a, 2 * b), _value_noise(texture.lattice.T, 5 * a, 5 * b)
        noise = 0.65 * coarse + 0.35 * fine
        mix = np.clip((noise - 0.5) * 2.5 + 0.5, 0.0, 1.0)
    elif texture.kind == "bricks":
        row = np.floor(2 * b)
        shifted = a + 0.5 * (row % 2)
        column = np.floor(shifted)
        mortar = ((shifted - column) < 0.06) | ((2 * b - row) < 0.12)
        tile = texture.lattice[row.astype(np.int64) % size, column.astype(np.int64) % size]
        mix = np.where(mortar, 1.0, 0.3 * tile)
    elif texture.kind == "grid":
        line = ((a - np.floor(a)) < 0.08) | ((b - np.floor(b)) < 0.08)
        tile = texture.lattice[np.floor(b).astype(np.int64) % size, np.floor(a).astype(np.int64) % size]
        mix = np.where(line, 1.0, 0.35 * tile)
    else:
        raise ValueError(f"texture kind must be one of {TEXTURES}, got {texture.kind!r}")
    mix = mix.astype(np.float32)
    colours = texture.colours.astype(np.float32)
    return colours[0][:, None] * (1 - mix) + colours[1][:, None] * mix


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _to_box_frame(box: Box, vectors: np.ndarray, *, points: bool) -> np.ndarray:
    """World vectors [3, n] in the box's frame (rotated by −yaw about z; points also moved to the box centre)."""
    if points:
        vectors = vectors - box.centre.astype(np.float32)[:, None]
    c, s = math.cos(box.yaw), math.sin(box.yaw)
    return np.stack([c * vectors[0] + s * vectors[1], -s * vectors[0] + c * vectors[1], vectors[2]])


def _hit_box(box: Box, origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Distance along each ray to the box (inf where missed); slab method in the box frame."""
    o = _to_box_frame(box, origins, points=True)
    d = _to_box_frame(box, directions, points=False)
    d = np.where(np.abs(d) < 1e-12, np.float32(1e-12), d)
    half = box.half_size.astype(np.float32)[:, None]
    t1, t2 = (-half - o) / d, (half - o) / d
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)
    t_near = np.maximum(np.maximum(near[0], near[1]), near[2])
    t_far = np.minimum(np.minimum(far[0], far[1]), far[2])
    return np.where((t_near <= t_far) & (t_near > EPSILON), t_near, np.float32(np.inf))


def _box_surface(box: Box, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    local = _to_box_frame(box, points, points=True)
    relative = np.abs(local) / box.half_size.astype(np.float32)[:, None]
    axis = np.argmax(relative, axis=0)
    normal_local = np.zeros_like(local)
    normal_local[axis, np.arange(local.shape[1])] = np.sign(local[axis, np.arange(local.shape[1])])
    u = np.where(axis == 0, local[1], local[0])
    v = np.where(axis == 2, local[1], local[2])
    colour = texture_colour(box.texture, u + axis, v)
    c, s = math.cos(box.yaw), math.sin(box.yaw)
    x, y, z = normal_local
    normal = np.stack([c * x - s * y, s * x + c * y, z])
    return normal, colour


def _sphere_terms(
    centre: np.ndarray, radius: float, origins: np.ndarray, directions: np.ndarray, dd: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """b = (o − c)·d, c' = |o − c|² − r² and the discriminant b² − (d·d) c' of the ray-sphere quadratic."""
    oc = origins - centre.astype(np.float32)[:, None]
    b = _dot(oc, directions)
    c = _dot(oc, oc) - np.float32(radius**2)
    return b, c, b * b - dd * c


def _hit_sphere(sphere: Sphere, origins: np.ndarray, directions: np.ndarray, dd: np.ndarray) -> np.ndarray:
    """Distance along each ray to the sphere from outside (inf where missed); `dd` = d·d per ray."""
    b, _, discriminant = _sphere_terms(sphere.centre, sphere.radius, origins, directions, dd)
    t = (-b - np.sqrt(np.maximum(discriminant, 0.0))) / dd
    return np.where((discriminant >= 0) & (t > EPSILON), t, np.float32(np.inf))


def _sphere_surface(sphere: Sphere, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    normal = (points - sphere.centre.astype(np.float32)[:, None]) / np.float32(sphere.radius)
    u = np.arctan2(normal[1], normal[0]) * np.float32(sphere.radius)
    colour = texture_colour(sphere.texture, u, points[2] - np.float32(sphere.centre[2]))
    return normal, colour


def _hit_object(obj: Box | Sphere, origins: np.ndarray, directions: np.ndarray, dd: np.ndarray) -> np.ndarray:
    if isinstance(obj, Sphere):
        return _hit_sphere(obj, origins, directions, dd)
    # most rays miss a given box: test its bounding sphere first (rays that start inside it or would reach it),
    # run the slabs only on those
    b, c, discriminant = _sphere_terms(obj.centre, float(np.linalg.norm(obj.half_size)), origins, directions, dd)
    candidates = np.flatnonzero((c <= 0) | ((discriminant >= 0) & (b < 0)))
    t = np.full(origins.shape[1], np.inf, dtype=np.float32)
    if len(candidates):
        t[candidates] = _hit_box(obj, origins[:, candidates], directions[:, candidates])
    return t


def _room_exit(scene: Scene, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance to the room's wall/floor/ceiling from inside, and the face index (x-, x+, y-, y+, floor, ceiling)."""
    low, high = (bound.astype(np.float32)[:, None] for bound in scene.bounds)
    safe = np.where(np.abs(directions) < 1e-12, np.float32(1e-12), directions)
    t_axes = np.where(safe > 0, (high - origins) / safe, (low - origins) / safe)
    t, face = t_axes[0], np.where(safe[0] > 0, 1, 0)
    for k in (1, 2):
        closer = t_axes[k] < t
        t, face = np.where(closer, t_axes[k], t), np.where(closer, 2 * k + (safe[k] > 0), face)
    return t, face


def _room_surface(scene: Scene, points: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    normal = np.zeros_like(points)
    colour = np.zeros_like(points)
    for face, texture in enumerate(scene.faces):
        mask = faces == face
        if not mask.any():
            continue
        axis, positive = divmod(face, 2)
        normal[axis, mask] = -1.0 if positive else 1.0  # pointing into the room
        first, second = (i for i in range(3) if i != axis)
        colour[:, mask] = texture_colour(texture, points[first, mask], points[second, mask])
    return normal, colour


def _trace(scene: Scene, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t, target = _room_exit(scene, origins, directions)
    dd = _dot(directions, directions)
    for index, obj in enumerate(scene.objects):
        t_object = _hit_object(obj, origins, directions, dd)
        closer = t_object < t
        t = np.where(closer, t_object, t)
        target = np.where(closer, 6 + index, target)
    points = origins + t * directions
    normal, albedo = _room_surface(scene, points, target)
    for index, obj in enumerate(scene.objects):
        mask = target == 6 + index
        if mask.any():
            surface = _box_surface if isinstance(obj, Box) else _sphere_surface
            normal[:, mask], albedo[:, mask] = surface(obj, points[:, mask])
    to_light = scene.light.astype(np.float32)[:, None] - points
    lambert = np.maximum(_dot(normal, to_light) / np.sqrt(_dot(to_light, to_light)), 0.0)
    lit = np.flatnonzero(lambert > 0)
    if len(lit):
        start = points[:, lit] + np.float32(1e-3) * normal[:, lit]
        towards = scene.light.astype(np.float32)[:, None] - start
        blocked = np.zeros(len(lit), dtype=bool)
        towards_squared = _dot(towards, towards)
        for obj in scene.objects:
            blocked |= _hit_object(obj, start, towards, towards_squared) < 1.0
        lambert[lit[blocked]] = 0.0
    shading = np.float32(AMBIENT) + np.float32(1 - AMBIENT) * lambert
    return t, np.clip(albedo * shading, 0.0, 1.0)


def trace(scene: Scene, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit of rays [n, 3] (directions need not be unit): distance t [n] along `directions` and RGB [n, 3].

    Colour = albedo · (ambient + (1 − ambient) · max(0, n·l) · visible), l towards the point light; `visible` is 0
    where an object blocks the light (hard shadows). Computed in float32.
    """
    rows = (np.ascontiguousarray(np.asarray(x, dtype=np.float32).T) for x in (origins, directions))
    t, colour = _trace(scene, *rows)
    return t, colour.T


def camera_rays(
    cam_to_world: Float[Tensor, "views 4 4"], K: Float[Tensor, "views 3 3"], height: int, width: int, supersample: int
) -> tuple[np.ndarray, np.ndarray]:
    """Ray origins and directions [views, height·s, width·s, 3] of `supersample`² samples per pixel (K in pixels;
    pixel (i, j) covers [j, j + 1] × [i, i + 1]). Directions have camera z = 1, so t is the depth."""
    s = supersample
    offsets = (np.arange(s) + 0.5) / s
    u = (np.arange(width)[:, None] + offsets[None, :]).reshape(-1)
    v = (np.arange(height)[:, None] + offsets[None, :]).reshape(-1)
    K_np, c2w = K.float().numpy(), cam_to_world.float().numpy()
    u, v = u.astype(np.float32), v.astype(np.float32)
    fx, fy, cx, cy = (K_np[:, i, j, None, None] for i, j in ((0, 0), (1, 1), (0, 2), (1, 2)))
    x = (u[None, None, :] - cx) / fx
    y = (v[None, :, None] - cy) / fy
    x, y = np.broadcast_arrays(x, y)
    rotation = c2w[:, None, None, :3, :3]
    directions = rotation[..., 0] * x[..., None] + rotation[..., 1] * y[..., None] + rotation[..., 2]
    origins = np.broadcast_to(c2w[:, None, None, :3, 3], directions.shape)
    return origins, directions


def render_views(
    scene: Scene,
    cam_to_world: Float[Tensor, "views 4 4"],
    K: Float[Tensor, "views 3 3"],
    height: int,
    width: int,
    supersample: int = 2,
) -> np.ndarray:
    """Anti-aliased RGB [views, height, width, 3] in [0, 1] (box filter over `supersample`² samples per pixel)."""
    origins, directions = camera_rays(cam_to_world, K, height, width, supersample)
    shape = directions.shape
    flat_origins = np.ascontiguousarray(origins.reshape(-1, 3).T, dtype=np.float32)
    flat_directions = np.ascontiguousarray(directions.reshape(-1, 3).T, dtype=np.float32)
    colours = np.empty_like(flat_directions)
    for begin in range(0, flat_directions.shape[1], RAYS_PER_BLOCK):
        block = slice(begin, begin + RAYS_PER_BLOCK)
        colours[:, block] = _trace(scene, flat_origins[:, block], flat_directions[:, block])[1]
    s = supersample
    return colours.T.reshape(shape[0], height, s, width, s, 3).mean(axis=(2, 4), dtype=np.float64)


def render_depth(
    scene: Scene, cam_to_world: Float[Tensor, "views 4 4"], K: Float[Tensor, "views 3 3"], height: int, width: int
) -> np.ndarray:
    """Depth (camera z) [views, height, width] of the surface seen through each pixel centre."""
    origins, directions = camera_rays(cam_to_world, K, height, width, 1)
    t, _ = trace(scene, origins.reshape(-1, 3), directions.reshape(-1, 3))
    return t.reshape(directions.shape[:3])


# ---------------------------------------------------------------------------------------------------------------------
# Scenes → sequences → files


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS.index(split), index])


def scene_key(seed: int, split: str, index: int) -> str:
    """A 16-hex-digit key like RealEstate10K's."""
    return hashlib.sha256(f"re10k-synthetic:{seed}:{split}:{index}".encode()).hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class SyntheticScene:
    """One generated scene: its geometry, camera path and frames (before JPEG)."""

    key: str
    scene: Scene
    path: CameraPath
    images: np.ndarray  # [views, height, width, 3] float in [0, 1]
    timestamps: list[int]


def generate_scene(options: SyntheticOptions, split: str, index: int) -> SyntheticScene:
    """Scene `index` of `split`: room, path, objects and rendered frames (deterministic in options.seed)."""
    rng = scene_rng(options.seed, split, index)
    half_extent = sample_room_extent(rng)
    path = sample_path(rng, half_extent, options.frames, options.width / options.height)
    scene = sample_scene(rng, half_extent, path.cam_to_world[:, :2, 3].numpy())
    K = pixel_intrinsics(path.intrinsics, options.height, options.width)
    images = render_views(scene, path.cam_to_world, K, options.height, options.width, options.supersample)
    start = int(rng.integers(10_000_000, 300_000_000))
    timestamps = [start + FRAME_MICROSECONDS * i for i in range(options.frames)]
    return SyntheticScene(scene_key(options.seed, split, index), scene, path, images, timestamps)


def to_sequence(scene: SyntheticScene, quality: int, source: Path) -> FrameSequence:
    """The scene as a `FrameSequence` with JPEG frames (what the chunk and txt writers store)."""
    frames = tuple(
        torch.frombuffer(bytearray(encode_jpeg(np.round(image * 255).astype(np.uint8), quality)), dtype=torch.uint8)
        for image in scene.images
    )
    return FrameSequence(
        key=scene.key,
        url=f"synthetic://re10k/{scene.key}",
        timestamps=torch.tensor(scene.timestamps, dtype=torch.int64),
        intrinsics=scene.path.intrinsics.float(),
        world_to_cam=torch.linalg.inv(scene.path.cam_to_world).float(),
        frames=frames,
        source=source,
    )


@dataclass(frozen=True)
class SyntheticDataset:
    """Where a generated dataset lives (`data.ChunkDataset(chunks, split)`, `data.TxtDataset(txt, split)`)."""

    root: Path
    chunks: Path  # pixelSplat layout root: <chunks>/{train,test}/
    txt: Path | None  # original layout root: <txt>/{train,test}/ (None unless options.write_txt)
    split_file: Path  # Flash3D-format evaluation split of the test scenes
    options: SyntheticOptions

    def open(self, split: str, layout: Literal["chunks", "txt"] = "chunks") -> ChunkDataset | TxtDataset:
        """The sequences of `split` read through the given layout's reader."""
        if layout == "chunks":
            return ChunkDataset(self.chunks, split)
        if layout == "txt" and self.txt is not None:
            return TxtDataset(self.txt, split)
        raise ValueError(f"layout must be 'chunks' or 'txt' (txt only when written), got {layout!r}")


def _dataset(root: Path, options: SyntheticOptions) -> SyntheticDataset:
    return SyntheticDataset(
        root=root,
        chunks=root / "chunks",
        txt=root / "txt" if options.write_txt else None,
        split_file=root / "splits" / SPLIT_FILE,
        options=options,
    )


def is_complete(directory: Path) -> bool:
    return (directory / MARKER).is_file() and (directory / "manifest.json").is_file()


def _write(options: SyntheticOptions, root: Path, progress: Progress | None) -> dict:
    manifest: dict = {"generator_version": GENERATOR_VERSION, "options": asdict(options), "scenes": {}}
    for split in SPLITS:
        chunk_dir = root / "chunks" / split
        chunk_dir.mkdir(parents=True)
        index: dict[str, str] = {}
        counts: dict[str, int] = {}
        total = options.scenes(split)
        for first in range(0, total, options.scenes_per_chunk):
            name = f"{first // options.scenes_per_chunk:06d}.torch"
            sequences = []
            for i in range(first, min(first + options.scenes_per_chunk, total)):
                sequence = to_sequence(generate_scene(options, split, i), options.jpeg_quality, chunk_dir / name)
                sequences.append(sequence)
                index[sequence.key] = name
                counts[sequence.key] = len(sequence)
                if options.write_txt:
                    txt_dir = root / "txt" / split
                    write_txt(txt_dir / f"{sequence.key}.txt", txt_dir / sequence.key, sequence)
                if progress is not None:
                    progress(split, i + 1, total)
            write_chunk(chunk_dir / name, sequences)
        (chunk_dir / "index.json").write_text(json.dumps(index, indent=1) + "\n")
        if options.write_txt:
            (root / "txt" / split).mkdir(parents=True, exist_ok=True)
        manifest["scenes"][split] = list(index)
        if split == "test":
            (root / "splits").mkdir()
            rows = generate_split(counts, every=options.split_every, seed=options.seed)
            write_split(root / "splits" / SPLIT_FILE, rows)
            manifest["split_rows"] = len(rows)
    return manifest


def generate_synthetic(
    options: SyntheticOptions | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> SyntheticDataset:
    """Generate (or find in `cache_dir`, default `data/synthetic/`) the dataset for `options`.

    `progress(split, done, total)` is called after every scene. Written into a temporary sibling folder (manifest,
    then the COMPLETE marker), then renamed into place; a folder without the marker is regenerated.
    """
    options = options if options is not None else SyntheticOptions()
    cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    final = cache_dir / options.key()
    if is_complete(final):
        return _dataset(final, options)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache_dir / f"{final.name}.partial-{uuid.uuid4().hex[:8]}"
    partial.mkdir()
    try:
        manifest = _write(options, partial, progress)
        (partial / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        (partial / MARKER).write_text("complete\n")
        if final.exists() and not is_complete(final):
            shutil.rmtree(final)
        try:
            partial.rename(final)
        except OSError:
            if not is_complete(final):  # another process finished first otherwise
                raise
    finally:
        if partial.exists():
            shutil.rmtree(partial)
    return _dataset(final, options)


def _generate_command(options: SyntheticOptions, cache_dir: Path = DEFAULT_CACHE_DIR) -> SyntheticDataset:
    """Generate (or find) the synthetic RealEstate10K dataset and print its folder."""
    begin = time.perf_counter()
    dataset = generate_synthetic(options, cache_dir, lambda split, done, total: print(f"{split}: {done}/{total}"))
    print(f"{dataset.root} ({time.perf_counter() - begin:.1f} s)")
    return dataset


def main(argv: list[str] | None = None) -> int:
    import tyro

    tyro.cli(_generate_command, args=argv, config=(tyro.conf.OmitArgPrefixes,))
    return 0


if __name__ == "__main__":
    sys.exit(main())
