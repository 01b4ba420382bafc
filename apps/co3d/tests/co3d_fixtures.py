"""Test helpers: preprocessed-layout sequences written from arrays (`write_hydrants`: two small sequences in every
split), a tiny experiment, and a tiny raw Co3D v2 category in the Co3D annotation format (frame / sequence
annotations, set lists, JPEG images, PNG masks, a .ply point cloud) of an analytic scene seen by known cameras."""

import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from plyfile import PlyData, PlyElement

from app_co3d.data import SPLITS
from app_co3d.experiment import PRESETS, Co3DExperiment, EvalConfig, ModelConfig
from app_co3d.preprocess import SequenceNormalization
from app_co3d.synthetic import Scene, look_at_opencv, make_scene, render_scene, sphere, write_sequence_files

SIDE = 16
UP = np.array([0.0, 1.0, 0.0])
HYDRANTS = {"900_1_1": (4, (), 2.0), "901_1_1": (6, (2, 5), 3.0)}  # name: views, all-black views, camera distance

# --------------------------------------------------------------------------------------------------------------------
# Preprocessed layout


def update_archive(path: Path, **entries: np.ndarray | None) -> None:
    """Add or replace (an array) or remove (None) entries of an .npz archive, creating it if missing."""
    arrays = {}
    if path.is_file():
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    np.savez(path, **{k: v for k, v in {**arrays, **entries}.items() if v is not None})


def write_sequence(
    split_dir: Path, name: str, images: np.ndarray, focal_ndc: np.ndarray, R: np.ndarray, T: np.ndarray
) -> Path:
    """One sequence in Splatter Image's layout (images [N 3 H H], focal [N 1 2], R [N 3 3], T [N 3])."""
    write_sequence_files(split_dir / name, images, focal_ndc)
    update_archive(split_dir / "camera_Rs.npz", **{name: R.astype(np.float32)})
    update_archive(split_dir / "camera_Ts.npz", **{name: T.astype(np.float32)})
    return split_dir / name


def random_sequence_arrays(
    count: int, side: int = SIDE, seed: int = 0, black: Sequence[int] = (), distance: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(images, focal [N 1 2], R, T): random non-black images except the views in `black` (all zero), seen by
    PyTorch3D cameras on a circle of radius `distance` around the origin, looking at it (y up)."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.05, 1.0, size=(count, 3, side, side)).astype(np.float32)
    images[list(black)] = 0
    cameras = []
    for k in range(count):
        angle = 2 * np.pi * k / count
        eye = distance * np.array([np.sin(angle), 0.4, np.cos(angle)])
        cameras.append(pytorch3d_of_cam_to_world(look_at_opencv(eye, rng.normal(scale=0.02, size=3), UP)))
    R, T = (np.stack(values) for values in zip(*cameras, strict=True))
    return images, np.full((count, 1, 2), 2.5, dtype=np.float32), R, T


def write_hydrants(root: Path, splits: Sequence[str] = SPLITS) -> Path:
    """`root` (a co3d_hydrant_for_gs folder) with the `HYDRANTS` sequences at `SIDE` px in each of `splits`."""
    for seed, (name, (count, black, distance)) in enumerate(HYDRANTS.items()):
        arrays = random_sequence_arrays(count, seed=seed, black=black, distance=distance)
        for split in splits:
            write_sequence(root / split, name, *arrays)
    return root


def tiny_experiment(root: Path | None, **eval_options) -> Co3DExperiment:
    """The cpu-demo preset on `root` with 8-channel one-block networks, 2 DDIM steps and no LPIPS."""
    base = PRESETS["cpu-demo"]()
    model = ModelConfig(
        teacher_unet=replace(base.model.teacher_unet, model_channels=8, num_blocks=1),
        student_unet=replace(base.model.student_unet, model_channels=8, num_blocks=1),
    )
    evaluation = EvalConfig(**{"lpips": False, "grid_sequences": 1, "grid_views": 2, **eval_options})
    diffusion = replace(base.diffusion, ddim_steps=2)
    return replace(base, model=model, data=replace(base.data, root=root), eval=evaluation, diffusion=diffusion)


# --------------------------------------------------------------------------------------------------------------------
# Raw Co3D v2


def pytorch3d_of_cam_to_world(cam_to_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch3D row-vector (R, T) of one OpenCV camera-to-world pose, derived here independently of the app:
    x_cv = W x + t and x_p3d = D x_cv (D = diag(-1, -1, 1)), so x_p3d^T = x^T (W^T D) + (D t)^T."""
    W = cam_to_world[:3, :3].T
    t = -W @ cam_to_world[:3, 3]
    D = np.diag([-1.0, -1.0, 1.0])
    return W.T @ D, D @ t


def co3d_ndc_intrinsics(K: np.ndarray, height: int, width: int, intrinsics_format: str) -> tuple[list, list]:
    """(focal_length, principal_point) of pixel K in a Co3D NDC format (PyTorch3D: +x left, +y up)."""
    if intrinsics_format == "ndc_isotropic":
        scale = np.array([min(width, height) / 2] * 2)
    else:
        assert intrinsics_format == "ndc_norm_image_bounds"
        scale = np.array([width / 2, height / 2])
    focal = np.array([K[0, 0], K[1, 1]]) / scale
    principal = (np.array([width / 2, height / 2]) - np.array([K[0, 2], K[1, 2]])) / scale
    return focal.tolist(), principal.tolist()


def three_spheres() -> Scene:
    """Three flat-coloured spheres stacked along +y (no sphere hides another from the orbits below)."""
    spheres = [
        (np.array([0.0, 0.0, 0.0]), np.array([0.9, 0.1, 0.1])),
        (np.array([0.25, 0.5, 0.1]), np.array([0.1, 0.85, 0.1])),
        (np.array([-0.2, 1.0, -0.1]), np.array([0.1, 0.2, 0.9])),
    ]
    return make_scene([(sphere(centre, 0.16), (colour, colour)) for centre, colour in spheres], [0.0, 1.0, 0.0])


def spheres_of(scene: Scene) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """(centre, radius, front colour) of each sphere of a scene of spheres."""
    p = scene.primitives
    return [
        (centre, float(size[0]), colour)
        for centre, size, colour in zip(p.centers.numpy(), p.sizes.numpy(), scene.colours_front.numpy(), strict=True)
    ]


def render_unshaded(scene: Scene, pose: np.ndarray, K: np.ndarray, height: int, width: int) -> np.ndarray:
    """RGB [3 H W] of the scene's albedos (ambient 1: no shading) on black, anti-aliased (3 x 3 at edges)."""
    flat = replace(scene, ambient=1.0)
    return render_scene(flat, torch.from_numpy(pose)[None], torch.from_numpy(K)[None], height, width, 3).rgb[0].numpy()


def write_point_cloud(path: Path, scene: Scene, rng: np.random.Generator, per_sphere: int = 1000) -> None:
    """Points on the spheres' surfaces, binary little-endian PLY with colours (as Co3D's pointcloud.ply)."""
    points = []
    for centre, radius, _ in spheres_of(scene):
        directions = rng.normal(size=(per_sphere, 3))
        points.append(centre + radius * directions / np.linalg.norm(directions, axis=1, keepdims=True))
    xyz = np.concatenate(points)
    vertex = np.empty(len(xyz), dtype=[(axis, "f4") for axis in "xyz"] + [(c, "u1") for c in ("red", "green", "blue")])
    vertex["x"], vertex["y"], vertex["z"] = xyz.T
    vertex["red"] = vertex["green"] = vertex["blue"] = 128
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(path))


@dataclass
class RawSequence:
    name: str
    height: int
    width: int
    intrinsics_format: str
    cam_to_world: list[np.ndarray] = field(default_factory=list)  # per frame, in the raw (SfM) frame, OpenCV
    K: list[np.ndarray] = field(default_factory=list)  # per frame, pixels
    frame_numbers: list[int] = field(default_factory=list)  # in timestamp order


@dataclass
class RawCo3D:
    root: Path
    category: str
    scene: Scene  # in the raw frame
    sequences: dict[str, RawSequence]
    set_lists: dict[str, list[list]]
    up: np.ndarray  # world up of the raw frame


RAW_LAYOUTS = {  # split: (name, height, width, intrinsics format); 101_1001_2001 gets a NaN focal length
    "train": [("100_1000_2000", 120, 160, "ndc_isotropic"), ("101_1001_2001", 120, 160, "ndc_isotropic")],
    "val": [("200_2000_3000", 144, 96, "ndc_norm_image_bounds")],
    "test": [("300_3000_4000", 128, 128, "ndc_isotropic")],
}


def write_raw_co3d(root: Path, category: str = "hydrant", frames: int = 6, seed: int = 0) -> RawCo3D:
    """A tiny Co3D v2 category (`RAW_LAYOUTS`): landscape, portrait and square frames in both intrinsics formats,
    off-centre principal points, per-frame focal lengths, the scene in a rotated, scaled and shifted frame, set lists
    and annotations in shuffled order."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    scale, shift = 1.7, np.array([0.4, -1.1, 2.0])
    scene = three_spheres().transformed(SequenceNormalization(q.T, -shift / scale, scale))  # x -> scale q x + shift
    white = torch.ones_like(scene.colours_front)
    coverage_scene = replace(scene, colours_front=white, colours_back=white)  # white on black: the coverage
    category_dir = root / category
    frame_annotations, sequence_annotations, sequences = [], [], {}
    set_lists: dict[str, list[list]] = {split: [] for split in RAW_LAYOUTS}
    for split, entries in RAW_LAYOUTS.items():
        for name, height, width, intrinsics_format in entries:
            info = sequences[name] = RawSequence(name, height, width, intrinsics_format)
            (category_dir / name / "images").mkdir(parents=True)
            (category_dir / name / "masks").mkdir()
            elevation, start = np.radians(rng.uniform(10, 25)), rng.uniform(0, 2 * np.pi)
            focal = rng.uniform(0.9, 1.2) * max(height, width)
            for k in range(frames):
                azimuth = start + 2 * np.pi * k / frames
                direction = [
                    np.cos(elevation) * np.sin(azimuth),
                    np.sin(elevation),
                    np.cos(elevation) * np.cos(azimuth),
                ]
                centre = np.array([0.0, 0.5, 0.0])
                pose_object = look_at_opencv(centre + rng.uniform(3.0, 3.6) * np.array(direction), centre, UP)
                pose = np.eye(4)
                pose[:3, :3] = q @ pose_object[:3, :3]
                pose[:3, 3] = scale * pose_object[:3, 3] @ q.T + shift
                f = focal * rng.uniform(0.97, 1.03)
                K = np.array(
                    [[f, 0, width / 2 + rng.uniform(-6, 6)], [0, f, height / 2 + rng.uniform(-6, 6)], [0, 0, 1]]
                )
                rgb = render_unshaded(scene, pose, K, height, width)  # pixel geometry is scale-free: the raw frame
                coverage = render_unshaded(coverage_scene, pose, K, height, width)[0]
                number = 10 + 3 * k  # Co3D frame numbers need not match file names
                image_path = f"{category}/{name}/images/frame{k + 1:06d}.jpg"
                mask_path = f"{category}/{name}/masks/frame{k + 1:06d}.png"
                Image.fromarray((rgb.transpose(1, 2, 0) * 255).round().astype(np.uint8)).save(
                    root / image_path, quality=98
                )
                Image.fromarray((coverage * 255).round().astype(np.uint8)).save(root / mask_path)
                R, T = pytorch3d_of_cam_to_world(pose)
                focal_ndc, principal_ndc = co3d_ndc_intrinsics(K, height, width, intrinsics_format)
                if name == "101_1001_2001" and k == 2:
                    focal_ndc = [float("nan"), float("nan")]
                viewpoint = dict(R=R.tolist(), T=T.tolist(), focal_length=focal_ndc, principal_point=principal_ndc)
                frame_annotations.append(
                    {
                        "sequence_name": name,
                        "frame_number": number,
                        "frame_timestamp": 0.5 * k,
                        "image": {"path": image_path, "size": [height, width]},
                        "depth": None,
                        "mask": {"path": mask_path, "mass": float(coverage.sum())},
                        "viewpoint": {**viewpoint, "intrinsics_format": intrinsics_format},
                        "meta": {"frame_type": f"{split}_known"},
                    }
                )
                info.cam_to_world.append(pose)
                info.K.append(K)
                info.frame_numbers.append(number)
                set_lists[split].append([name, number, image_path])
            cloud_path = f"{category}/{name}/pointcloud.ply"
            write_point_cloud(root / cloud_path, scene, rng)
            cloud = {"path": cloud_path, "quality_score": 1.0, "n_points": 3000}
            sequence_annotations.append({"sequence_name": name, "category": category, "point_cloud": cloud})
    for split in set_lists:  # PyTorch3D keeps the set list's order; the preprocessing must re-order by timestamp
        set_lists[split] = [set_lists[split][i] for i in rng.permutation(len(set_lists[split]))]
    rng.shuffle(frame_annotations)
    for file, content in (("frame_annotations", frame_annotations), ("sequence_annotations", sequence_annotations)):
        with gzip.open(category_dir / f"{file}.jgz", "wt", encoding="utf8") as stream:
            json.dump(content, stream)
    (category_dir / "set_lists").mkdir()
    (category_dir / "set_lists" / "set_lists_fewview_dev.json").write_text(json.dumps(set_lists))
    return RawCo3D(root, category, scene, sequences, set_lists, q @ UP)
