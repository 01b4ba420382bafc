"""ShapeNet-SRN reader: objects, training examples with cameras relative to the input view, the evaluation protocol.

Layout (SRN, Sitzmann et al. 2019, as distributed by pixelNeRF and read by Splatter Image)::

    srn_<category>/<category>_<split>/<object_id>/intrinsics.txt    first line "f cx cy 0", last line "H W"
                                                 /rgb/000000.png     H x W RGB(A), white background
                                                 /pose/000000.txt    4x4 camera-to-world, OpenCV axes, 16 numbers

with split in train/val/test; chairs train may sit one level deeper, in `chairs_train/chairs_2.0_train`.
Views are ordered by file name; "view k" is the k-th file in that order (the file number for SRN).

Evaluation protocol (pixelNeRF, Splatter Image `eval.py`): view 64 of each test object is the input, every other
view (250 on the real test split) is a target. `python apps/srn/data.py --check-data PATH` validates a dataset.
"""

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Float, Int
from torch import Tensor

from splat_apps.datacheck import DataError, DatasetCheck, SplitCheck, check_command
from splat_apps.images import open_image
from splat_apps.images import read_image as read_rgb
from splat_apps.views import ViewExample, drawn_views, evaluation_view_indices, make_example, resize_images
from splat_render import fov_to_focal, intrinsics, rigid_inverse

SRN_FOV_DEGREES = 51.98948897809546
"""Field of view of every SRN image (f = 131.25 px at 128 px), as hard-coded by Splatter Image."""
SRN_RESOLUTION = 128
SRN_FOCAL = fov_to_focal(SRN_FOV_DEGREES, SRN_RESOLUTION)
"""131.25 px (to float precision): the focal length of `intrinsics.txt` at 128 px."""
SRN_EVAL_INPUT_VIEW = 64
"""Input view of the pixelNeRF / Splatter Image test protocol; the other 250 of the 251 spiral views are targets."""
SRN_TEST_VIEWS = 251
SPLITS = ("train", "val", "test")
DEPTH_RANGES = {
    "cars": (0.8, 1.8),
    "chairs": (1.25, 2.75),
    "synthetic_cars": (0.8, 1.8),
    "synthetic_chairs": (0.8, 1.8),
}
"""(near, far) camera depth of every visible surface, per category (Splatter Image's znear/zfar)."""

RENDER_NEAR, RENDER_FAR = 0.2, 100.0
"""Culling planes of the example cameras (3DGS culls at z <= 0.2); the head's znear/zfar only bound the depths."""
ROTATION_TOLERANCE = 1e-3  # max |R^T R - I| and |det R - 1| accepted for a camera-to-world rotation


class SRNDataError(DataError):
    """A malformed file or folder of an SRN-format dataset; `path` names it and `problem` says what is wrong."""


# --------------------------------------------------------------------------------------------------------------------
# Single files


@dataclass(frozen=True)
class SRNIntrinsics:
    """The contents of `intrinsics.txt`: focal length and principal point in pixels of an image of `height x width`."""

    focal: float
    cx: float
    cy: float
    height: int
    width: int

    def matrix(self, height: int | None = None, width: int | None = None) -> Float[Tensor, "3 3"]:
        """K for the image resized to `height x width` (default: native); pixel centres at +0.5, so K scales by the
        size ratio."""
        sy = (height or self.height) / self.height
        sx = (width or self.width) / self.width
        return intrinsics(self.focal * sx, self.focal * sy, self.cx * sx, self.cy * sy, dtype=torch.float32)


def _numbers(path: Path, text: str, what: str) -> list[float]:
    try:
        return [float(token) for token in text.split()]
    except ValueError as error:
        raise SRNDataError(path, f"malformed {what}: {error}") from None


def read_intrinsics(path: str | Path) -> SRNIntrinsics:
    """Parse `intrinsics.txt` (first line `f cx cy 0`, last line `H W`); SRNDataError if missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise SRNDataError(path, "missing intrinsics file")
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise SRNDataError(path, f"unreadable intrinsics: {error}") from None
    if len(lines) < 2:
        raise SRNDataError(path, f"malformed intrinsics: expected 'f cx cy 0' ... 'H W', got {len(lines)} line(s)")
    first = _numbers(path, lines[0], "intrinsics")
    last = _numbers(path, lines[-1], "intrinsics")
    if len(first) != 4 or len(last) != 2:
        raise SRNDataError(
            path,
            f"malformed intrinsics: first line needs 4 numbers 'f cx cy 0' (got {len(first)}), last line 2 'H W' "
            f"(got {len(last)})",
        )
    focal, cx, cy, _ = first
    height, width = last
    if not all(math.isfinite(v) for v in (focal, cx, cy, height, width)):
        raise SRNDataError(path, "malformed intrinsics: non-finite value")
    if height != int(height) or width != int(width) or height < 1 or width < 1:
        raise SRNDataError(path, f"malformed intrinsics: image size must be positive integers, got {height} {width}")
    if focal <= 0 or not (0 < cx < width) or not (0 < cy < height):
        raise SRNDataError(
            path,
            f"malformed intrinsics: need f > 0 and the principal point inside the image, got f={focal} "
            f"cx={cx} cy={cy} for {int(width)}x{int(height)}",
        )
    return SRNIntrinsics(focal, cx, cy, int(height), int(width))


def read_pose(path: str | Path) -> Float[Tensor, "4 4"]:
    """Parse a camera-to-world pose (16 numbers, any line layout) into float64; SRNDataError unless it is a finite
    rigid transform (orthonormal rotation with det +1, last row 0 0 0 1)."""
    path = Path(path)
    if not path.is_file():
        raise SRNDataError(path, "missing pose file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise SRNDataError(path, f"unreadable pose: {error}") from None
    values = _numbers(path, text, "pose")
    if len(values) != 16:
        raise SRNDataError(path, f"pose must be a 4x4 matrix (16 numbers), got {len(values)} numbers")
    pose = torch.tensor(values, dtype=torch.float64).reshape(4, 4)
    if not torch.isfinite(pose).all():
        raise SRNDataError(path, "pose has non-finite entries")
    if (pose[3] - torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)).abs().max() > 1e-6:
        raise SRNDataError(path, f"pose last row must be 0 0 0 1, got {pose[3].tolist()}")
    rotation = pose[:3, :3]
    orthogonality = (rotation.T @ rotation - torch.eye(3, dtype=torch.float64)).abs().max().item()
    determinant = torch.linalg.det(rotation).item()
    if orthogonality > ROTATION_TOLERANCE or abs(determinant - 1) > ROTATION_TOLERANCE:
        raise SRNDataError(
            path, f"pose rotation is not rigid (max |R^T R - I| = {orthogonality:.3g}, det R = {determinant:.6g})"
        )
    return pose


def read_image(path: str | Path, size: tuple[int, int] | None = None) -> Float[Tensor, "3 height width"]:
    """Decode a PNG into RGB in [0, 1]; an alpha channel is composited over white (SRN's background).

    `size` = (height, width) the image must have; SRNDataError if it differs or the file cannot be decoded.
    """
    return read_rgb(path, size=size, background=1.0, error=SRNDataError, what="PNG")


# --------------------------------------------------------------------------------------------------------------------
# Folders


def infer_category(root: str | Path) -> str:
    """Category of a dataset root `srn_<category>/` (or of a folder holding `<category>_<split>/` folders)."""
    root = Path(root)
    if root.name.startswith("srn_") and len(root.name) > 4:
        return root.name[4:]
    found = (
        {
            child.name.rsplit("_", 1)[0]
            for child in root.iterdir()
            if child.is_dir() and child.name.rsplit("_", 1)[-1] in SPLITS
        }
        if root.is_dir()
        else set()
    )
    if len(found) != 1:
        raise SRNDataError(root, f"cannot tell the category: expected srn_<category>/<category>_<split>, found {found}")
    return found.pop()


def find_split_dir(root: str | Path, split: str, category: str | None = None) -> Path:
    """`root/<category>_<split>`, or `root/<category>_<split>/<category>_2.0_<split>` (SRN chairs train)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    category = category or infer_category(root)
    outer = root / f"{category}_{split}"
    nested = outer / f"{category}_2.0_{split}"
    if nested.is_dir():
        return nested
    if not outer.is_dir():
        raise SRNDataError(outer, f"missing split folder for split {split!r}")
    return outer


def list_object_dirs(split_dir: str | Path) -> list[Path]:
    """Object folders of a split, sorted by name: every subfolder (a folder without intrinsics.txt is a problem
    reported when the object is read, not silently skipped)."""
    split_dir = Path(split_dir)
    return sorted(child for child in split_dir.iterdir() if child.is_dir() and not child.name.startswith("."))


@dataclass(frozen=True)
class ObjectFiles:
    """The files of one object, views paired by file stem and sorted by name."""

    object_id: str
    directory: Path
    intrinsics: Path
    rgb: tuple[Path, ...]
    pose: tuple[Path, ...]

    @property
    def num_views(self) -> int:
        return len(self.rgb)


def scan_object(object_dir: str | Path) -> tuple[ObjectFiles, list[SRNDataError]]:
    """List an object's views, pairing `rgb/<stem>.png` with `pose/<stem>.txt`; returns the paired views and every
    problem found (missing folders or intrinsics, unpaired files, no views). Files are not opened."""
    directory = Path(object_dir)
    problems = []
    intrinsics_path = directory / "intrinsics.txt"
    if not intrinsics_path.is_file():
        problems.append(SRNDataError(intrinsics_path, "missing intrinsics file"))
    stems = {}
    for kind, suffix in (("rgb", ".png"), ("pose", ".txt")):
        folder = directory / kind
        if not folder.is_dir():
            problems.append(SRNDataError(folder, f"missing {kind} folder"))
            stems[kind] = {}
        else:
            stems[kind] = {p.stem: p for p in folder.iterdir() if p.suffix.lower() == suffix and p.is_file()}
    rgb, pose = stems["rgb"], stems["pose"]
    counts = f"{len(rgb)} rgb images vs {len(pose)} poses"
    for stem in sorted(rgb.keys() - pose.keys()):
        path = directory / "pose" / f"{stem}.txt"
        problems.append(SRNDataError(path, f"missing pose for rgb/{stem}.png ({counts})"))
    for stem in sorted(pose.keys() - rgb.keys()):
        path = directory / "rgb" / f"{stem}.png"
        problems.append(SRNDataError(path, f"missing image for pose/{stem}.txt ({counts})"))
    paired = sorted(rgb.keys() & pose.keys())
    if not paired and (directory / "rgb").is_dir() and (directory / "pose").is_dir():
        problems.append(SRNDataError(directory, "object has no views (rgb/*.png with matching pose/*.txt)"))
    files = ObjectFiles(
        object_id=directory.name,
        directory=directory,
        intrinsics=intrinsics_path,
        rgb=tuple(rgb[s] for s in paired),
        pose=tuple(pose[s] for s in paired),
    )
    return files, problems


def list_object_files(object_dir: str | Path) -> ObjectFiles:
    """`scan_object`, raising the first problem as SRNDataError."""
    files, problems = scan_object(object_dir)
    if problems:
        raise problems[0]
    return files


# --------------------------------------------------------------------------------------------------------------------
# Objects and examples


@dataclass(frozen=True)
class SRNObject:
    """Some (or all) views of one object, in world coordinates (camera-to-world poses as stored)."""

    object_id: str
    images: Float[Tensor, "views 3 height width"]
    cam_to_world: Float[Tensor, "views 4 4"]
    K: Float[Tensor, "views 3 3"]
    view_indices: Int[Tensor, " views"]
    """Position of each view in the object's sorted view list."""

    @property
    def num_views(self) -> int:
        return self.images.shape[0]


def default_input_view(num_views: int) -> int:
    """SRN's input view 64 for 251 test views; for a spiral of `num_views` views sampled like SRN's (view k at spiral
    parameter k / (num_views - 1)), the view at the same point of the spiral, round(64 (num_views - 1) / 250)."""
    if num_views < 2:
        raise ValueError(f"num_views must be >= 2 (an input and a target), got {num_views}")
    return round(SRN_EVAL_INPUT_VIEW * (num_views - 1) / (SRN_TEST_VIEWS - 1))


class SRNDataset:
    """Objects of one split of an SRN-format dataset, sorted by id; each object is read from disk when asked for.

    `root` is the category folder (`.../srn_cars`); `resolution` resizes images (antialiased) to a square size and
    scales K to match (CPU presets use 32 or 64); `depth_range` (the camera depth of every visible surface, for the
    teacher's head) defaults to the category's (`DEPTH_RANGES`). Example cameras carry the rendering planes
    `RENDER_NEAR`, `RENDER_FAR`.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        category: str | None = None,
        resolution: int | None = None,
        depth_range: tuple[float, float] | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise SRNDataError(self.root, "dataset root is not a folder")
        self.category = category or infer_category(self.root)
        self.split = split
        self.directory = find_split_dir(self.root, split, self.category)
        if resolution is not None and (not isinstance(resolution, int) or resolution < 1):
            raise ValueError(f"resolution must be a positive int or None, got {resolution!r}")
        self.resolution = resolution
        if depth_range is None:
            if self.category not in DEPTH_RANGES:
                raise ValueError(f"depth_range is needed for category {self.category!r} (known: {list(DEPTH_RANGES)})")
            depth_range = DEPTH_RANGES[self.category]
        self.near, self.far = depth_range
        self.object_dirs = tuple(list_object_dirs(self.directory))
        self.object_ids = tuple(d.name for d in self.object_dirs)

    def __len__(self) -> int:
        return len(self.object_dirs)

    def __repr__(self) -> str:
        return f"SRNDataset({str(self.directory)!r}, objects={len(self)}, resolution={self.resolution})"

    def files(self, index: int) -> ObjectFiles:
        return list_object_files(self.object_dirs[index])

    def num_views(self, index: int) -> int:
        return self.files(index).num_views

    def load(self, index: int, views: Sequence[int] | None = None) -> SRNObject:
        """Read views (positions in the sorted view list; default all) of object `index`."""
        files = self.files(index)
        positions = list(range(files.num_views)) if views is None else [int(v) for v in views]
        for v in positions:
            if not 0 <= v < files.num_views:
                raise ValueError(f"view {v} out of range for object {files.object_id} with {files.num_views} views")
        native = read_intrinsics(files.intrinsics)
        size = (native.height, native.width)
        out_size = size if self.resolution is None else (self.resolution, self.resolution)
        images = torch.stack([read_image(files.rgb[v], size) for v in positions])
        poses = torch.stack([read_pose(files.pose[v]) for v in positions]).float()
        K = native.matrix(*out_size).expand(len(positions), 3, 3).clone()
        return SRNObject(
            object_id=files.object_id,
            images=resize_images(images, *out_size),
            cam_to_world=poses,
            K=K,
            view_indices=torch.tensor(positions, dtype=torch.long),
        )

    def __getitem__(self, index: int) -> SRNObject:
        return self.load(index)

    def example(self, views: SRNObject, input_position: int, target_positions: Sequence[int]) -> ViewExample:
        """An example of loaded views (positions index `views`), cameras relative to the input view."""
        return make_example(
            views.object_id,
            views.images,
            rigid_inverse(views.cam_to_world.double()),
            views.K,
            input_position,
            target_positions,
            near=RENDER_NEAR,
            far=RENDER_FAR,
            view_indices=views.view_indices,
            cam_to_world=views.cam_to_world,
        )

    def training_example(
        self, index: int, num_targets: int, generator: torch.Generator, include_input_in_targets: bool = True
    ) -> ViewExample:
        """Random input and targets (`sample_view_indices`); only the chosen views are read."""
        views, input_position, target_positions = drawn_views(
            self.num_views(index), num_targets, generator, include_input_in_targets
        )
        return self.example(self.load(index, views), input_position, target_positions)

    def evaluation_example(
        self, index: int, input_view: int = SRN_EVAL_INPUT_VIEW, *, score_input: bool = False
    ) -> ViewExample:
        """The test protocol: `input_view` in, all other views out (use `default_input_view` for short spirals);
        `score_input` appends the input view as a last target (scored separately)."""
        input_view, target_views = evaluation_view_indices(self.num_views(index), input_view)
        return self.example(self.load(index), input_view, [*target_views, input_view] if score_input else target_views)


# --------------------------------------------------------------------------------------------------------------------
# Whole-dataset check


def check_object(object_dir: str | Path, decode_images: bool = True) -> tuple[int, list[SRNDataError]]:
    """Validate every file of one object; returns (number of paired views, problems)."""
    files, problems = scan_object(object_dir)
    size = None
    if files.intrinsics.is_file():
        try:
            native = read_intrinsics(files.intrinsics)
            size = (native.height, native.width)
        except SRNDataError as error:
            problems.append(error)
    for pose in files.pose:
        try:
            read_pose(pose)
        except SRNDataError as error:
            problems.append(error)
    for rgb in files.rgb:
        try:
            if decode_images:
                read_image(rgb, size)
            else:
                open_image(rgb, size=size, error=SRNDataError, what="PNG").close()
        except SRNDataError as error:
            problems.append(error)
        except (OSError, ValueError, SyntaxError) as error:
            problems.append(SRNDataError(rgb, f"unreadable PNG: {error}"))
    return files.num_views, problems


def check_dataset(
    root: str | Path,
    splits: Sequence[str] = SPLITS,
    *,
    category: str | None = None,
    decode_images: bool = True,
) -> DatasetCheck:
    """Validate every object of the given splits of an SRN-format dataset; every problem is listed with its path.
    A split folder that does not exist is a problem. `decode_images=False` reads only PNG headers (faster)."""
    root = Path(root)
    try:
        category = category or infer_category(root)
    except SRNDataError as error:
        return DatasetCheck(
            root, f"SRN dataset {root} (category '?')", "objects", (SplitCheck("-", problems=(error,)),)
        )
    checks = []
    for split in splits:
        try:
            directory = find_split_dir(root, split, category)
        except SRNDataError as error:
            checks.append(SplitCheck(split, problems=(error,)))
            continue
        objects = list_object_dirs(directory)
        views, problems = 0, []
        for object_dir in objects:
            count, found = check_object(object_dir, decode_images)
            views += count
            problems.extend(found)
        if not objects:
            problems.append(SRNDataError(directory, "split has no objects"))
        checks.append(SplitCheck(split, directory, len(objects), views, problems=tuple(problems)))
    return DatasetCheck(root, f"SRN dataset {root} (category {category!r})", "objects", tuple(checks))


def main(argv: Sequence[str] | None = None) -> int:
    return check_command(
        argv,
        prog="apps/srn/data.py",
        description=__doc__.split("\n\n")[0],
        root_help="dataset root, the category folder (e.g. .../srn_cars)",
        splits=SPLITS,
        check=lambda root, splits, category, headers_only: check_dataset(
            root, splits, category=category, decode_images=not headers_only
        ),
        options=[
            ("--category", {"default": None, "help": "category name (default: from the folder names)"}),
            ("--headers-only", {"action": "store_true", "help": "check PNG sizes from headers without decoding"}),
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
