"""Typed containers shared by every lesson-splats package: `Gaussians`, `Cameras`, `RenderOutput`.

Dimension vocabulary (jaxtyping names, spelled out everywhere in the project):

| name        | meaning                                              |
|-------------|------------------------------------------------------|
| `batch`     | scenes (objects) in a batch                          |
| `views`     | cameras per scene                                    |
| `gaussians` | Gaussians per scene                                  |
| `sh_coeffs` | spherical-harmonics coefficients, (degree + 1) ** 2  |
| `channels`  | feature channels of a map or image                   |
| `height`    | image / map rows                                     |
| `width`     | image / map columns                                  |
| `steps`     | diffusion steps of a trajectory                      |

The aliases below are unbatched; batch dimensions are prepended where they are used
(`Float[Means, " batch"]` is `Float[Tensor, "batch gaussians 3"]`), following jaxtyping's composition rule.
Camera frames follow OpenCV: x right, y down, z forward; `K` is in pixels with pixel centres at +0.5.
"""

import math
from dataclasses import dataclass, fields, replace
from typing import Literal, no_type_check

import torch
from jaxtyping import Float
from torch import Tensor

Means = Float[Tensor, "gaussians 3"]
Quats = Float[Tensor, "gaussians 4"]
Scales = Float[Tensor, "gaussians 3"]
Opacities = Float[Tensor, " gaussians"]
SHCoeffs = Float[Tensor, "gaussians sh_coeffs 3"]
Pose = Float[Tensor, "4 4"]
Intrinsics = Float[Tensor, "3 3"]
Image = Float[Tensor, "channels height width"]
RGB = Float[Tensor, "3 height width"]
Mask = Float[Tensor, "1 height width"]
GaussianMap = Float[Tensor, "channels height width"]


def _check_tensor(name: str, value: object, ndim: int, last: tuple[int, ...]) -> Tensor:
    if not isinstance(value, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    if value.ndim != ndim or tuple(value.shape[value.ndim - len(last) :]) != last:
        want = " ".join(["B", "N"][: ndim - len(last)] + [str(d) for d in last])
        raise ValueError(f"{name} must have shape [{want}], got {list(value.shape)}")
    return value


def sh_degree_from_coeffs(num_coeffs: int) -> int:
    """SH degree d for K = (d + 1)^2 coefficients; ValueError if K is not a perfect square."""
    degree = math.isqrt(num_coeffs) - 1
    if num_coeffs < 1 or (degree + 1) ** 2 != num_coeffs:
        raise ValueError(f"sh must hold (degree + 1)^2 coefficients per Gaussian (1, 4, 9, 16), got {num_coeffs}")
    return degree


# Validated by __post_init__ with ValueErrors that name the argument; the test-time jaxtyping hook would check the
# fields *before* __post_init__ and raise its own TypeCheckError instead, so the class opts out of it.
@no_type_check
@dataclass(frozen=True)
class Gaussians:
    """A batch of 3D Gaussian scenes, all with the same number of Gaussians.

    `quats` are wxyz and need not be normalized; `scales` are linear standard deviations (> 0);
    `opacities` in [0, 1]; `sh` are spherical-harmonics colour coefficients (the DC term of a colour c
    is (c - 0.5) / 0.28209479177387814, the convention of 3DGS and gsplat).
    """

    means: Float[Means, " batch"]
    quats: Float[Quats, " batch"]
    scales: Float[Scales, " batch"]
    opacities: Float[Opacities, " batch"]
    sh: Float[SHCoeffs, " batch"]

    def __post_init__(self) -> None:
        means = _check_tensor("means", self.means, 3, (3,))
        batch, count = means.shape[:2]
        for name, ndim, last in [("quats", 3, (4,)), ("scales", 3, (3,)), ("opacities", 2, ()), ("sh", 4, (3,))]:
            value = _check_tensor(name, getattr(self, name), ndim, last)
            if tuple(value.shape[:2]) != (batch, count):
                raise ValueError(f"{name} has batch/gaussians {list(value.shape[:2])} but means has {[batch, count]}")
            if value.dtype != means.dtype or value.device != means.device:
                raise ValueError(
                    f"{name} is {value.dtype} on {value.device} but means is {means.dtype} on {means.device}"
                )
        sh_degree_from_coeffs(self.sh.shape[2])

    @property
    def batch_size(self) -> int:
        return self.means.shape[0]

    @property
    def num_gaussians(self) -> int:
        return self.means.shape[1]

    @property
    def sh_degree(self) -> int:
        return sh_degree_from_coeffs(self.sh.shape[2])

    @property
    def device(self) -> torch.device:
        return self.means.device

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    def __len__(self) -> int:
        return self.batch_size

    def tensors(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def map(self, fn) -> "Gaussians":
        """Apply `fn` to every tensor field."""
        return replace(self, **{k: fn(v) for k, v in self.tensors().items()})

    def to(self, *args, **kwargs) -> "Gaussians":
        return self.map(lambda t: t.to(*args, **kwargs))

    def detach(self) -> "Gaussians":
        return self.map(Tensor.detach)

    def __getitem__(self, index: int | slice | Tensor) -> "Gaussians":
        """Index over the batch; an integer keeps the batch dimension (size 1)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return self.map(lambda t: t[index])

    @staticmethod
    def cat(items: "list[Gaussians]", along: Literal["batch", "gaussians"] = "gaussians") -> "Gaussians":
        """Concatenate scenes (`along="batch"`) or merge Gaussians of the same scenes (`along="gaussians"`)."""
        if not items:
            raise ValueError("Gaussians.cat needs at least one Gaussians")
        if along not in ("batch", "gaussians"):
            raise ValueError(f"along must be 'batch' or 'gaussians', got {along!r}")
        dim = 0 if along == "batch" else 1
        names = [f.name for f in fields(Gaussians)]
        return Gaussians(**{n: torch.cat([getattr(g, n) for g in items], dim=dim) for n in names})


@no_type_check  # validated by __post_init__, see Gaussians
@dataclass(frozen=True)
class Cameras:
    """Pinhole cameras, `views` per scene, OpenCV axes (x right, y down, z forward).

    `world_to_cam` maps world points to camera coordinates; `K` maps camera coordinates to pixels,
    with the centre of pixel (row i, column j) at (j + 0.5, i + 0.5). `near`/`far` clip camera-space depth.
    """

    world_to_cam: Float[Pose, "batch views"]
    K: Float[Intrinsics, "batch views"]
    width: int
    height: int
    near: float = 0.01
    far: float = 1e10

    def __post_init__(self) -> None:
        w2c = _check_tensor("world_to_cam", self.world_to_cam, 4, (4, 4))
        K = _check_tensor("K", self.K, 4, (3, 3))
        if tuple(K.shape[:2]) != tuple(w2c.shape[:2]):
            raise ValueError(f"K has batch/views {list(K.shape[:2])} but world_to_cam has {list(w2c.shape[:2])}")
        if K.dtype != w2c.dtype or K.device != w2c.device:
            raise ValueError(f"K is {K.dtype} on {K.device} but world_to_cam is {w2c.dtype} on {w2c.device}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not (0 <= self.near < self.far):
            raise ValueError(f"near/far must satisfy 0 <= near < far, got near={self.near}, far={self.far}")

    @property
    def batch_size(self) -> int:
        return self.world_to_cam.shape[0]

    @property
    def num_views(self) -> int:
        return self.world_to_cam.shape[1]

    @property
    def device(self) -> torch.device:
        return self.world_to_cam.device

    @property
    def dtype(self) -> torch.dtype:
        return self.world_to_cam.dtype

    @property
    def cam_to_world(self) -> Float[Pose, "batch views"]:
        return rigid_inverse(self.world_to_cam)

    @property
    def centers(self) -> Float[Tensor, "batch views 3"]:
        """Camera centres in world coordinates."""
        return self.cam_to_world[..., :3, 3]

    def map(self, fn) -> "Cameras":
        return replace(self, world_to_cam=fn(self.world_to_cam), K=fn(self.K))

    def to(self, *args, **kwargs) -> "Cameras":
        return self.map(lambda t: t.to(*args, **kwargs))

    def detach(self) -> "Cameras":
        return self.map(Tensor.detach)

    def __getitem__(self, index: int | slice | Tensor) -> "Cameras":
        """Index over the batch; an integer keeps the batch dimension (size 1)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return self.map(lambda t: t[index])

    def select_views(self, index: int | slice | Tensor) -> "Cameras":
        """Index over views; an integer keeps the views dimension (size 1)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return self.map(lambda t: t[:, index])

    @staticmethod
    def cat(items: "list[Cameras]", along: Literal["batch", "views"] = "views") -> "Cameras":
        """Concatenate scenes (`along="batch"`) or views of the same scenes (`along="views"`)."""
        if not items:
            raise ValueError("Cameras.cat needs at least one Cameras")
        first = items[0]
        for other in items[1:]:
            if (other.width, other.height, other.near, other.far) != (first.width, first.height, first.near, first.far):
                raise ValueError("Cameras.cat needs equal width, height, near and far")
        dim = 0 if along == "batch" else 1
        return replace(
            first,
            world_to_cam=torch.cat([c.world_to_cam for c in items], dim=dim),
            K=torch.cat([c.K for c in items], dim=dim),
        )

    @classmethod
    def from_cam_to_world(
        cls,
        cam_to_world: Float[Pose, "batch views"],
        K: Float[Intrinsics, "batch views"],
        width: int,
        height: int,
        near: float = 0.01,
        far: float = 1e10,
    ) -> "Cameras":
        """Build from camera-to-world poses (OpenCV axes), as stored by SRN, Co3D and most datasets."""
        _check_tensor("cam_to_world", cam_to_world, 4, (4, 4))
        return cls(rigid_inverse(cam_to_world), K, width, height, near, far)

    @classmethod
    def from_fov(
        cls,
        cam_to_world: Float[Pose, "batch views"],
        fov_degrees: float,
        width: int,
        height: int,
        near: float = 0.01,
        far: float = 1e10,
    ) -> "Cameras":
        """Build from camera-to-world poses and a horizontal field of view (square pixels, centred principal point)."""
        _check_tensor("cam_to_world", cam_to_world, 4, (4, 4))
        focal = fov_to_focal(fov_degrees, width)
        K = intrinsics(focal, focal, width / 2, height / 2, dtype=cam_to_world.dtype, device=cam_to_world.device)
        K = K.expand(*cam_to_world.shape[:2], 3, 3).clone()
        return cls(rigid_inverse(cam_to_world), K, width, height, near, far)


@dataclass(frozen=True)
class RenderOutput:
    """Renderer output. `depth` is the expected camera-space z (sum w z / sum w), 0 where nothing is drawn."""

    rgb: Float[Tensor, "batch views 3 height width"]
    alpha: Float[Tensor, "batch views 1 height width"]
    depth: Float[Tensor, "batch views 1 height width"]


def fov_to_focal(fov_degrees: float, pixels: int) -> float:
    """Focal length in pixels for a field of view spanning `pixels` (SRN: 51.98948897809546° at 128 → 131.25)."""
    if not 0 < fov_degrees < 180:
        raise ValueError(f"fov_degrees must be in (0, 180), got {fov_degrees}")
    return pixels / (2 * math.tan(math.radians(fov_degrees) / 2))


def focal_to_fov(focal: float, pixels: int) -> float:
    """Field of view in degrees spanned by `pixels` at focal length `focal` (pixels)."""
    return math.degrees(2 * math.atan(pixels / (2 * focal)))


def intrinsics(
    fx: float, fy: float, cx: float, cy: float, *, dtype: torch.dtype = torch.float32, device=None
) -> Float[Intrinsics, ""]:
    """The 3x3 pinhole matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]."""
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=dtype, device=device)


def rigid_inverse(pose: Float[Tensor, "*batch 4 4"]) -> Float[Tensor, "*batch 4 4"]:
    """Inverse of a rigid transform [R t; 0 1] as [R^T, -R^T t; 0 1] (exact for rotations, cheap, differentiable)."""
    rotation_t = pose[..., :3, :3].transpose(-1, -2)
    translation = -(rotation_t @ pose[..., :3, 3:4])
    top = torch.cat([rotation_t, translation], dim=-1)
    bottom = torch.zeros_like(pose[..., 3:4, :])
    bottom[..., 3] = 1
    return torch.cat([top, bottom], dim=-2)


def look_at(
    eye: Float[Tensor, "*batch 3"],
    target: Float[Tensor, "*batch 3"],
    up: Float[Tensor, "*batch 3"],
) -> Float[Tensor, "*batch 4 4"]:
    """Camera-to-world pose (OpenCV axes) of a camera at `eye` looking at `target`; `up` is world up.

    The camera's y axis points down, so image rows grow opposite to `up`.
    """
    forward = torch.nn.functional.normalize(target - eye, dim=-1)
    right = torch.nn.functional.normalize(torch.linalg.cross(forward, up), dim=-1)
    down = torch.linalg.cross(forward, right)
    rotation = torch.stack([right, down, forward], dim=-1)
    pose = torch.cat([rotation, eye[..., :, None]], dim=-1)
    bottom = torch.zeros_like(pose[..., :1, :])
    bottom[..., 3] = 1
    return torch.cat([pose, bottom], dim=-2)
