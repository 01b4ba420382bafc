"""Raw Co3D v2 → the Splatter Image preprocessed layout read by `data.py`, without PyTorch3D.

    uv run apps/co3d/preprocess.py --co3d-root /data/co3d --out /data/co3d_gs
    # -> /data/co3d_gs/co3d_hydrant_for_gs/{train,val,test}/... and preprocess_report.json

Input: a Co3D v2 download (`python co3d/download_dataset.py --download_categories hydrant`), paths in the annotations
relative to `--co3d-root`::

    <co3d_root>/hydrant/frame_annotations.jgz          gzip JSON list of frame annotations (PyTorch3D FrameAnnotation)
                       /sequence_annotations.jgz       gzip JSON list of sequence annotations (point cloud path)
                       /set_lists/set_lists_fewview_dev.json   {"train"|"val"|"test": [[sequence, frame_number, path]]}
                       /<sequence>/images/frameNNNNNN.jpg, masks/frameNNNNNN.png, pointcloud.ply

What Splatter Image's `data_preprocessing/preprocess_co3d.py` computes through PyTorch3D 0.7.2
(`JsonIndexDatasetMapProviderV2(subset_name="fewview_dev", remove_empty_masks=False, load_point_clouds=True)`),
re-derived step by step:

1. Splits are the set list's `train` / `val` / `test` lists. A sequence's frames are ordered by (timestamp, frame
   number); line k of `frame_order.txt` is `{i:05d}.png`, i = the frame's position in its split's set list (the
   PyTorch3D dataset index Splatter Image writes; only the order is ever read back).
2. Intrinsics as `JsonIndexDataset._get_pytorch3d_camera` reads them: s = min(W, H) / 2 for `ndc_isotropic`,
   s = (W / 2, H / 2) for `ndc_norm_image_bounds`; focal_px = focal * s; principal_point_px = (W / 2, H / 2) -
   principal_point * s (PyTorch3D NDC has +x left, +y up; pixel centres at +0.5). R and T are kept as stored
   (PyTorch3D: X_cam = X_world R + T). Splatter Image recovers this principal point from PyTorch3D's 800 x 800 box
   crop (the crop's offset and scale cancel exactly), so the numbers are the same.
3. The largest square centred on the principal point that fits in the image: half side h = min(px, W - px, py,
   H - py), sampled bilinearly at the floor(2h) x floor(2h) pixel centres of [px - h, px + h] x [py - h, py + h];
   RGB resized to `resolution` with Lanczos, the mask with (non-antialiased) bilinear interpolation, as upstream;
   images_fg = rgb * mask (black background). The principal point is now the image centre.
4. Focal length of the crop in NDC: focal_px / h (Splatter Image: focal_ndc_800 * max(box_h, box_w) / (2 h), the same).
5. Sequence normalisation (`--normalization viewset`: ViewSet Diffusion's `normalize_sequence(dataset, seq, 1.2)`,
   which Splatter Image used up to commit 98b4657), on the sequence point cloud `pointcloud.ply`, row vectors:
   a. centre: subtract the point cloud's mean c;
   b. level: the cameras' x axes (first column of each R) minus their mean; the right-singular vector of their
      smallest singular value is "up" (the photographer's bias: cameras orbit a vertical axis), its sign chosen
      to agree with the first camera's y axis (second column of R); new axes B = [v1, up, v1 x up] (v1: largest
      singular value), points x -> x B, cameras R -> B^T R;
   c. scale: shift along up to the midpoint of the points' extent on that axis, then scale by
      s = 1.2 * 0.95 / (2 max |x|) so that the cloud fits the cube [-0.57, 0.57]^3; cameras T -> s (T + o R).
   Altogether x_normalised = s (x B - o) with o = c B + (0, y_mid, 0). Sequences with nearly isotropic camera
   x axes or inconsistently signed camera y axes are flagged (upstream prints a warning) in the report.
   `--normalization none` keeps Co3D's own frame: Splatter Image's commit 78a6ad0 (the code of the released v1
   checkpoints, README: "No camera pose pre-processing in CO3D") no longer normalises.
6. A sequence with non-finite images or focal lengths is reported and gets no images (its cameras are still saved, as
   upstream does); a sequence without a point cloud cannot be normalised and is skipped.

Differences from upstream, all sub-pixel or below 1/255: the mask is read at full resolution instead of being
reconstructed from PyTorch3D's 800 x 800 nearest-neighbour crop; the crop samples pixel centres (upstream offsets
samples by 0.5 / n instead of half a pixel, stretching the crop by about one source pixel); RGB is resampled in
float (upstream truncates to 8 bits before Lanczos); `images_full.npy` (unmasked RGB, unused by the reader) is
written only with `--full-images`.
"""

import gzip
import json
import math
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .data import SPLITS, Co3DDataError

# Some Co3D v2 point-cloud paths carry this absolute prefix by accident (PyTorch3D `_fix_point_cloud_path`).
_UNWANTED_POINT_CLOUD_PREFIX = "/large_experiments/p3/replay/datasets/co3d/co3d45k_220512/export_v23/"
VIEWSET_MARGIN = 0.95  # ViewSet Diffusion fits the cloud into 0.95 of the volume


@dataclass(frozen=True)
class PreprocessConfig:
    """Raw Co3D v2 → `co3d_<category>_for_gs/{train,val,test}` (Splatter Image's preprocessed layout)."""

    co3d_root: Path
    """Co3D v2 download folder (holds `<category>/frame_annotations.jgz`)."""
    out: Path
    """Output folder; the dataset is written to `<out>/co3d_<category>_for_gs`."""
    category: str = "hydrant"
    subset: str = "fewview_dev"
    """Set list `set_lists/set_lists_<subset>.json` defining the splits (Splatter Image: fewview_dev)."""
    splits: tuple[str, ...] = SPLITS
    resolution: int = 128
    normalization: Literal["viewset", "none"] = "viewset"
    volume_side_length: float = 1.2
    full_images: bool = False
    """Also write `images_full.npy` (unmasked RGB), as upstream does; the reader never uses it."""
    sequences: tuple[str, ...] = ()
    """Only these sequences (default: all)."""
    limit_sequences: int = 0
    """Only the first N sequences of each split (0: all)."""
    workers: int = 1
    """Worker processes (sequences are processed independently)."""
    overwrite: bool = False


# --------------------------------------------------------------------------------------------------------------------
# Annotations


@dataclass(frozen=True)
class Viewpoint:
    """A Co3D camera: PyTorch3D row-vector R, T; focal length and principal point in the NDC `intrinsics_format`."""

    R: np.ndarray  # [3 3]
    T: np.ndarray  # [3]
    focal_length: np.ndarray  # [2]
    principal_point: np.ndarray  # [2]
    intrinsics_format: str = "ndc_norm_image_bounds"  # PyTorch3D's default when the field is absent


@dataclass(frozen=True)
class FrameAnnotation:
    sequence_name: str
    frame_number: int
    frame_timestamp: float | None
    image_path: str
    image_size_hw: tuple[int, int]
    mask_path: str | None
    viewpoint: Viewpoint | None


@dataclass(frozen=True)
class SequenceAnnotation:
    sequence_name: str
    category: str
    point_cloud_path: str | None


def _read_gzip_json(path: Path) -> object:
    if not path.is_file():
        raise Co3DDataError(path, "missing annotation file")
    try:
        with gzip.open(path, "rt", encoding="utf8") as file:
            return json.load(file)
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Co3DDataError(path, f"unreadable gzip JSON: {error}") from None


def _array(path: Path, where: str, value: object, shape: tuple[int, ...]) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise Co3DDataError(path, f"{where} must be numbers of shape {list(shape)}, got {value!r}") from None
    if array.shape != shape:
        raise Co3DDataError(path, f"{where} must have shape {list(shape)}, got {list(array.shape)}")
    return array


def _parse_viewpoint(path: Path, where: str, raw: object) -> Viewpoint | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise Co3DDataError(path, f"{where}.viewpoint must be an object")
    try:
        return Viewpoint(
            R=_array(path, f"{where}.viewpoint.R", raw["R"], (3, 3)),
            T=_array(path, f"{where}.viewpoint.T", raw["T"], (3,)),
            focal_length=_array(path, f"{where}.viewpoint.focal_length", raw["focal_length"], (2,)),
            principal_point=_array(path, f"{where}.viewpoint.principal_point", raw["principal_point"], (2,)),
            intrinsics_format=str(raw.get("intrinsics_format", "ndc_norm_image_bounds")),
        )
    except KeyError as error:
        raise Co3DDataError(path, f"{where}.viewpoint lacks {error}") from None


def read_frame_annotations(path: str | Path) -> list[FrameAnnotation]:
    """`frame_annotations.jgz`: every frame's image / mask path, image size (H, W) and viewpoint."""
    path = Path(path)
    raw = _read_gzip_json(path)
    if not isinstance(raw, list):
        raise Co3DDataError(path, "frame annotations must be a JSON list")
    frames = []
    for i, entry in enumerate(raw):
        where = f"frame annotation {i}"
        try:
            image = entry["image"]
            size = tuple(int(v) for v in image["size"])
            if len(size) != 2 or min(size) < 1:
                raise Co3DDataError(path, f"{where}.image.size must be (H, W), got {image['size']!r}")
            mask = entry.get("mask")
            timestamp = entry.get("frame_timestamp")
            frames.append(
                FrameAnnotation(
                    sequence_name=str(entry["sequence_name"]),
                    frame_number=int(entry["frame_number"]),
                    frame_timestamp=None if timestamp is None else float(timestamp),
                    image_path=str(image["path"]),
                    image_size_hw=(size[0], size[1]),
                    mask_path=None if mask is None else str(mask["path"]),
                    viewpoint=_parse_viewpoint(path, where, entry.get("viewpoint")),
                )
            )
        except KeyError as error:
            raise Co3DDataError(path, f"{where} lacks {error}") from None
        except (TypeError, ValueError, AttributeError) as error:
            raise Co3DDataError(path, f"{where} is malformed: {error}") from None
    return frames


def read_sequence_annotations(path: str | Path) -> dict[str, SequenceAnnotation]:
    """`sequence_annotations.jgz`: category and point-cloud path of every sequence."""
    path = Path(path)
    raw = _read_gzip_json(path)
    if not isinstance(raw, list):
        raise Co3DDataError(path, "sequence annotations must be a JSON list")
    sequences = {}
    for i, entry in enumerate(raw):
        try:
            cloud = entry.get("point_cloud")
            sequences[str(entry["sequence_name"])] = SequenceAnnotation(
                sequence_name=str(entry["sequence_name"]),
                category=str(entry["category"]),
                point_cloud_path=None if cloud is None else str(cloud["path"]),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise Co3DDataError(path, f"sequence annotation {i} is malformed: {error!r}") from None
    return sequences


def read_set_lists(path: str | Path) -> dict[str, list[tuple[str, int, str]]]:
    """`set_lists_<subset>.json`: {split: [(sequence_name, frame_number, image_path), ...]}."""
    path = Path(path)
    if not path.is_file():
        raise Co3DDataError(path, "missing set list")
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Co3DDataError(path, f"unreadable set list: {error}") from None
    if not isinstance(raw, dict):
        raise Co3DDataError(path, "set list must be a JSON object {split: [[sequence, frame_number, path], ...]}")
    result = {}
    for split, entries in raw.items():
        try:
            result[split] = [(str(s), int(n), str(p)) for s, n, p in entries]
        except (TypeError, ValueError) as error:
            raise Co3DDataError(
                path, f"set list {split!r} entries must be [sequence, frame_number, path]: {error}"
            ) from None
    return result


def read_point_cloud(path: str | Path) -> np.ndarray:
    """Vertex positions [N 3] of a .ply point cloud (Co3D `pointcloud.ply`)."""
    from plyfile import PlyData  # a dependency of splat-render (its .ply io)

    path = Path(path)
    if not path.is_file():
        raise Co3DDataError(path, "missing point cloud")
    try:
        vertex = PlyData.read(str(path))["vertex"]
        points = np.stack([np.asarray(vertex[axis], dtype=np.float64) for axis in "xyz"], axis=-1)
    except (OSError, ValueError, KeyError, IndexError, EOFError) as error:
        raise Co3DDataError(path, f"unreadable point cloud (need a vertex element with x, y, z): {error}") from None
    return points


def point_cloud_location(co3d_root: Path, stored: str) -> Path:
    """Where a stored point-cloud path points (PyTorch3D `_fix_point_cloud_path`)."""
    if stored.startswith(_UNWANTED_POINT_CLOUD_PREFIX):
        stored = stored[len(_UNWANTED_POINT_CLOUD_PREFIX) :]
    return co3d_root / stored


# --------------------------------------------------------------------------------------------------------------------
# Cameras


def intrinsics_in_pixels(viewpoint: Viewpoint, image_size_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(focal [fx fy], principal point [px py]) in pixels of the full image, as PyTorch3D's JsonIndexDataset reads
    Co3D's NDC intrinsics (pixel centres at +0.5, NDC +x left / +y up)."""
    height, width = image_size_hw
    half = np.array([width / 2, height / 2])
    kind = viewpoint.intrinsics_format.lower()
    if kind == "ndc_norm_image_bounds":
        rescale = half
    elif kind == "ndc_isotropic":
        rescale = np.full(2, half.min())
    else:
        raise ValueError(f"unknown intrinsics_format {viewpoint.intrinsics_format!r}")
    return viewpoint.focal_length * rescale, half - viewpoint.principal_point * rescale


def max_half_side(principal_point: np.ndarray, image_size_hw: tuple[int, int]) -> float:
    """Half side of the largest square centred on the principal point that fits in the image."""
    height, width = image_size_hw
    px, py = float(principal_point[0]), float(principal_point[1])
    return min(px, width - px, py, height - py)


@dataclass(frozen=True)
class SequenceNormalization:
    """A similarity of the world frame, x_normalised = scale * (x @ rotation - offset) for row vectors x.

    `rotation` holds the new axes (columns) in old coordinates; `notes` lists anything upstream would warn about."""

    rotation: np.ndarray  # [3 3]
    offset: np.ndarray  # [3]
    scale: float
    notes: tuple[str, ...] = ()

    @staticmethod
    def identity() -> "SequenceNormalization":
        return SequenceNormalization(np.eye(3), np.zeros(3), 1.0)

    def apply(self, points: np.ndarray) -> np.ndarray:
        return self.scale * (np.asarray(points, dtype=np.float64) @ self.rotation - self.offset)

    def apply_to_cameras(self, R: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """PyTorch3D cameras seeing the normalised world exactly as (R, T) saw the old one, up to the scale of depth:
        X_cam' = x' R' + T' = scale * X_cam for x' = apply(x)."""
        R_new = self.rotation.T @ R
        T_new = self.scale * (T + self.offset @ R_new)
        return R_new, T_new

    def to_json(self) -> dict:
        return {
            "rotation": self.rotation.tolist(),
            "offset": self.offset.tolist(),
            "scale": self.scale,
            "notes": list(self.notes),
        }


def viewset_normalization(
    R: np.ndarray, T: np.ndarray, points: np.ndarray, volume_side_length: float = 1.2
) -> SequenceNormalization:
    """ViewSet Diffusion's sequence normalisation (module docstring, step 5), in float64. R [N 3 3], points [M 3]."""
    R = np.asarray(R, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise ValueError(f"points must be a non-empty [M 3] array, got shape {list(points.shape)}")
    if not np.isfinite(points).all() or not np.isfinite(R).all():
        raise ValueError("points and R must be finite")
    notes = []
    centre = points.mean(axis=0)
    x_axes = R[:, :, 0] - R[:, :, 0].mean(axis=0)  # camera x axis (PyTorch3D: left) in world coordinates
    _, singular, vh = np.linalg.svd(x_axes, full_matrices=True)
    singular = np.pad(singular, (0, 3 - len(singular)))
    v = vh.T
    if singular[0] * singular[2] > singular[1] ** 2:  # upstream: S0 / S1 > S1 / S2
        notes.append(f"unexpected singular values of the camera x axes {singular.round(4).tolist()}")
    up = v[:, 2]
    camera_up = R[:, :, 1]  # camera y axis (PyTorch3D: up) in world coordinates
    signs = np.sign(camera_up @ up)
    if (signs != signs[0]).any():
        notes.append("some cameras appear flipped (camera y axes disagree on the up direction)")
    if signs[0] < 0:
        up = -up
    rotation = np.stack([v[:, 0], up, np.cross(v[:, 0], up)], axis=1)
    levelled = (points - centre) @ rotation
    y_mid = (levelled[:, 1].max() + levelled[:, 1].min()) / 2
    shift = np.array([0.0, y_mid, 0.0])
    extent = float(np.abs(levelled - shift).max())
    if extent <= 0:
        raise ValueError("the point cloud is a single point; its scale is undefined")
    scale = volume_side_length * VIEWSET_MARGIN / (2 * extent)
    return SequenceNormalization(rotation, centre @ rotation + shift, scale, tuple(notes))


# --------------------------------------------------------------------------------------------------------------------
# Images


def load_image(path: Path, mode: str, what: str) -> np.ndarray:
    """An image file as float32 [C H W] in [0, 1]: `mode` "RGB" for a frame, "L" for a Co3D mask (foreground
    probability * 255)."""
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert(mode), dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise Co3DDataError(path, f"missing {what}") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise Co3DDataError(path, f"unreadable {what}: {error}") from None
    return np.ascontiguousarray(np.atleast_3d(array).transpose(2, 0, 1))


def crop_square(image: np.ndarray, centre: np.ndarray, half_side: float) -> np.ndarray:
    """Bilinear samples [C n n], n = floor(2 half_side), at the pixel centres of the square of side 2 half_side
    centred on `centre` (pixel coordinates, pixel centres at +0.5)."""
    _, height, width = image.shape
    n = math.floor(2 * half_side)
    if n < 1:
        raise ValueError(f"the crop around {centre.tolist()} is smaller than a pixel (half side {half_side})")
    offsets = (np.arange(n) + 0.5) * (2 * half_side / n) - half_side
    xs = (centre[0] + offsets - width / 2) / (width / 2)  # grid_sample coordinates (align_corners=False)
    ys = (centre[1] + offsets - height / 2) / (height / 2)
    grid = np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1)[None].astype(np.float32)
    sampled = F.grid_sample(
        torch.from_numpy(image)[None],
        torch.from_numpy(grid),
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )
    return sampled[0].numpy()


def resize_lanczos(image: np.ndarray, resolution: int) -> np.ndarray:
    """Per-channel float Lanczos resize [C n n] -> [C r r] (PIL), clamped to [0, 1]."""
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(c)).resize((resolution, resolution), Image.Resampling.LANCZOS))
        for c in image
    ]
    return np.clip(np.stack(channels), 0.0, 1.0).astype(np.float32)


def resize_bilinear(image: np.ndarray, resolution: int) -> np.ndarray:
    """Bilinear resize without antialiasing (torchvision's tensor resize at the time), clamped to [0, 1]."""
    resized = F.interpolate(
        torch.from_numpy(image)[None], size=(resolution, resolution), mode="bilinear", align_corners=False
    )
    return resized[0].clamp(0, 1).numpy()


def process_frame(co3d_root: Path, frame: FrameAnnotation, resolution: int) -> tuple[np.ndarray, ...]:
    """Steps 2-4 of the module docstring for one frame: RGB [3 r r] (unmasked), foreground on black [3 r r], focal
    length in NDC [2]."""
    if frame.viewpoint is None:
        raise ValueError(f"frame {frame.frame_number} has no viewpoint annotation")
    if frame.mask_path is None:
        raise ValueError(f"frame {frame.frame_number} has no mask annotation")
    rgb = load_image(co3d_root / frame.image_path, "RGB", "image")
    mask = load_image(co3d_root / frame.mask_path, "L", "mask")
    for what, path, array in (("image", frame.image_path, rgb), ("mask", frame.mask_path, mask)):
        if array.shape[1:] != frame.image_size_hw:
            raise Co3DDataError(co3d_root / path, f"{what} is {array.shape[1:]} but annotated {frame.image_size_hw}")
    focal_px, principal_point = intrinsics_in_pixels(frame.viewpoint, frame.image_size_hw)
    half_side = max_half_side(principal_point, frame.image_size_hw)
    if not half_side >= 0.5:  # also catches NaN
        raise ValueError(f"frame {frame.frame_number}: principal point {principal_point.tolist()} is off the image")
    crop = crop_square(np.concatenate([rgb, mask]), principal_point, half_side)
    rgb_small = resize_lanczos(crop[:3], resolution)
    mask_small = resize_bilinear(crop[3:], resolution)
    return rgb_small, rgb_small * mask_small, (focal_px / half_side).astype(np.float64)


# --------------------------------------------------------------------------------------------------------------------
# Sequences and splits


@dataclass(frozen=True)
class SequenceJob:
    name: str
    frames: tuple[FrameAnnotation, ...]  # in sequence order
    dataset_indices: tuple[int, ...]  # position of each frame in the split's set list
    point_cloud: Path | None
    out_dir: Path
    config: PreprocessConfig


@dataclass(frozen=True)
class SequenceResult:
    name: str
    R: np.ndarray | None  # [N 3 3] saved to camera_Rs.npz (None: sequence skipped entirely)
    T: np.ndarray | None
    written: bool
    reason: str | None = None
    normalization: SequenceNormalization | None = None


def process_sequence(job: SequenceJob) -> SequenceResult:
    """Normalise one sequence's cameras and write its frames (module docstring, steps 2-6)."""
    missing = [f.frame_number for f in job.frames if f.viewpoint is None]
    if missing:
        return SequenceResult(job.name, None, None, False, f"frames {missing} have no viewpoint")
    R = np.stack([f.viewpoint.R for f in job.frames])
    T = np.stack([f.viewpoint.T for f in job.frames])
    normalization = SequenceNormalization.identity()
    config = job.config
    if config.normalization == "viewset":
        if job.point_cloud is None:
            return SequenceResult(job.name, None, None, False, "no point cloud: cannot normalise")
        try:
            normalization = viewset_normalization(R, T, read_point_cloud(job.point_cloud), config.volume_side_length)
        except (Co3DDataError, ValueError) as error:
            return SequenceResult(job.name, None, None, False, f"cannot normalise: {error}")
    R, T = normalization.apply_to_cameras(R, T)

    try:
        frames = [process_frame(config.co3d_root, frame, config.resolution) for frame in job.frames]
    except (Co3DDataError, ValueError) as error:
        return SequenceResult(job.name, R, T, False, str(error), normalization)
    rgb, rgb_fg, focal = (np.stack(values).astype(np.float32) for values in zip(*frames, strict=True))
    focal = focal[:, None, :]
    if not (np.isfinite(rgb).all() and np.isfinite(rgb_fg).all() and np.isfinite(focal).all()):
        return SequenceResult(job.name, R, T, False, "non-finite images or focal lengths", normalization)
    directory = job.out_dir / job.name
    directory.mkdir(parents=True, exist_ok=True)
    if config.full_images:
        np.save(directory / "images_full.npy", rgb)
    np.save(directory / "images_fg.npy", rgb_fg)
    np.save(directory / "focal_lengths.npy", focal)
    (directory / "frame_order.txt").write_text("".join(f"{i:05d}.png\n" for i in job.dataset_indices))
    return SequenceResult(job.name, R, T, True, None, normalization)


def split_jobs(
    config: PreprocessConfig,
    split: str,
    set_list: list[tuple[str, int, str]],
    frames: dict[tuple[str, int], FrameAnnotation],
    sequences: dict[str, SequenceAnnotation],
    set_list_path: Path,
) -> tuple[list[SequenceJob], dict[str, str]]:
    """One job per sequence of the split (frames ordered by timestamp, then frame number), and the sequences
    skipped before processing with the reason."""
    grouped: dict[str, list[tuple[float, int, int, FrameAnnotation]]] = defaultdict(list)
    for index, (name, number, image_path) in enumerate(set_list):
        frame = frames.get((name, number))
        if frame is None:
            raise Co3DDataError(set_list_path, f"{split}[{index}]: sequence {name!r} frame {number} is not annotated")
        if os.path.normpath(frame.image_path) != os.path.normpath(image_path):
            raise Co3DDataError(
                set_list_path,
                f"{split}[{index}]: path {image_path!r} disagrees with the annotation {frame.image_path!r}",
            )
        grouped[name].append((frame.frame_timestamp or 0.0, number, index, frame))
    names = sorted(grouped)
    if config.sequences:
        names = [n for n in names if n in set(config.sequences)]
    if config.limit_sequences > 0:
        names = names[: config.limit_sequences]
    jobs, skipped = [], {}
    out_dir = config.out / f"co3d_{config.category}_for_gs" / split
    for name in names:
        ordered = sorted(grouped[name], key=lambda item: item[:3])
        annotation = sequences.get(name)
        if annotation is None:
            skipped[name] = "no sequence annotation"
            continue
        cloud = annotation.point_cloud_path
        jobs.append(
            SequenceJob(
                name=name,
                frames=tuple(item[3] for item in ordered),
                dataset_indices=tuple(item[2] for item in ordered),
                point_cloud=None if cloud is None else point_cloud_location(config.co3d_root, cloud),
                out_dir=out_dir,
                config=config,
            )
        )
    return jobs, skipped


@dataclass
class SplitReport:
    written: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    normalization: dict[str, dict] = field(default_factory=dict)


def _worker_init() -> None:
    torch.set_num_threads(1)


def preprocess(config: PreprocessConfig, log=print) -> Path:
    """Run the whole preprocessing; returns the dataset root `<out>/co3d_<category>_for_gs`."""
    if config.resolution < 1 or config.workers < 1:
        raise ValueError(f"resolution and workers must be >= 1, got {config.resolution}, {config.workers}")
    if config.normalization not in ("viewset", "none"):
        raise ValueError(f"normalization must be 'viewset' or 'none', got {config.normalization!r}")
    unknown = [s for s in config.splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"splits must be among {SPLITS}, got {unknown}")
    category_dir = config.co3d_root / config.category
    root = config.out / f"co3d_{config.category}_for_gs"
    for split in config.splits:
        if (root / split).exists() and any((root / split).iterdir()) and not config.overwrite:
            raise FileExistsError(f"{root / split} is not empty (pass --overwrite to write into it)")
    set_list_path = category_dir / "set_lists" / f"set_lists_{config.subset}.json"
    set_lists = read_set_lists(set_list_path)
    frames = {
        (f.sequence_name, f.frame_number): f for f in read_frame_annotations(category_dir / "frame_annotations.jgz")
    }
    sequences = read_sequence_annotations(category_dir / "sequence_annotations.jgz")
    log(f"{len(frames)} annotated frames, {len(sequences)} sequences; set list {set_list_path}")

    reports = {}
    for split in config.splits:
        if split not in set_lists:
            raise Co3DDataError(set_list_path, f"no {split!r} list (has {sorted(set_lists)})")
        jobs, skipped = split_jobs(config, split, set_lists[split], frames, sequences, set_list_path)
        (root / split).mkdir(parents=True, exist_ok=True)
        report = SplitReport(skipped=dict(skipped))
        if config.workers > 1 and len(jobs) > 1:
            context = get_context("spawn")
            with ProcessPoolExecutor(config.workers, mp_context=context, initializer=_worker_init) as pool:
                results = list(pool.map(process_sequence, jobs))
        else:
            results = [process_sequence(job) for job in jobs]
        rotations, translations = {}, {}
        for result in results:
            if result.R is not None:
                rotations[result.name] = result.R.astype(np.float32)
                translations[result.name] = result.T.astype(np.float32)
            if result.normalization is not None:
                report.normalization[result.name] = result.normalization.to_json()
            if result.written:
                report.written.append(result.name)
            else:
                report.skipped[result.name] = result.reason or "unknown"
                log(f"  {split}: skipped {result.name}: {result.reason}")
        np.savez(root / split / "camera_Rs.npz", **rotations)
        np.savez(root / split / "camera_Ts.npz", **translations)
        reports[split] = report
        log(f"{split}: wrote {len(report.written)} sequences, skipped {len(report.skipped)} -> {root / split}")
    document = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "splits": {split: asdict(report) for split, report in reports.items()},
    }
    (root / "preprocess_report.json").write_text(json.dumps(document, indent=1) + "\n")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    import tyro

    config = tyro.cli(PreprocessConfig, args=argv, description=__doc__.split("\n\n")[0])
    try:
        root = preprocess(config)
    except (Co3DDataError, FileExistsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"done: {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
