"""The built-in dataset: deterministic hydrant-like objects, ray cast analytically, written in the Splatter Image
preprocessed layout (`data.py`) so that every Co3D code path runs offline.

Each sequence is one object: a capped cylindrical body on a flange, a dome, a top nut, two side outlets, a front
pumper outlet and a back plate, coloured differently in front of and behind a vertical plane through its axis so that
front and back views differ. Frames are exact ray casts by `splat_apps.synthetic.raycast` (two-sided Lambertian
shading from a random directional light, ambient 0.35, supersampling where a pixel may straddle an edge) on black:
what `preprocess.py` makes of a masked Co3D frame. Cameras follow a Co3D-like hand-held orbit (one loop of 80-100 %
at varying height and distance, jitter, a little roll, per-frame focal lengths). Scene and cameras are first placed in
a random SfM-like similarity frame, then normalised as `preprocess.py` does (`viewset_normalization` on points of the
object's surface); cameras are written as PyTorch3D (R, T). Datasets are cached by their options
(`splat_apps.synthetic.cache`) under `data/synthetic/co3d-res<R>-seed<S>-<hash>/`.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from splat_apps.synthetic import raycast
from splat_apps.synthetic.cache import cached, default_cache_dir, options_key
from splat_apps.synthetic.palette import PAINTS as PALETTE
from splat_apps.synthetic.raycast import render_scene, torch_threads

from .data import SPLITS, co3d_intrinsics
from .preprocess import SequenceNormalization, viewset_normalization

GENERATOR_VERSION = 2  # 2: the shared torch ray caster (edge-only supersampling) instead of a NumPy one
CATEGORY = "synthetic"
DATASET_DIR = f"co3d_{CATEGORY}_for_gs"
AMBIENT = 0.35
ORIGIN = np.zeros(3)
FRONT = np.array([0.0, 0.0, 1.0])  # the hydrants' colour plane faces +z (their front)
RENDER_THREADS = 1  # ray casting is many small tensor operations: one thread is fastest on a busy 2-core machine


@dataclass(frozen=True)
class SyntheticCo3DOptions:
    """Size of the synthetic dataset; every field enters the cache key."""

    resolution: int = 128  # image side (Co3D preprocessed: 128; CPU demos may use 32 or 64)
    train_sequences: int = 12
    val_sequences: int = 2
    test_sequences: int = 4
    frames_per_sequence: int = 24
    seed: int = 0
    supersampling: int = 2  # samples per pixel along each axis where a pixel may straddle an edge (anti-aliasing)

    def __post_init__(self) -> None:
        counts = dict.fromkeys(("train_sequences", "val_sequences", "test_sequences"), 0)
        minimums = {"resolution": 1, "frames_per_sequence": 2, "supersampling": 1, **counts}  # 2: input and target
        for name, minimum in minimums.items():
            if getattr(self, name) < minimum:
                raise ValueError(f"{name} must be >= {minimum}, got {getattr(self, name)}")

    def sequences(self, split: str) -> int:
        return {"train": self.train_sequences, "val": self.val_sequences, "test": self.test_sequences}[split]

    def key(self) -> str:
        """Cache folder name: a readable prefix and a hash of every option and the generator version."""
        return options_key(f"co3d-res{self.resolution}-seed{self.seed}", self, GENERATOR_VERSION)


# --------------------------------------------------------------------------------------------------------------------
# Analytic scene, described for the shared ray caster (`splat_apps.synthetic.raycast`)

Vector = np.ndarray | Sequence[float]
Shape = tuple[int, np.ndarray, np.ndarray, np.ndarray]  # raycast kind, center [3], rotation [3 3], sizes [3]
Part = tuple[Shape, tuple[np.ndarray, np.ndarray]]  # a shape and its (front, back) RGB


def sphere(center: Vector, radius: float) -> Shape:
    return raycast.ELLIPSOID, np.asarray(center, dtype=np.float64), np.eye(3), np.full(3, float(radius))


def cylinder(center: Vector, axis: Vector, radius: float, half_length: float) -> Shape:
    """A capped circular cylinder from -half_length to +half_length along unit `axis` (the rotation's third
    column; the first two span its cross-section)."""
    axis = np.asarray(axis, dtype=np.float64)
    helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = _unit(np.cross(axis, helper))
    rotation = np.stack([e1, np.cross(axis, e1), axis], axis=1)
    return raycast.CYLINDER, np.asarray(center, dtype=np.float64), rotation, np.array([radius, radius, half_length])


def box(center: Vector, rotation: np.ndarray, half_extents: Vector) -> Shape:
    """An oriented box: `rotation`'s columns are its axes, `half_extents` along them."""
    return raycast.BOX, *(np.asarray(v, dtype=np.float64) for v in (center, rotation, half_extents))


@dataclass(frozen=True)
class Scene:
    """A union of primitives (`raycast.Primitives`, float64) with two albedos each: `colours_front` at points p with
    dot(p - colour_origin, front) >= 0, `colours_back` elsewhere; a directional light (`light`, unit, towards it)."""

    primitives: raycast.Primitives
    colours_front: Float[Tensor, "primitives 3"]
    colours_back: Float[Tensor, "primitives 3"]
    colour_origin: Float[Tensor, "3"]
    front: Float[Tensor, "3"]
    light: Float[Tensor, "3"]
    ambient: float = AMBIENT

    def transformed(self, normalization: SequenceNormalization) -> "Scene":
        """The scene in a similarity frame x -> scale (x @ rotation - offset) (directions: d -> d @ rotation)."""
        rotation = torch.from_numpy(np.asarray(normalization.rotation, dtype=np.float64))
        offset = torch.from_numpy(np.asarray(normalization.offset, dtype=np.float64))
        s = float(normalization.scale)
        p = self.primitives
        moved = raycast.Primitives(p.kinds, s * (p.centers @ rotation - offset), rotation.T @ p.rotations, s * p.sizes)
        return replace(
            self,
            primitives=moved,
            colour_origin=s * (self.colour_origin @ rotation - offset),
            front=self.front @ rotation,
            light=self.light @ rotation,
        )

    def described(self) -> raycast.Scene:
        """The scene for the ray caster (float32): front / back albedo by the colour plane, the light two-sided (a
        surface seen from behind is lit as if it faced the viewer), black background; edges also where the albedo
        switches (label 2 x primitive + [in front])."""
        origin, front = self.colour_origin.float(), self.front.float()
        colours_front, colours_back = self.colours_front.float(), self.colours_back.float()

        def in_front(points: Tensor) -> Tensor:
            return (points - origin) @ front >= 0

        def albedo(hits: raycast.Hits, points: Tensor) -> Tensor:
            index = hits.primitive.clamp(min=0)
            return torch.where(in_front(points)[:, None], colours_front[index], colours_back[index])

        def label(hits: raycast.Hits, points: Tensor) -> Tensor:
            return 2 * hits.primitive + in_front(points).long()

        p = self.primitives
        primitives = raycast.Primitives(p.kinds, p.centers.float(), p.rotations.float(), p.sizes.float())
        light = raycast.Light(direction=tuple(self.light.tolist()), ambient=self.ambient, two_sided=True)
        return raycast.Scene(primitives, albedo, light, 0.0, label)


def make_scene(parts: Sequence[Part], light: Vector, colour_origin: Vector = ORIGIN, front: Vector = FRONT) -> Scene:
    """A scene of (shape, (front, back) RGB) parts, the colour plane through `colour_origin` facing `front` and a
    directional light towards `light` (normalised)."""

    def stack(values: Sequence) -> Tensor:
        return torch.tensor(np.stack([np.asarray(v, dtype=np.float64) for v in values]), dtype=torch.float64)

    kinds, centers, rotations, sizes = zip(*(shape for shape, _ in parts), strict=True)
    fronts, backs = zip(*(colours for _, colours in parts), strict=True)
    primitives = raycast.Primitives(torch.tensor(kinds), stack(centers), stack(rotations), stack(sizes))
    origin, facing, towards = (
        torch.tensor(v, dtype=torch.float64) for v in (colour_origin, front, _unit(np.asarray(light, dtype=np.float64)))
    )
    return Scene(primitives, stack(fronts), stack(backs), origin, facing, towards)


# --------------------------------------------------------------------------------------------------------------------
# Hydrant-like objects and Co3D-like orbits


def _colour_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    first, second = rng.choice(len(PALETTE), size=2, replace=False)
    jitter = rng.uniform(-0.05, 0.05, size=(2, 3))
    return np.clip(PALETTE[first] + jitter[0], 0, 1), np.clip(PALETTE[second] + jitter[1], 0, 1)


def make_hydrant(rng: np.random.Generator) -> Scene:
    """A random hydrant-like object standing on y = 0 (y up), front towards +z, about one unit tall."""
    body = _colour_pair(rng)
    accent = _colour_pair(rng)
    r = rng.uniform(0.17, 0.25)  # body radius
    height = rng.uniform(0.55, 0.75)  # body height
    base_h = rng.uniform(0.03, 0.06)
    y = np.array([0.0, 1.0, 0.0])
    x_axis, z_axis = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
    top = base_h + height
    outlet_y = base_h + height * rng.uniform(0.55, 0.75)
    dome_r = r * rng.uniform(0.95, 1.05)
    parts: list[Part] = [
        (cylinder([0.0, base_h / 2, 0.0], y, r * 1.35, base_h / 2), body),  # flange
        (cylinder([0.0, base_h + height / 2, 0.0], y, r, height / 2), body),  # body
        (cylinder([0.0, top - 0.02, 0.0], y, r * 1.18, 0.03), accent),  # upper ring
        (sphere([0.0, top, 0.0], dome_r), body),  # dome
        (cylinder([0.0, top + dome_r, 0.0], y, r * 0.3, 0.045), accent),  # top nut
    ]
    side_r, side_len = r * rng.uniform(0.3, 0.4), r * rng.uniform(0.35, 0.5)
    for sign in (-1.0, 1.0):  # side outlets
        parts.append((cylinder([sign * (r + side_len / 2), outlet_y, 0.0], x_axis, side_r, side_len / 2), accent))
    pumper_r, pumper_len = r * rng.uniform(0.45, 0.55), r * rng.uniform(0.4, 0.6)
    parts.append((cylinder([0.0, outlet_y - 0.05, r + pumper_len / 2], z_axis, pumper_r, pumper_len / 2), accent))
    # a plate on the back breaks the front/back symmetry of the silhouette
    plate = box([0.0, base_h + height * 0.35, -r - 0.015], np.eye(3), [r * 0.5, height * 0.18, 0.03])
    parts.append((plate, (accent[1], accent[1])))
    light = np.array([rng.uniform(-0.5, 0.5), 1.0, rng.uniform(0.2, 0.8)])
    return make_scene(parts, light, ORIGIN, z_axis)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def sample_surface(scene: Scene, rng: np.random.Generator, count: int = 4000) -> np.ndarray:
    """Points [M 3] spread over the primitives' surfaces (spheres, circular cylinders, boxes) in proportion to their
    areas (a stand-in for the SfM point cloud the normalisation uses)."""
    p = scene.primitives
    kinds, centers, rotations, sizes = p.kinds.tolist(), p.centers.numpy(), p.rotations.numpy(), p.sizes.numpy()
    areas = []
    for kind, size in zip(kinds, sizes, strict=True):
        if kind == raycast.ELLIPSOID:
            areas.append(4 * np.pi * size[0] ** 2)
        elif kind == raycast.CYLINDER:
            areas.append(2 * np.pi * size[0] * (2 * size[2]) + 2 * np.pi * size[0] ** 2)
        else:
            a, b, c = size * 2
            areas.append(2 * (a * b + b * c + a * c))
    counts = rng.multinomial(count, np.array(areas) / sum(areas))
    points = []
    for kind, center, rotation, size, n in zip(kinds, centers, rotations, sizes, counts, strict=True):
        if n == 0:
            continue
        if kind == raycast.ELLIPSOID:
            points.append(center + size[0] * _unit(rng.normal(size=(n, 3))))
        elif kind == raycast.CYLINDER:
            (radius, _, half_length), (e1, e2, axis) = size, rotation.T
            angle = rng.uniform(0, 2 * np.pi, n)
            side = rng.uniform(size=n) < (half_length / (half_length + radius / 2))
            along = np.where(side, rng.uniform(-half_length, half_length, n), rng.choice([-1, 1], n) * half_length)
            distance = np.where(side, radius, radius * np.sqrt(rng.uniform(size=n)))
            ring = np.cos(angle)[:, None] * e1 + np.sin(angle)[:, None] * e2
            points.append(center + along[:, None] * axis + distance[:, None] * ring)
        else:
            local = rng.uniform(-1, 1, size=(n, 3))
            face = rng.integers(0, 3, n)
            local[np.arange(n), face] = rng.choice([-1.0, 1.0], n)
            points.append(center + (local * size) @ rotation.T)
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
    K = co3d_intrinsics(torch.from_numpy(np.stack([focal, focal], axis=-1)), side)
    with torch_threads(RENDER_THREADS):  # also makes the frames independent of the caller's thread setting
        render = render_scene(
            scene_normalised, torch.from_numpy(poses_normalised), K, side, side, options.supersampling
        )
    return SyntheticSequence(
        name=f"synthetic_{split}_{index:03d}",
        images=render.rgb.numpy(),
        focal_ndc=focal,
        R=R,
        T=T,
        cam_to_world=poses_normalised,
        scene=scene_normalised,
        normalization=normalization,
    )


# --------------------------------------------------------------------------------------------------------------------
# Writing and caching


def write_sequence_files(folder: Path, images: np.ndarray, focal_ndc: np.ndarray) -> None:
    """A sequence's folder of the preprocessed layout: images [N 3 H H], focal lengths [N 1 2], the frame order."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "images_fg.npy", images.astype(np.float32))
    np.save(folder / "focal_lengths.npy", focal_ndc.astype(np.float32))
    (folder / "frame_order.txt").write_text("".join(f"{k:05d}.png\n" for k in range(len(images))))


def write_split(options: SyntheticCo3DOptions, split: str, directory: Path) -> list[str]:
    """Write a split in the preprocessed layout; returns the sequence names."""
    directory.mkdir(parents=True, exist_ok=True)
    rotations, translations, names = {}, {}, []
    for index in range(options.sequences(split)):
        sequence = make_sequence(options, split, index)
        focal = np.repeat(sequence.focal_ndc[:, None, None], 2, axis=2)  # [N 1 2]
        write_sequence_files(directory / sequence.name, sequence.images, focal)
        rotations[sequence.name] = sequence.R.astype(np.float32)
        translations[sequence.name] = sequence.T.astype(np.float32)
        names.append(sequence.name)
    np.savez(directory / "camera_Rs.npz", **rotations)
    np.savez(directory / "camera_Ts.npz", **translations)
    return names


def generate(options: SyntheticCo3DOptions | None = None, cache: str | Path | None = None) -> Path:
    """The dataset root for `options` (default `SyntheticCo3DOptions()`) under `cache` (default: the shared
    synthetic-data folder), generated first unless a complete copy is cached (published atomically, `cached`)."""
    options = options or SyntheticCo3DOptions()
    root = Path(cache if cache is not None else default_cache_dir()) / options.key() / DATASET_DIR

    def write(partial: Path) -> dict:
        splits = {split: write_split(options, split, partial / DATASET_DIR / split) for split in SPLITS}
        return {
            "generator": "app_co3d.synthetic",
            "version": GENERATOR_VERSION,
            "key": options.key(),
            "options": asdict(options),
            "sequences": splits,
        }

    cached(root.parent, write)
    return root
