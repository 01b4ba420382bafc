"""Embedded default dataset: deterministic hydrant-like objects, ray cast analytically, written in the Splatter Image
preprocessed layout (`data.py`) so that every Co3D code path runs offline.

Each sequence is one object: a capped cylindrical body on a flange, a dome, a top nut, two side outlets and a front
pumper outlet (spheres, capped cylinders and a box), coloured differently in front of and behind a vertical plane
through its axis so that front and back views differ. Frames are exact analytic ray casts (Lambertian shading with
ambient light, `supersampling`² stratified samples per pixel for anti-aliasing) composited on black, i.e. what
`preprocess.py` makes of a masked Co3D frame. No Gaussian splatting is involved.

Cameras follow a Co3D-like hand-held orbit: one loop (80-100 %) around the object at a varying height and distance,
looking at the object with jitter and a little roll, with per-frame focal lengths. The scene and its cameras are first
placed in a random similarity frame (as an SfM reconstruction would be), then normalised with the same ViewSet
Diffusion normalisation as `preprocess.py` (`viewset_normalization`, on points sampled over the object's surface);
the written cameras are PyTorch3D (R, T), so the reader's PyTorch3D → OpenCV conversion is exercised.

Datasets are cached under `data/synthetic/co3d-<key>/` (git-ignored), keyed by a hash of the options and the
generator version, with a `manifest.json` and a `COMPLETE` marker written last (the folder is assembled under a
temporary name and renamed into place).
"""

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from preprocess import SequenceNormalization, viewset_normalization

GENERATOR_VERSION = 1
CATEGORY = "synthetic"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = REPO_ROOT / "data" / "synthetic"
COMPLETE_MARKER = "COMPLETE"
RAY_CHUNK = 8192


@dataclass(frozen=True)
class SyntheticCo3DOptions:
    """Size of the synthetic dataset; every field enters the cache key."""

    resolution: int = 128  # image side (Co3D preprocessed: 128; CPU demos may use 32 or 64)
    train_sequences: int = 12
    val_sequences: int = 2
    test_sequences: int = 4
    frames_per_sequence: int = 24
    seed: int = 0
    supersampling: int = 2  # stratified samples per pixel along each axis (anti-aliasing)

    def __post_init__(self) -> None:
        for name in ("resolution", "frames_per_sequence", "supersampling"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.frames_per_sequence < 2:
            raise ValueError(
                f"frames_per_sequence must be >= 2 (an input and a target), got {self.frames_per_sequence}"
            )
        for name in ("train_sequences", "val_sequences", "test_sequences"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def sequences(self, split: str) -> int:
        return {"train": self.train_sequences, "val": self.val_sequences, "test": self.test_sequences}[split]

    def key(self) -> str:
        """Cache key: a hash of the options and the generator version."""
        payload = json.dumps({"generator": "co3d", "version": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------------------------
# Analytic scene: primitives, ray casting, shading


@dataclass(frozen=True)
class Sphere:
    center: np.ndarray  # [3]
    radius: float
    front: np.ndarray  # [3] RGB in front of the scene's colour plane
    back: np.ndarray  # [3] RGB behind it


@dataclass(frozen=True)
class Cylinder:
    """A capped cylinder: axis through `center`, from -half_length to +half_length along unit `axis`."""

    center: np.ndarray
    axis: np.ndarray
    radius: float
    half_length: float
    front: np.ndarray
    back: np.ndarray


@dataclass(frozen=True)
class Box:
    """An oriented box: `rotation` columns are its axes, `half_extents` along them."""

    center: np.ndarray
    rotation: np.ndarray  # [3 3]
    half_extents: np.ndarray  # [3]
    front: np.ndarray
    back: np.ndarray


Primitive = Sphere | Cylinder | Box


@dataclass(frozen=True)
class Scene:
    """Primitives, a colour plane (points p with dot(p - colour_origin, front) >= 0 take their primitive's `front`
    colour) and a directional light."""

    primitives: tuple[Primitive, ...]
    colour_origin: np.ndarray  # [3]
    front: np.ndarray  # [3] unit
    light: np.ndarray  # [3] unit, towards the light
    ambient: float = 0.35

    def transformed(self, normalization: SequenceNormalization) -> "Scene":
        """The scene in a similarity frame x -> scale (x @ rotation - offset) (directions: d -> d @ rotation)."""
        point, direction, s = normalization.apply, (lambda d: d @ normalization.rotation), normalization.scale
        moved = []
        for p in self.primitives:
            if isinstance(p, Sphere):
                moved.append(Sphere(point(p.center), p.radius * s, p.front, p.back))
            elif isinstance(p, Cylinder):
                moved.append(
                    Cylinder(point(p.center), direction(p.axis), p.radius * s, p.half_length * s, p.front, p.back)
                )
            else:
                moved.append(
                    Box(point(p.center), normalization.rotation.T @ p.rotation, p.half_extents * s, p.front, p.back)
                )
        return Scene(
            tuple(moved), point(self.colour_origin), direction(self.front), direction(self.light), self.ambient
        )


def _intersect_sphere(p: Sphere, origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    oc = origins - p.center
    b = np.einsum("ij,ij->i", oc, dirs)
    c = np.einsum("ij,ij->i", oc, oc) - p.radius**2
    disc = b * b - c
    root = np.sqrt(np.maximum(disc, 0.0))
    t0, t1 = -b - root, -b + root
    t = np.where(t0 > 1e-9, t0, np.where(t1 > 1e-9, t1, np.inf))
    t = np.where(disc >= 0, t, np.inf)
    hit = origins + dirs * np.where(np.isfinite(t), t, 0.0)[:, None]
    return t, (hit - p.center) / p.radius


def _intersect_cylinder(p: Cylinder, origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    oc = origins - p.center
    o_par, d_par = oc @ p.axis, dirs @ p.axis
    o_perp, d_perp = oc - o_par[:, None] * p.axis, dirs - d_par[:, None] * p.axis
    a = np.einsum("ij,ij->i", d_perp, d_perp)
    b = np.einsum("ij,ij->i", o_perp, d_perp)
    c = np.einsum("ij,ij->i", o_perp, o_perp) - p.radius**2
    disc = b * b - a * c
    safe_a = np.where(a > 1e-12, a, 1.0)
    root = np.sqrt(np.maximum(disc, 0.0))
    candidates, normals = [], []
    for sign in (-1.0, 1.0):
        t = (-b + sign * root) / safe_a
        ok = (disc >= 0) & (a > 1e-12) & (t > 1e-9) & (np.abs(o_par + t * d_par) <= p.half_length)
        radial = o_perp + t[:, None] * d_perp
        candidates.append(np.where(ok, t, np.inf))
        normals.append(radial / p.radius)
    safe_d = np.where(np.abs(d_par) > 1e-12, d_par, 1.0)
    for sign in (-1.0, 1.0):
        t = (sign * p.half_length - o_par) / safe_d
        radial = o_perp + t[:, None] * d_perp
        ok = (np.abs(d_par) > 1e-12) & (t > 1e-9) & (np.einsum("ij,ij->i", radial, radial) <= p.radius**2)
        candidates.append(np.where(ok, t, np.inf))
        normals.append(np.broadcast_to(sign * p.axis, radial.shape))
    stacked = np.stack(candidates)
    best = stacked.argmin(axis=0)
    rows = np.arange(len(origins))
    return stacked[best, rows], np.stack(normals)[best, rows]


def _intersect_box(p: Box, origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    o = (origins - p.center) @ p.rotation  # box coordinates
    d = dirs @ p.rotation
    safe = np.where(np.abs(d) > 1e-12, d, 1e-12)
    t1, t2 = (-p.half_extents - o) / safe, (p.half_extents - o) / safe
    t_near_axes, t_far = np.minimum(t1, t2), np.maximum(t1, t2).min(axis=1)
    axis = t_near_axes.argmax(axis=1)
    t_near = t_near_axes.max(axis=1)
    t = np.where((t_near <= t_far) & (t_near > 1e-9), t_near, np.inf)
    rows = np.arange(len(origins))
    local = np.zeros_like(o)
    local[rows, axis] = -np.sign(d[rows, axis])
    return t, local @ p.rotation.T


def _intersect(p: Primitive, origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(p, Sphere):
        return _intersect_sphere(p, origins, dirs)
    if isinstance(p, Cylinder):
        return _intersect_cylinder(p, origins, dirs)
    return _intersect_box(p, origins, dirs)


def _bounding_sphere(p: Primitive) -> tuple[np.ndarray, float]:
    if isinstance(p, Sphere):
        return p.center, p.radius
    if isinstance(p, Cylinder):
        return p.center, float(np.hypot(p.radius, p.half_length))
    return p.center, float(np.linalg.norm(p.half_extents))


def _may_hit(centre: np.ndarray, radius: float, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Rays that meet a bounding sphere in front of their origin (a cheap cull before the exact test)."""
    oc = origins - centre
    b = np.einsum("ij,ij->i", oc, dirs)
    c = np.einsum("ij,ij->i", oc, oc) - radius**2
    return (b * b - c >= 0) & ((b < 0) | (c < 0))


def cast_rays(
    scene: Scene, origins: np.ndarray, dirs: np.ndarray, shading: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Colour [R 3] (black where nothing is hit) and hit mask [R] of unit-direction rays."""
    origins = np.ascontiguousarray(origins, dtype=np.float64)
    best_t = np.full(len(origins), np.inf)
    best_normal = np.zeros_like(origins)
    best_index = np.full(len(origins), -1)
    bounds = [_bounding_sphere(p) for p in scene.primitives]
    centre = np.mean([c for c, _ in bounds], axis=0)
    radius = max(float(np.linalg.norm(c - centre)) + r for c, r in bounds)
    near_object = np.flatnonzero(_may_hit(centre, radius, origins, dirs))
    for index, primitive in enumerate(scene.primitives):
        rays = near_object[_may_hit(*bounds[index], origins[near_object], dirs[near_object])]
        if rays.size == 0:
            continue
        t, normal = _intersect(primitive, origins[rays], dirs[rays])
        closer = t < best_t[rays]
        rays, t, normal = rays[closer], t[closer], normal[closer]
        best_t[rays], best_normal[rays], best_index[rays] = t, normal, index
    hit = np.isfinite(best_t)
    points = origins + dirs * np.where(hit, best_t, 0.0)[:, None]
    in_front = (points - scene.colour_origin) @ scene.front >= 0
    fronts = np.stack([p.front for p in scene.primitives])
    backs = np.stack([p.back for p in scene.primitives])
    safe_index = np.maximum(best_index, 0)
    base = np.where(in_front[:, None], fronts[safe_index], backs[safe_index])
    if shading:
        facing = np.where((np.einsum("ij,ij->i", best_normal, dirs) > 0)[:, None], -best_normal, best_normal)
        lambert = np.clip(facing @ scene.light, 0.0, None)
        base = base * (scene.ambient + (1 - scene.ambient) * lambert)[:, None]
    return np.where(hit[:, None], np.clip(base, 0.0, 1.0), 0.0), hit


def render_scene(
    scene: Scene,
    cam_to_world: np.ndarray,
    K: np.ndarray,
    height: int,
    width: int,
    supersampling: int = 2,
    shading: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Ray cast an OpenCV camera (pixel K, centres at +0.5): RGB [3 H W] on black (anti-aliased, premultiplied) and
    coverage [H W], float32."""
    s = supersampling
    offsets = (np.arange(s) + 0.5) / s
    us = (np.arange(width)[:, None] + offsets[None, :]).reshape(-1)  # [W s]
    vs = (np.arange(height)[:, None] + offsets[None, :]).reshape(-1)  # [H s]
    u, v = np.meshgrid(us, vs, indexing="xy")  # [H s, W s]
    directions = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1).reshape(-1, 3)
    directions = directions @ cam_to_world[:3, :3].T
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    origins = np.broadcast_to(cam_to_world[:3, 3], directions.shape)
    chunks = [
        cast_rays(scene, origins[start : start + RAY_CHUNK], directions[start : start + RAY_CHUNK], shading)
        for start in range(0, len(directions), RAY_CHUNK)
    ]  # chunks keep the working set in cache
    colour = np.concatenate([c for c, _ in chunks])
    hit = np.concatenate([h for _, h in chunks])
    colour = colour.reshape(height, s, width, s, 3).mean(axis=(1, 3))
    coverage = hit.reshape(height, s, width, s).mean(axis=(1, 3))
    return colour.transpose(2, 0, 1).astype(np.float32), coverage.astype(np.float32)


# --------------------------------------------------------------------------------------------------------------------
# Hydrant-like objects and Co3D-like orbits


PALETTE = np.array(
    [
        [0.80, 0.10, 0.08],  # red
        [0.92, 0.76, 0.10],  # yellow
        [0.12, 0.55, 0.22],  # green
        [0.16, 0.32, 0.76],  # blue
        [0.95, 0.45, 0.08],  # orange
        [0.72, 0.72, 0.74],  # silver
        [0.93, 0.93, 0.90],  # white
        [0.20, 0.20, 0.22],  # dark grey
    ]
)


def _colour_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    first, second = rng.choice(len(PALETTE), size=2, replace=False)
    jitter = rng.uniform(-0.05, 0.05, size=(2, 3))
    return np.clip(PALETTE[first] + jitter[0], 0, 1), np.clip(PALETTE[second] + jitter[1], 0, 1)


def make_hydrant(rng: np.random.Generator) -> Scene:
    """A random hydrant-like object standing on y = 0 (y up), front towards +z, about one unit tall."""
    body_front, body_back = _colour_pair(rng)
    accent_front, accent_back = _colour_pair(rng)
    r = rng.uniform(0.17, 0.25)  # body radius
    height = rng.uniform(0.55, 0.75)  # body height
    base_h = rng.uniform(0.03, 0.06)
    y = np.array([0.0, 1.0, 0.0])
    x_axis, z_axis = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
    top = base_h + height
    outlet_y = base_h + height * rng.uniform(0.55, 0.75)
    dome_r = r * rng.uniform(0.95, 1.05)
    primitives: list[Primitive] = [
        Cylinder(np.array([0, base_h / 2, 0]), y, r * 1.35, base_h / 2, body_front, body_back),  # flange
        Cylinder(np.array([0, base_h + height / 2, 0]), y, r, height / 2, body_front, body_back),  # body
        Cylinder(np.array([0, top - 0.02, 0]), y, r * 1.18, 0.03, accent_front, accent_back),  # upper ring
        Sphere(np.array([0, top, 0]), dome_r, body_front, body_back),  # dome
        Cylinder(np.array([0, top + dome_r, 0]), y, r * 0.3, 0.045, accent_front, accent_back),  # top nut
    ]
    side_r, side_len = r * rng.uniform(0.3, 0.4), r * rng.uniform(0.35, 0.5)
    for sign in (-1.0, 1.0):
        primitives.append(
            Cylinder(
                np.array([sign * (r + side_len / 2), outlet_y, 0]),
                x_axis,
                side_r,
                side_len / 2,
                accent_front,
                accent_back,
            )
        )
    pumper_r, pumper_len = r * rng.uniform(0.45, 0.55), r * rng.uniform(0.4, 0.6)
    primitives.append(
        Cylinder(
            np.array([0, outlet_y - 0.05, r + pumper_len / 2]),
            z_axis,
            pumper_r,
            pumper_len / 2,
            accent_front,
            accent_back,
        )
    )
    primitives.append(  # a plate on the back breaks the front/back symmetry of the silhouette
        Box(
            np.array([0, base_h + height * 0.35, -r - 0.015]),
            np.eye(3),
            np.array([r * 0.5, height * 0.18, 0.03]),
            accent_back,
            accent_back,
        )
    )
    light = np.array([rng.uniform(-0.5, 0.5), 1.0, rng.uniform(0.2, 0.8)])
    return Scene(tuple(primitives), np.zeros(3), z_axis, light / np.linalg.norm(light))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def sample_surface(scene: Scene, rng: np.random.Generator, count: int = 4000) -> np.ndarray:
    """Points [M 3] spread over the primitives' surfaces in proportion to their areas (a stand-in for the SfM point
    cloud the normalisation uses)."""
    areas = []
    for p in scene.primitives:
        if isinstance(p, Sphere):
            areas.append(4 * np.pi * p.radius**2)
        elif isinstance(p, Cylinder):
            areas.append(2 * np.pi * p.radius * (2 * p.half_length) + 2 * np.pi * p.radius**2)
        else:
            a, b, c = p.half_extents * 2
            areas.append(2 * (a * b + b * c + a * c))
    counts = rng.multinomial(count, np.array(areas) / sum(areas))
    points = []
    for p, n in zip(scene.primitives, counts, strict=True):
        if n == 0:
            continue
        if isinstance(p, Sphere):
            points.append(p.center + p.radius * _unit(rng.normal(size=(n, 3))))
        elif isinstance(p, Cylinder):
            helper = np.array([1.0, 0.0, 0.0]) if abs(p.axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
            e1 = _unit(np.cross(p.axis, helper))
            e2 = np.cross(p.axis, e1)
            angle = rng.uniform(0, 2 * np.pi, n)
            side = rng.uniform(size=n) < (p.half_length / (p.half_length + p.radius / 2))
            along = np.where(
                side, rng.uniform(-p.half_length, p.half_length, n), rng.choice([-1, 1], n) * p.half_length
            )
            radius = np.where(side, p.radius, p.radius * np.sqrt(rng.uniform(size=n)))
            ring = np.cos(angle)[:, None] * e1 + np.sin(angle)[:, None] * e2
            points.append(p.center + along[:, None] * p.axis + radius[:, None] * ring)
        else:
            local = rng.uniform(-1, 1, size=(n, 3))
            face = rng.integers(0, 3, n)
            local[np.arange(n), face] = rng.choice([-1.0, 1.0], n)
            points.append(p.center + (local * p.half_extents) @ p.rotation.T)
    return np.concatenate(points)


def look_at_opencv(eye: np.ndarray, target: np.ndarray, up: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """Camera-to-world [4 4] (OpenCV axes) at `eye` looking at `target`, image up along `up`, rolled by `roll` rad."""
    forward = _unit(target - eye)
    right = _unit(np.cross(forward, up))
    down = np.cross(forward, right)
    cos, sin = np.cos(roll), np.sin(roll)
    right, down = cos * right + sin * down, -sin * right + cos * down
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, down, forward], axis=1)
    pose[:3, 3] = eye
    return pose


def orbit_cameras(
    rng: np.random.Generator, count: int, target: np.ndarray, object_extent: float
) -> tuple[np.ndarray, np.ndarray]:
    """A hand-held loop around `target` (y up): camera-to-world [N 4 4] (OpenCV) and focal lengths [N] in NDC.

    Distances put the object (max |coordinate| `object_extent` about its centre; 0.57 once normalised) at
    42-62 % of the half image (plus perspective) for the sequence's focal length, as in Co3D's 128-pixel crops."""
    focal0 = rng.uniform(2.0, 3.0)
    fill = rng.uniform(0.42, 0.62)
    distance0 = focal0 * object_extent / fill
    elevation0 = np.radians(rng.uniform(8, 35))
    azimuth0, span = rng.uniform(0, 2 * np.pi), 2 * np.pi * rng.uniform(0.8, 1.0)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    k = np.arange(count)
    progress = (k + rng.uniform(-0.3, 0.3, count)) / count
    azimuth = azimuth0 + span * progress
    elevation = elevation0 + np.radians(6) * np.sin(2 * np.pi * progress + phase[0])
    distance = distance0 * (1 + 0.06 * np.sin(2 * np.pi * progress + phase[1]))
    focal = focal0 * (1 + 0.02 * rng.normal(size=count))
    poses = []
    for i in range(count):
        direction = np.array(
            [np.cos(elevation[i]) * np.sin(azimuth[i]), np.sin(elevation[i]), np.cos(elevation[i]) * np.cos(azimuth[i])]
        )
        aim = target + rng.normal(scale=0.04 * object_extent, size=3)
        roll = np.radians(rng.normal(scale=2.0))
        poses.append(look_at_opencv(target + distance[i] * direction, aim, np.array([0.0, 1.0, 0.0]), roll))
    return np.stack(poses), focal


def random_similarity(rng: np.random.Generator) -> SequenceNormalization:
    """A random rotation, scale in [0.5, 3] and translation: an arbitrary SfM-like world frame."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return SequenceNormalization(q, rng.normal(scale=2.0, size=3), float(rng.uniform(0.5, 3.0)))


def opencv_to_pytorch3d(cam_to_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch3D (R [N 3 3], T [N 3]) of OpenCV camera-to-world poses: X_cam = X_world R + T, x left, y up."""
    rotation = np.swapaxes(cam_to_world[:, :3, :3], -1, -2)  # world-to-camera, OpenCV
    translation = -np.einsum("nij,nj->ni", rotation, cam_to_world[:, :3, 3])
    flip = np.array([-1.0, -1.0, 1.0])
    R = np.swapaxes(flip[:, None] * rotation, -1, -2)
    return R, flip * translation


def similarity_cam_to_world(cam_to_world: np.ndarray, similarity: SequenceNormalization) -> np.ndarray:
    """Camera-to-world poses [N 4 4] in the frame x -> scale (x @ rotation - offset) (depths scale with the world)."""
    moved = cam_to_world.copy()
    moved[:, :3, :3] = similarity.rotation.T @ cam_to_world[:, :3, :3]
    moved[:, :3, 3] = similarity.apply(cam_to_world[:, :3, 3])
    return moved


@dataclass(frozen=True)
class SyntheticSequence:
    """One generated sequence in the written (normalised) frame."""

    name: str
    images: np.ndarray  # [N 3 H W] float32, on black
    focal_ndc: np.ndarray  # [N] (fx = fy)
    R: np.ndarray  # [N 3 3] PyTorch3D
    T: np.ndarray  # [N 3]
    cam_to_world: np.ndarray  # [N 4 4] OpenCV, normalised frame
    scene: Scene  # normalised frame
    normalization: SequenceNormalization  # SfM-like frame -> normalised frame


def _sequence_rng(options: SyntheticCo3DOptions, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([options.seed, ("train", "val", "test").index(split), index, GENERATOR_VERSION])


def make_sequence(options: SyntheticCo3DOptions, split: str, index: int) -> SyntheticSequence:
    """Sequence `index` of `split`, a pure function of the options."""
    rng = _sequence_rng(options, split, index)
    scene = make_hydrant(rng)
    points = sample_surface(scene, rng)
    centre = points.mean(axis=0)
    y_mid = (points[:, 1].max() + points[:, 1].min()) / 2
    extent = float(np.abs(points - np.array([centre[0], y_mid, centre[2]])).max())
    cam_to_world, focal = orbit_cameras(
        rng, options.frames_per_sequence, np.array([centre[0], y_mid, centre[2]]), extent
    )
    # Place everything in an arbitrary SfM-like frame, then normalise as preprocess.py does.
    sfm = random_similarity(rng)
    R_sfm, T_sfm = opencv_to_pytorch3d(similarity_cam_to_world(cam_to_world, sfm))
    normalization = viewset_normalization(R_sfm, T_sfm, sfm.apply(points))
    R, T = normalization.apply_to_cameras(R_sfm, T_sfm)
    scene_normalised = scene.transformed(sfm).transformed(normalization)
    poses_normalised = similarity_cam_to_world(similarity_cam_to_world(cam_to_world, sfm), normalization)
    side = options.resolution
    images = []
    for pose, f in zip(poses_normalised, focal, strict=True):
        K = np.array([[f * side / 2, 0, side / 2], [0, f * side / 2, side / 2], [0, 0, 1]])
        rgb, _ = render_scene(scene_normalised, pose, K, side, side, options.supersampling)
        images.append(rgb)
    return SyntheticSequence(
        name=f"synthetic_{split}_{index:03d}",
        images=np.stack(images),
        focal_ndc=focal,
        R=R,
        T=T,
        cam_to_world=poses_normalised,
        scene=scene_normalised,
        normalization=normalization,
    )


# --------------------------------------------------------------------------------------------------------------------
# Writing and caching


def write_split(options: SyntheticCo3DOptions, split: str, directory: Path) -> list[str]:
    """Write a split in the preprocessed layout; returns the sequence names."""
    directory.mkdir(parents=True, exist_ok=True)
    rotations, translations, names = {}, {}, []
    for index in range(options.sequences(split)):
        sequence = make_sequence(options, split, index)
        folder = directory / sequence.name
        folder.mkdir()
        np.save(folder / "images_fg.npy", sequence.images.astype(np.float32))
        focal = np.repeat(sequence.focal_ndc[:, None, None], 2, axis=2).astype(np.float32)  # [N 1 2]
        np.save(folder / "focal_lengths.npy", focal)
        (folder / "frame_order.txt").write_text("".join(f"{k:05d}.png\n" for k in range(len(sequence.images))))
        rotations[sequence.name] = sequence.R.astype(np.float32)
        translations[sequence.name] = sequence.T.astype(np.float32)
        names.append(sequence.name)
    np.savez(directory / "camera_Rs.npz", **rotations)
    np.savez(directory / "camera_Ts.npz", **translations)
    return names


def dataset_root(options: SyntheticCo3DOptions, cache: str | Path = DEFAULT_CACHE) -> Path:
    """Where `generate` puts the dataset (the `co3d_synthetic_for_gs` folder)."""
    return Path(cache) / f"co3d-{options.key()}" / f"co3d_{CATEGORY}_for_gs"


def generate(options: SyntheticCo3DOptions | None = None, cache: str | Path = DEFAULT_CACHE) -> Path:
    """The dataset root for `options` (default `SyntheticCo3DOptions()`), generating it first unless a complete copy
    is cached."""
    options = options or SyntheticCo3DOptions()
    final = Path(cache) / f"co3d-{options.key()}"
    if (final / COMPLETE_MARKER).is_file():
        return dataset_root(options, cache)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        splits = {}
        for split in ("train", "val", "test"):
            splits[split] = write_split(options, split, staging / f"co3d_{CATEGORY}_for_gs" / split)
        manifest = {
            "generator": "apps/co3d/synthetic.py",
            "version": GENERATOR_VERSION,
            "key": options.key(),
            "options": asdict(options),
            "sequences": splits,
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        (staging / COMPLETE_MARKER).write_text("ok\n")
        if final.exists():  # an incomplete leftover, or a concurrent writer that finished first
            if (final / COMPLETE_MARKER).is_file():
                return dataset_root(options, cache)
            shutil.rmtree(final)
        try:
            os.replace(staging, final)
        except OSError:  # a concurrent writer renamed its copy into place first
            if not (final / COMPLETE_MARKER).is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return dataset_root(options, cache)


__all__ = [
    "CATEGORY",
    "DEFAULT_CACHE",
    "GENERATOR_VERSION",
    "Box",
    "Cylinder",
    "Scene",
    "Sphere",
    "SyntheticCo3DOptions",
    "SyntheticSequence",
    "cast_rays",
    "dataset_root",
    "generate",
    "look_at_opencv",
    "make_hydrant",
    "make_sequence",
    "opencv_to_pytorch3d",
    "orbit_cameras",
    "random_similarity",
    "render_scene",
    "sample_surface",
    "similarity_cam_to_world",
    "write_split",
]
