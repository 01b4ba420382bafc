"""Pixel-aligned Gaussians: the raw *Gaussian map* a network predicts, and its conversion to `Gaussians`.

A Gaussian map is a pre-activation image `[batch channels height width]` with, per pixel and per Gaussian layer,
24 channels in the order of Splatter Image (Szymanowicz et al. 2024, `scene/gaussian_predictor.py`):

| group      | channels | activation                                                                  |
|------------|----------|-----------------------------------------------------------------------------|
| `depth`    | 1        | z = sigmoid(x) (zfar - znear) + znear (+ the origin distance for Co3D)      |
| `offset`   | 3        | mean = ray * z + offset, in the input camera frame (OpenCV axes)            |
| `opacity`  | 1        | sigmoid                                                                     |
| `scale`    | 3        | exp                                                                         |
| `rotation` | 4        | normalised wxyz quaternion                                                  |
| `sh_dc`    | 3        | none (degree-0 SH coefficient per RGB)                                      |
| `sh_rest`  | 9        | none (degree-1 SH, channel 3 * k + c is coefficient k + 1 of colour c)      |

`ray` is the pixel-centre ray `K^-1 (j + 0.5, i + 0.5, 1)` of the input camera (z = 1, not unit length).
The conversion `gaussians_from_map(gaussian_map, cameras, head)` is a pure function with no network, so a diffusion
student predicting a map of the same layout is turned into Gaussians by the teacher's own head.

With a non-identity input pose the Gaussians are carried into its world frame exactly as upstream does:
mean = R p + t, quaternion = q(R) * q, and the degree-1 SH coefficients are rotated by `V^T R V`
(`V` = `SH_TO_VECTOR`, which maps coefficients to the direction vector they multiply).
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import torch
from jaxtyping import Float
from torch import Tensor, nn

from splat_render import Cameras, Gaussians, fov_to_focal, intrinsics

PIXEL_GROUPS: tuple[tuple[str, int], ...] = (
    ("depth", 1),
    ("offset", 3),
    ("opacity", 1),
    ("scale", 3),
    ("rotation", 4),
    ("sh_dc", 3),
    ("sh_rest", 9),
)
# Degree-1 SH coefficients c -> the vector v with colour(d) = C1 d . v  (splat_render.sh: Y = C1 (-y, z, -x)).
# This is Splatter Image's `v_to_sh_transform` buffer.
SH_TO_VECTOR = ((0.0, 0.0, -1.0), (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0))


@dataclass(frozen=True)
class GaussianMapSpec:
    """Layout of a Gaussian map: `gaussians_per_pixel` layers of `groups` channels over a (padded) pixel grid.

    `height`/`width` are the map's size; the input image is `height - 2 padding` by `width - 2 padding` and map
    pixel (i, j) sits over image pixel (i - padding, j - padding). Gaussians are ordered layer, row, column.
    """

    height: int
    width: int
    gaussians_per_pixel: int = 1
    padding: int = 0
    groups: tuple[tuple[str, int], ...] = PIXEL_GROUPS

    def __post_init__(self) -> None:
        for name in ("height", "width", "gaussians_per_pixel"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"GaussianMapSpec.{name} must be a positive int, got {value!r}")
        if not isinstance(self.padding, int) or self.padding < 0 or 2 * self.padding >= min(self.height, self.width):
            raise ValueError(f"GaussianMapSpec.padding must be a small non-negative int, got {self.padding!r}")

    @property
    def channels_per_gaussian(self) -> int:
        return sum(size for _, size in self.groups)

    @property
    def channels(self) -> int:
        return self.gaussians_per_pixel * self.channels_per_gaussian

    @property
    def num_gaussians(self) -> int:
        return self.gaussians_per_pixel * self.height * self.width

    @property
    def image_height(self) -> int:
        return self.height - 2 * self.padding

    @property
    def image_width(self) -> int:
        return self.width - 2 * self.padding

    @property
    def group_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.groups)

    def group_slice(self, name: str, layer: int = 0) -> slice:
        """Channels of group `name` of Gaussian layer `layer` in the map."""
        if not 0 <= layer < self.gaussians_per_pixel:
            raise ValueError(f"layer must be in [0, {self.gaussians_per_pixel}), got {layer}")
        start = layer * self.channels_per_gaussian
        for group, size in self.groups:
            if group == name:
                return slice(start, start + size)
            start += size
        raise ValueError(f"unknown channel group {name!r}; groups are {self.group_names}")

    def check(self, gaussian_map: Tensor) -> None:
        """ValueError unless `gaussian_map` is a floating [batch channels height width] map of this layout."""
        want = [self.channels, self.height, self.width]
        if not isinstance(gaussian_map, Tensor) or gaussian_map.ndim != 4 or list(gaussian_map.shape[1:]) != want:
            got = list(gaussian_map.shape) if isinstance(gaussian_map, Tensor) else type(gaussian_map).__name__
            raise ValueError(f"gaussian_map must be [batch {' '.join(map(str, want))}], got {got}")
        if not gaussian_map.is_floating_point():
            raise ValueError(f"gaussian_map must be floating point, got {gaussian_map.dtype}")

    def split(self, gaussian_map: Float[Tensor, "batch channels height width"]) -> tuple[dict[str, Tensor], ...]:
        """Per layer, the map's channel groups by name (views, not copies)."""
        self.check(gaussian_map)
        return tuple(
            {name: gaussian_map[:, self.group_slice(name, layer)] for name in self.group_names}
            for layer in range(self.gaussians_per_pixel)
        )


@dataclass(frozen=True)
class ChannelInit:
    """Initialisation of one channel group's rows of the output 1x1 conv: xavier-uniform(gain) weights, bias."""

    gain: float
    bias: float


@dataclass(frozen=True)
class PixelHeadConfig:
    """Dataset constants of the Splatter Image head (`configs/dataset/*.yaml` at upstream 78a6ad0).

    Only `znear`, `zfar`, `origin_distance` and `isotropic` enter the map -> Gaussians conversion; `fov_degrees`
    and `resolution` give the dataset's fixed input camera (None: per-image focal lengths, as for Co3D);
    `inits` set the output conv's initial rows (they never enter the forward pass); `background` is the colour
    the dataset is rendered on.
    """

    name: str
    znear: float
    zfar: float
    fov_degrees: float | None = None
    resolution: int = 128
    origin_distance: bool = False  # Co3D: add the per-image distance of the world origin to every depth
    isotropic: bool = False  # one scale channel copied to all three axes
    background: float = 1.0
    inits: tuple[tuple[str, ChannelInit], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.zfar > self.znear:
            raise ValueError(f"PixelHeadConfig {self.name!r}: zfar must exceed znear, got {self.znear}, {self.zfar}")
        names = [name for name, _ in self.inits]
        if sorted(names) != sorted(n for n, _ in PIXEL_GROUPS):
            raise ValueError(f"PixelHeadConfig {self.name!r}: inits must name each group once, got {names}")

    def init_for(self, group: str) -> ChannelInit:
        return dict(self.inits)[group]

    @property
    def map_spec(self) -> GaussianMapSpec:
        return GaussianMapSpec(height=self.resolution, width=self.resolution)

    def default_intrinsics(self, batch: int = 1) -> Float[Tensor, "batch 3 3"]:
        """K of the dataset's fixed camera (centred principal point); ValueError for per-image focal datasets."""
        if self.fov_degrees is None:
            raise ValueError(f"head {self.name!r} has no fixed field of view: pass the input cameras explicitly")
        focal = fov_to_focal(self.fov_degrees, self.resolution)
        half = self.resolution / 2
        return intrinsics(focal, focal, half, half).expand(batch, 3, 3).clone()

    def default_cameras(self, batch: int = 1) -> Cameras:
        """Identity-pose input cameras with the dataset's fixed intrinsics, one view per image."""
        K = self.default_intrinsics(batch)[:, None]
        pose = torch.eye(4).expand(batch, 1, 4, 4).clone()
        return Cameras(pose, K, self.resolution, self.resolution)


def _inits(offset: float, opacity: tuple[float, float], scale: tuple[float, float]) -> tuple:
    return (
        ("depth", ChannelInit(1.0, 0.0)),
        ("offset", ChannelInit(offset, 0.0)),
        ("opacity", ChannelInit(*opacity)),
        ("scale", ChannelInit(scale[0], math.log(scale[1]))),
        ("rotation", ChannelInit(1.0, 0.0)),
        ("sh_dc", ChannelInit(5.0, 0.0)),
        ("sh_rest", ChannelInit(0.0, 0.0)),
    )


SRN_FOV_DEGREES = 51.98948897809546  # ShapeNet-SRN: focal 131.25 px at 128 px
CARS = PixelHeadConfig(
    "cars", znear=0.8, zfar=1.8, fov_degrees=SRN_FOV_DEGREES, inits=_inits(1e-6, (1e-3, -3.0), (1e-3, 0.02))
)
CHAIRS = PixelHeadConfig(
    "chairs", znear=1.25, zfar=2.75, fov_degrees=SRN_FOV_DEGREES, inits=_inits(1e-6, (1e-3, -2.0), (1e-3, 0.02))
)
HYDRANTS = PixelHeadConfig(
    "hydrants",
    znear=-2.0,
    zfar=2.0,
    origin_distance=True,
    background=0.0,
    inits=_inits(0.1, (1.0, -2.0), (3e-3, 0.02)),
)
HEAD_PRESETS: Mapping[str, PixelHeadConfig] = MappingProxyType({h.name: h for h in (CARS, CHAIRS, HYDRANTS)})


def head_preset(name: str) -> PixelHeadConfig:
    if name not in HEAD_PRESETS:
        raise ValueError(f"unknown head preset {name!r}; choose one of {sorted(HEAD_PRESETS)}")
    return HEAD_PRESETS[name]


def init_output_conv_(
    conv: nn.Conv2d,
    spec: GaussianMapSpec,
    inits: Mapping[str, ChannelInit],
    generator: torch.Generator | None = None,
) -> None:
    """Per channel group of every layer: xavier-uniform rows with that group's gain, constant bias (upstream)."""
    with torch.no_grad():
        for layer in range(spec.gaussians_per_pixel):
            for name in spec.group_names:
                rows = spec.group_slice(name, layer)
                init = inits[name]
                nn.init.xavier_uniform_(conv.weight[rows], gain=init.gain, generator=generator)
                conv.bias[rows] = init.bias


def pixel_rays(
    K: Float[Tensor, "batch 3 3"], height: int, width: int, padding: int = 0
) -> Float[Tensor, "batch 3 height width"]:
    """z = 1 rays through the centres of a (padded) pixel grid: K^-1 (j - padding + 0.5, i - padding + 0.5, 1)."""
    rows = torch.arange(height, dtype=K.dtype, device=K.device) - padding + 0.5
    cols = torch.arange(width, dtype=K.dtype, device=K.device) - padding + 0.5
    fx, fy = K[:, 0, 0, None, None], K[:, 1, 1, None, None]
    cx, cy, skew = K[:, 0, 2, None, None], K[:, 1, 2, None, None], K[:, 0, 1, None, None]
    y = (rows[None, :, None] - cy) / fy
    x = (cols[None, None, :] - cx - skew * y) / fx
    y, x = torch.broadcast_tensors(y, x)
    return torch.stack([x, y, torch.ones_like(x)], dim=1)


def quaternion_multiply(a: Float[Tensor, "*batch 4"], b: Float[Tensor, "*batch 4"]) -> Float[Tensor, "*batch 4"]:
    """Hamilton product a * b of wxyz quaternions (the rotation b followed by a)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def rotation_matrix_to_quaternion(rotation: Float[Tensor, "*batch 3 3"]) -> Float[Tensor, "*batch 4"]:
    """The unit wxyz quaternion (w >= 0) of a rotation matrix (Shepperd's method: the best-conditioned branch)."""
    m = rotation
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    candidates = torch.stack(
        [
            torch.stack(
                [
                    1 + m00 + m11 + m22,
                    m[..., 2, 1] - m[..., 1, 2],
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 1, 0] - m[..., 0, 1],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 2, 1] - m[..., 1, 2],
                    1 + m00 - m11 - m22,
                    m[..., 0, 1] + m[..., 1, 0],
                    m[..., 0, 2] + m[..., 2, 0],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 0, 1] + m[..., 1, 0],
                    1 - m00 + m11 - m22,
                    m[..., 1, 2] + m[..., 2, 1],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 1, 0] - m[..., 0, 1],
                    m[..., 0, 2] + m[..., 2, 0],
                    m[..., 1, 2] + m[..., 2, 1],
                    1 - m00 - m11 + m22,
                ],
                -1,
            ),
        ],
        dim=-2,
    )
    # Each row is 4 q_k q; the one with the largest diagonal entry 4 q_k^2 is best conditioned.
    best = torch.diagonal(candidates, dim1=-2, dim2=-1).argmax(-1)
    chosen = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    quaternion = nn.functional.normalize(chosen, dim=-1)
    return torch.where(quaternion[..., :1] < 0, -quaternion, quaternion)


def rotate_sh_degree1(
    sh_rest: Float[Tensor, "batch gaussians 3 3"], rotation: Float[Tensor, "batch 3 3"]
) -> Float[Tensor, "batch gaussians 3 3"]:
    """Degree-1 SH coefficients [k, rgb] of a frame rotated by `rotation`: c' = V^T R V c (V = SH_TO_VECTOR)."""
    to_vector = torch.tensor(SH_TO_VECTOR, dtype=rotation.dtype, device=rotation.device)
    transform = to_vector.T @ rotation @ to_vector  # [B 3 3]
    return torch.einsum("bts,bnsc->bntc", transform, sh_rest)


def gaussians_to_world(
    means: Float[Tensor, "batch gaussians 3"],
    quats: Float[Tensor, "batch gaussians 4"],
    sh_rest: Float[Tensor, "batch gaussians 3 3"],
    cam_to_world: Float[Tensor, "batch 4 4"],
    cam_to_world_quat: Float[Tensor, "batch 4"] | None = None,
) -> tuple[
    Float[Tensor, "batch gaussians 3"], Float[Tensor, "batch gaussians 4"], Float[Tensor, "batch gaussians 3 3"]
]:
    """Camera-frame means, quaternions and degree-1 SH into the world frame of `cam_to_world` (upstream's math).

    `cam_to_world_quat` is the quaternion of `cam_to_world[:, :3, :3]` (computed when None); upstream passes it in.
    """
    rotation, translation = cam_to_world[:, :3, :3], cam_to_world[:, :3, 3]
    if cam_to_world_quat is None:
        cam_to_world_quat = rotation_matrix_to_quaternion(rotation)
    means = torch.einsum("bij,bnj->bni", rotation, means) + translation[:, None, :]
    quats = quaternion_multiply(cam_to_world_quat[:, None, :].expand_as(quats), quats)
    return means, quats, rotate_sh_degree1(sh_rest, rotation)


def _flatten(x: Float[Tensor, "batch channels height width"]) -> Float[Tensor, "batch gaussians channels"]:
    return x.flatten(2).transpose(1, 2)


def layer_gaussians_in_camera(
    groups: Mapping[str, Tensor],
    rays: Float[Tensor, "batch 3 height width"],
    depth: Float[Tensor, "batch 1 height width"],
    *,
    scale_multiplier: float = 1.0,
    isotropic: bool = False,
) -> dict[str, Tensor]:
    """One layer of a map -> camera-frame Gaussian tensors [batch (height width) ...], given its activated depth.

    mean = ray * depth + offset; opacity = sigmoid; scale = multiplier * exp; quaternion = normalised (eps 1e-12);
    sh = [dc, rest] with rest channel 3 k + c -> coefficient k + 1 of colour c.
    """
    means = rays * depth + groups["offset"]
    scale_raw = groups["scale"][:, :1].expand(-1, 3, -1, -1) if isotropic else groups["scale"]
    sh_rest = _flatten(groups["sh_rest"])
    return {
        "means": _flatten(means),
        "quats": _flatten(nn.functional.normalize(groups["rotation"], dim=1, eps=1e-12)),
        "scales": _flatten(torch.exp(scale_raw) * scale_multiplier),
        "opacities": _flatten(torch.sigmoid(groups["opacity"]))[..., 0],
        "sh_dc": _flatten(groups["sh_dc"])[:, :, None, :],
        "sh_rest": sh_rest.reshape(*sh_rest.shape[:2], 3, 3),
    }


def assemble_gaussians(
    layers: list[dict[str, Tensor]],
    cam_to_world: Float[Tensor, "batch 4 4"],
    cam_to_world_quat: Float[Tensor, "batch 4"] | None = None,
) -> Gaussians:
    """Concatenate camera-frame layers (layer-major) and carry them into the world frame of `cam_to_world`."""
    merged = {key: torch.cat([layer[key] for layer in layers], dim=1) for key in layers[0]}
    means, quats, sh_rest = gaussians_to_world(
        merged["means"], merged["quats"], merged["sh_rest"], cam_to_world, cam_to_world_quat
    )
    return Gaussians(
        means=means,
        quats=quats,
        scales=merged["scales"],
        opacities=merged["opacities"],
        sh=torch.cat([merged["sh_dc"], sh_rest], dim=2),
    )


def splatter_depth(
    depth_raw: Float[Tensor, "batch 1 height width"],
    head: PixelHeadConfig,
    origin_distance: Float[Tensor, " batch"] | None = None,
) -> Float[Tensor, "batch 1 height width"]:
    """z = sigmoid(x) (zfar - znear) + znear, plus the per-image origin distance when the head uses it."""
    depth = torch.sigmoid(depth_raw) * (head.zfar - head.znear) + head.znear
    if head.origin_distance:
        if origin_distance is None:
            raise ValueError(f"origin_distance: head {head.name!r} needs the per-image origin distance [batch]")
        if origin_distance.shape != depth_raw.shape[:1]:
            raise ValueError(f"origin_distance must be [batch={depth_raw.shape[0]}], got {list(origin_distance.shape)}")
        depth = depth + origin_distance[:, None, None, None].to(depth.dtype)
    elif origin_distance is not None:
        raise ValueError(f"origin_distance: head {head.name!r} does not use an origin distance")
    return depth


def check_input_cameras(cameras: Cameras, batch: int, height: int, width: int) -> None:
    """ValueError unless `cameras` holds one input view per image of a [batch 3 height width] input."""
    if not isinstance(cameras, Cameras):
        raise ValueError(f"cameras must be a splat_render.Cameras, got {type(cameras).__name__}")
    if cameras.batch_size != batch or cameras.num_views != 1:
        raise ValueError(
            f"cameras must hold one input view per image (batch {batch}, 1 view), "
            f"got batch {cameras.batch_size} with {cameras.num_views} views"
        )
    if (cameras.height, cameras.width) != (height, width):
        raise ValueError(f"cameras are {cameras.height}x{cameras.width} but the images are {height}x{width}")


def gaussians_from_map(
    gaussian_map: Float[Tensor, "batch channels height width"],
    cameras: Cameras,
    head: PixelHeadConfig,
    *,
    origin_distance: Float[Tensor, " batch"] | None = None,
) -> Gaussians:
    """Splatter Image's head: a raw 24-channel map -> one Gaussian per pixel, in the world frame of `cameras`.

    `cameras` holds the input view of each image (its K gives the rays; for the standard use its pose is the
    identity, so the Gaussians are in the input camera's frame). Pure function: no network, differentiable.
    """
    spec = GaussianMapSpec(height=gaussian_map.shape[2], width=gaussian_map.shape[3])
    spec.check(gaussian_map)
    check_input_cameras(cameras, gaussian_map.shape[0], spec.height, spec.width)
    (groups,) = spec.split(gaussian_map)
    rays = pixel_rays(cameras.K[:, 0].to(gaussian_map.dtype), spec.height, spec.width)
    depth = splatter_depth(groups["depth"], head, origin_distance)
    layer = layer_gaussians_in_camera(groups, rays, depth, isotropic=head.isotropic)
    return assemble_gaussians([layer], cameras.cam_to_world[:, 0].to(gaussian_map.dtype), None)
