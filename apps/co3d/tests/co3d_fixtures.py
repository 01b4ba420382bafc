"""Test helpers: preprocessed-layout sequences written from arrays, a tiny raw Co3D v2 category written in the
Co3D annotation format (frame/sequence annotations, set lists, JPEG images, PNG masks, a .ply point cloud) from an
analytic scene seen by known OpenCV cameras, and tiny experiments and models for the evaluation tests."""

import gzip
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from plyfile import PlyData, PlyElement

from app_co3d.app import build_teacher
from app_co3d.experiment import Co3DExperiment, EvalConfig, ModelConfig, preset
from app_co3d.preprocess import SequenceNormalization
from app_co3d.synthetic import Scene, look_at_opencv, make_scene, render_scene, sphere
from splat_apps import build_student
from splat_teachers import SplatterImage
from splat_train import GaussianDenoiser

# --------------------------------------------------------------------------------------------------------------------
# Preprocessed layout


def _update_archive(path: Path, name: str, array: np.ndarray) -> None:
    entries = {}
    if path.is_file():
        with np.load(path, allow_pickle=False) as archive:
            entries = {k: archive[k] for k in archive.files}
    entries[name] = array
    np.savez(path, **entries)


def write_sequence(
    split_dir: Path,
    name: str,
    images: np.ndarray,
    focal_ndc: np.ndarray,
    R: np.ndarray,
    T: np.ndarray,
    frame_names: list[str] | None = None,
) -> Path:
    """One sequence in Splatter Image's layout (images [N 3 H H], focal [N 1 2], R [N 3 3], T [N 3])."""
    folder = split_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "images_fg.npy", images.astype(np.float32))
    np.save(folder / "focal_lengths.npy", focal_ndc.astype(np.float32))
    names = frame_names if frame_names is not None else [f"{i:05d}.png" for i in range(len(images))]
    (folder / "frame_order.txt").write_text("".join(f"{n}\n" for n in names))
    _update_archive(split_dir / "camera_Rs.npz", name, R.astype(np.float32))
    _update_archive(split_dir / "camera_Ts.npz", name, T.astype(np.float32))
    return folder


def orbit_RT(count: int, distance: float = 2.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch3D (R, T) of cameras on a circle around the origin, looking at it (y up)."""
    rng = np.random.default_rng(seed)
    R, T = [], []
    for k in range(count):
        angle = 2 * np.pi * k / count
        eye = distance * np.array([np.sin(angle), 0.4, np.cos(angle)])
        pose = look_at_opencv(eye, rng.normal(scale=0.02, size=3), np.array([0.0, 1.0, 0.0]))
        r, t = pytorch3d_of_cam_to_world(pose)
        R.append(r)
        T.append(t)
    return np.stack(R), np.stack(T)


def random_sequence_arrays(
    count: int, side: int = 16, seed: int = 0, black: tuple[int, ...] = ()
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(images, focal [N 1 2], R, T) with random non-black images except the views in `black` (all zero)."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.05, 1.0, size=(count, 3, side, side)).astype(np.float32)
    images[list(black)] = 0
    focal = np.full((count, 1, 2), 2.5, dtype=np.float32)
    R, T = orbit_RT(count, seed=seed)
    return images, focal, R, T


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
    elif intrinsics_format == "ndc_norm_image_bounds":
        scale = np.array([width / 2, height / 2])
    else:
        raise ValueError(intrinsics_format)
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
    render = render_scene(flat, torch.from_numpy(pose)[None], torch.from_numpy(K)[None], height, width, 3)
    return render.rgb[0].numpy()


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


def write_raw_co3d(
    root: Path,
    category: str = "hydrant",
    frames: int = 6,
    nan_focal_sequence: bool = True,
    seed: int = 0,
) -> RawCo3D:
    """A tiny Co3D v2 category: `train` = a landscape ndc_isotropic sequence (+ a sequence with a NaN focal length),
    `val` = a portrait ndc_norm_image_bounds sequence, `test` = a square one; off-centre principal points, per-frame
    focal lengths, the scene in a rotated, scaled and shifted frame; set lists in shuffled order."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    scale, shift = 1.7, np.array([0.4, -1.1, 2.0])

    def to_raw(points: np.ndarray) -> np.ndarray:  # object frame -> raw frame (column: scale * q x + shift)
        return scale * points @ q.T + shift

    scene = three_spheres().transformed(SequenceNormalization(q.T, -shift / scale, scale))  # = to_raw
    coverage_scene = replace(
        scene, colours_front=torch.ones_like(scene.colours_front), colours_back=torch.ones_like(scene.colours_back)
    )
    up = q @ np.array([0.0, 1.0, 0.0])
    category_dir = root / category
    layouts = {
        "train": [("100_1000_2000", 120, 160, "ndc_isotropic")],
        "val": [("200_2000_3000", 144, 96, "ndc_norm_image_bounds")],
        "test": [("300_3000_4000", 128, 128, "ndc_isotropic")],
    }
    if nan_focal_sequence:
        layouts["train"].append(("101_1001_2001", 120, 160, "ndc_isotropic"))
    frame_annotations, sequence_annotations, sequences = [], [], {}
    set_lists: dict[str, list[list]] = {}
    for split, entries in layouts.items():
        set_lists[split] = []
        for name, height, width, intrinsics_format in entries:
            info = RawSequence(name, height, width, intrinsics_format)
            sequences[name] = info
            folder = category_dir / name
            (folder / "images").mkdir(parents=True)
            (folder / "masks").mkdir()
            elevation = np.radians(rng.uniform(10, 25))
            start = rng.uniform(0, 2 * np.pi)
            focal = rng.uniform(0.9, 1.2) * max(height, width)
            for k in range(frames):
                azimuth = start + 2 * np.pi * k / frames
                direction = np.array(
                    [np.cos(elevation) * np.sin(azimuth), np.sin(elevation), np.cos(elevation) * np.cos(azimuth)]
                )
                eye_object = np.array([0.0, 0.5, 0.0]) + rng.uniform(3.0, 3.6) * direction
                pose_object = look_at_opencv(eye_object, np.array([0.0, 0.5, 0.0]), np.array([0.0, 1.0, 0.0]))
                pose = np.eye(4)
                pose[:3, :3] = q @ pose_object[:3, :3]
                pose[:3, 3] = to_raw(pose_object[:3, 3])
                f = focal * rng.uniform(0.97, 1.03)
                K = np.array(
                    [[f, 0, width / 2 + rng.uniform(-6, 6)], [0, f, height / 2 + rng.uniform(-6, 6)], [0, 0, 1]]
                )
                # the renderer works in any frame: pixel geometry is scale-free, so render in the raw frame
                rgb = render_unshaded(scene, pose, K, height, width)
                coverage = render_unshaded(coverage_scene, pose, K, height, width)[0]  # white on black: the coverage
                number = 10 + 3 * k  # Co3D frame numbers need not match file names
                image_path = f"{category}/{name}/images/frame{k + 1:06d}.jpg"
                mask_path = f"{category}/{name}/masks/frame{k + 1:06d}.png"
                Image.fromarray((rgb.transpose(1, 2, 0) * 255).round().astype(np.uint8)).save(
                    root / image_path, quality=98
                )
                Image.fromarray((coverage * 255).round().astype(np.uint8)).save(root / mask_path)
                R, T = pytorch3d_of_cam_to_world(pose)
                focal_ndc, principal_ndc = co3d_ndc_intrinsics(K, height, width, intrinsics_format)
                if nan_focal_sequence and name == "101_1001_2001" and k == 2:
                    focal_ndc = [float("nan"), float("nan")]
                frame_annotations.append(
                    {
                        "sequence_name": name,
                        "frame_number": number,
                        "frame_timestamp": 0.5 * k,
                        "image": {"path": image_path, "size": [height, width]},
                        "depth": None,
                        "mask": {"path": mask_path, "mass": float(coverage.sum())},
                        "viewpoint": {
                            "R": R.tolist(),
                            "T": T.tolist(),
                            "focal_length": focal_ndc,
                            "principal_point": principal_ndc,
                            "intrinsics_format": intrinsics_format,
                        },
                        "meta": {"frame_type": f"{split}_known"},
                    }
                )
                info.cam_to_world.append(pose)
                info.K.append(K)
                info.frame_numbers.append(number)
                set_lists[split].append([name, number, image_path])
            cloud_path = f"{category}/{name}/pointcloud.ply"
            write_point_cloud(root / cloud_path, scene, rng)
            sequence_annotations.append(
                {
                    "sequence_name": name,
                    "category": category,
                    "video": None,
                    "point_cloud": {"path": cloud_path, "quality_score": 1.0, "n_points": 3000},
                    "viewpoint_quality_score": 1.0,
                }
            )
    for split in set_lists:  # PyTorch3D keeps the set list's order; the preprocessing must re-order by timestamp
        order = rng.permutation(len(set_lists[split]))
        set_lists[split] = [set_lists[split][i] for i in order]
    rng.shuffle(frame_annotations)
    with gzip.open(category_dir / "frame_annotations.jgz", "wt", encoding="utf8") as file:
        json.dump(frame_annotations, file)
    with gzip.open(category_dir / "sequence_annotations.jgz", "wt", encoding="utf8") as file:
        json.dump(sequence_annotations, file)
    (category_dir / "set_lists").mkdir()
    (category_dir / "set_lists" / "set_lists_fewview_dev.json").write_text(json.dumps(set_lists))
    return RawCo3D(root, category, scene, sequences, set_lists, up)


def write_point_cloud(path: Path, scene: Scene, rng: np.random.Generator, per_sphere: int = 1000) -> None:
    """Points on the spheres' surfaces, binary little-endian PLY with colours (as Co3D's pointcloud.ply)."""
    points = []
    for centre, radius, _ in spheres_of(scene):
        directions = rng.normal(size=(per_sphere, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        points.append(centre + radius * directions)
    xyz = np.concatenate(points)
    vertex = np.empty(
        len(xyz), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    )
    for i, axis in enumerate("xyz"):
        vertex[axis] = xyz[:, i]
    for channel in ("red", "green", "blue"):
        vertex[channel] = 128
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(path))


# --------------------------------------------------------------------------------------------------------------------
# Tiny experiments and models


def tiny_experiment(root: Path | None, run_dir: Path = Path("unused"), **eval_options) -> Co3DExperiment:
    """The cpu-demo preset on `root` with 8-channel one-block networks, 2 DDIM steps and no LPIPS."""
    base = preset("cpu-demo")
    model = ModelConfig(
        teacher_unet=replace(base.model.teacher_unet, model_channels=8, num_blocks=1),
        student_unet=replace(base.model.student_unet, model_channels=8, num_blocks=1),
    )
    evaluation = EvalConfig(**{"lpips": False, "grid_sequences": 1, "grid_views": 2, **eval_options})
    return replace(
        base,
        run_dir=run_dir,
        model=model,
        data=replace(base.data, root=root),
        eval=evaluation,
        diffusion=replace(base.diffusion, ddim_steps=2),
    )


def tiny_models(experiment: Co3DExperiment, side: int) -> tuple[SplatterImage, GaussianDenoiser]:
    """A fresh teacher for `side` px images and the student on its map, both in eval mode."""
    teacher = build_teacher(experiment, side).eval()
    return teacher, build_student(experiment, teacher).eval()
