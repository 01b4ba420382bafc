"""Splatter Image (Szymanowicz, Rupprecht, Vedaldi, CVPR 2024): SongUNet + 1x1 conv -> 24-channel map -> Gaussians.

`SplatterImage` has the module and buffer names of upstream `GaussianSplatPredictor` (commit 78a6ad0), so the
released `model_*.pth` files load strictly: `ray_dirs`, `sh_to_v_transform`, `v_to_sh_transform`,
`network_with_offset.encoder.*` (the U-Net) and `network_with_offset.out.*` (the 1x1 conv).
The `ray_dirs` buffer only exists for checkpoint compatibility (and is checked on load): rays are computed from
the input cameras' `K`. `OfficialSplatterImage` reproduces the upstream call signature and output dict.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

import torch
from jaxtyping import Float
from torch import Tensor, nn

from splat_render import Cameras, Gaussians

from ._state_dict import load_state_dict_strict, read_state_dict
from .pixel_gaussians import (
    CARS,
    CHAIRS,
    HYDRANTS,
    SH_TO_VECTOR,
    GaussianMapSpec,
    PixelHeadConfig,
    check_input_cameras,
    gaussians_from_map,
    gaussians_to_world,
    head_preset,
    init_output_conv_,
    layer_gaussians_in_camera,
    pixel_rays,
    splatter_depth,
)
from .protocol import TeacherOutput
from .unet import UNET_PRESETS, GaussianMapNetwork, UNetConfig

OFFICIAL_WEIGHTS = "huggingface.co/szymanowiczs/splatter-image-v1"
_UNET_PREFIX = "network_with_offset.encoder."


@dataclass(frozen=True)
class SplatterImageConfig:
    """A Splatter Image network (`unet`) and its dataset head (`head`)."""

    unet: UNetConfig = UNET_PRESETS["splatter-image"]
    head: PixelHeadConfig = CARS

    def __post_init__(self) -> None:
        if self.unet.in_channels != 3 or self.unet.out_channels != 24 or self.unet.noise_embedding:
            raise ValueError(
                "SplatterImageConfig.unet must map 3 image channels to the 24-channel map without a noise embedding"
            )
        if self.unet.resolution != self.head.resolution:
            raise ValueError(
                f"SplatterImageConfig: U-Net resolution {self.unet.resolution} != head resolution "
                f"{self.head.resolution}"
            )


SPLATTER_IMAGE_PRESETS: Mapping[str, SplatterImageConfig] = MappingProxyType(
    {
        "cars": SplatterImageConfig(head=CARS),
        "chairs": SplatterImageConfig(head=CHAIRS),
        "hydrants": SplatterImageConfig(head=HYDRANTS),
        # CPU tests: the tiny U-Net at 32 px with the cars head (same field of view).
        "tiny": SplatterImageConfig(unet=UNET_PRESETS["tiny"], head=replace(CARS, resolution=32)),
    }
)


def splatter_image_preset(name: str) -> SplatterImageConfig:
    if name not in SPLATTER_IMAGE_PRESETS:
        raise ValueError(f"unknown Splatter Image preset {name!r}; choose one of {sorted(SPLATTER_IMAGE_PRESETS)}")
    return SPLATTER_IMAGE_PRESETS[name]


def official_ray_dirs(head: PixelHeadConfig) -> Float[Tensor, "1 3 height width"]:
    """Upstream's `ray_dirs` buffer: the z = 1 rays of the fixed camera, or the bare pixel grid (Co3D)."""
    if head.fov_degrees is not None:
        return pixel_rays(head.default_intrinsics(1), head.resolution, head.resolution)
    grid = torch.eye(3)[None].clone()
    grid[:, 0, 2] = grid[:, 1, 2] = head.resolution / 2  # unit focal, centred principal point
    return pixel_rays(grid, head.resolution, head.resolution)


def infer_unet_config(state_dict: Mapping[str, Tensor], prefix: str = _UNET_PREFIX) -> UNetConfig:
    """The `UNetConfig` whose parameters have the shapes of an upstream Splatter Image state dict."""
    keys = [k[len(prefix) :] for k in state_dict if k.startswith(prefix)]
    convs = [k for k in keys if k.startswith("enc.") and k.endswith("_conv.weight")]
    if len(convs) != 1:
        raise ValueError(f"not a Splatter Image state dict: no unique '{prefix}enc.<R>x<R>_conv.weight' key")
    resolution = int(convs[0][len("enc.") :].split("x")[0])
    first = state_dict[prefix + convs[0]]
    model_channels, in_channels = first.shape[0], first.shape[1]
    levels = []
    while f"enc.{resolution >> len(levels)}x{resolution >> len(levels)}_block0.conv0.weight" in keys:
        levels.append(resolution >> len(levels))
    if not levels:
        raise ValueError("not a Splatter Image state dict: no encoder blocks")
    mult = tuple(state_dict[f"{prefix}enc.{r}x{r}_block0.conv0.weight"].shape[0] // model_channels for r in levels)
    num_blocks = len({k.split(".")[1] for k in keys if k.startswith(f"enc.{resolution}x{resolution}_block")})
    attn = tuple(r for r in levels if f"enc.{r}x{r}_block0.qkv.weight" in keys)
    out = state_dict.get(f"{prefix}dec.{resolution}x{resolution}_aux_conv.weight")
    if out is None:
        raise ValueError("not a Splatter Image state dict: no decoder output conv")
    return UNetConfig(
        resolution=resolution,
        in_channels=in_channels,
        out_channels=out.shape[0],
        model_channels=model_channels,
        channel_mult=mult,
        num_blocks=num_blocks,
        attn_resolutions=attn,
        noise_embedding=f"{prefix}map_layer0.weight" in state_dict,
    )


class SplatterImage(nn.Module):
    """The Splatter Image teacher: `teacher(images, cameras) -> TeacherOutput` (see `splat_teachers.protocol`)."""

    def __init__(
        self, config: SplatterImageConfig = SplatterImageConfig(), *, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        self.config = config
        self.register_buffer("ray_dirs", official_ray_dirs(config.head))
        to_vector = torch.tensor(SH_TO_VECTOR)
        self.register_buffer("sh_to_v_transform", to_vector.T[None].clone())
        self.register_buffer("v_to_sh_transform", to_vector[None].clone())
        self.network_with_offset = GaussianMapNetwork(config.unet, generator=generator)
        init_output_conv_(self.network_with_offset.out, self.map_spec, dict(config.head.inits), generator)

    @property
    def map_spec(self) -> GaussianMapSpec:
        return self.config.head.map_spec

    @property
    def head(self) -> PixelHeadConfig:
        return self.config.head

    def input_cameras(self, batch: int = 1) -> Cameras:
        """Identity-pose input cameras with the dataset's fixed intrinsics (cars, chairs), on this model's device."""
        return self.head.default_cameras(batch).to(self.ray_dirs.device)

    def predict_map(
        self, images: Float[Tensor, "batch channels height width"]
    ) -> Float[Tensor, "batch 24 height width"]:
        """The raw 24-channel map (upstream's `network_with_offset(x)`, before the split)."""
        resolution = self.config.unet.resolution
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [batch 3 height width] RGB, got {list(images.shape)}")
        if images.shape[2:] != (resolution, resolution):
            raise ValueError(
                f"images must be {resolution}x{resolution} for this Splatter Image preset, "
                f"got {images.shape[2]}x{images.shape[3]}"
            )
        return self.network_with_offset(images)

    def gaussians_from_map(
        self,
        gaussian_map: Float[Tensor, "batch channels height width"],
        cameras: Cameras,
        *,
        origin_distance: Float[Tensor, " batch"] | None = None,
    ) -> Gaussians:
        self.map_spec.check(gaussian_map)
        return gaussians_from_map(gaussian_map, cameras, self.head, origin_distance=origin_distance)

    def forward(
        self,
        images: Float[Tensor, "batch channels height width"],
        cameras: Cameras,
        *,
        origin_distance: Float[Tensor, " batch"] | None = None,
    ) -> TeacherOutput:
        check_input_cameras(cameras, images.shape[0], images.shape[2], images.shape[3])
        gaussian_map = self.predict_map(images)
        gaussians = self.gaussians_from_map(gaussian_map, cameras, origin_distance=origin_distance)
        return TeacherOutput(gaussian_map=gaussian_map, gaussians=gaussians)

    @classmethod
    def from_official_checkpoint(
        cls,
        path: str | os.PathLike,
        head: PixelHeadConfig | str = "cars",
        unet: UNetConfig | None = None,
    ) -> "SplatterImage":
        """Load a released `model_<dataset>.pth` (or a bare upstream state dict, `.pth` or `.safetensors`) strictly.

        `head` names the dataset (its constants are not stored in the checkpoint); the U-Net config is read from
        the parameter shapes unless given. Pickles are read with `weights_only=True`. Returns the model in eval mode.
        """
        if isinstance(head, str):
            head = head_preset(head)
        hint = f"expected a file like model_{head.name}.pth from {OFFICIAL_WEIGHTS} (nothing is downloaded)"
        state_dict = read_state_dict(path, hint=hint)
        unet = unet if unet is not None else infer_unet_config(state_dict)
        model = cls(SplatterImageConfig(unet=unet, head=replace(head, resolution=unet.resolution)))
        load_state_dict_strict(model, state_dict, source=str(path))
        expected = official_ray_dirs(model.head)
        if not torch.allclose(model.ray_dirs, expected, atol=1e-5):
            raise ValueError(
                f"{path}: its ray_dirs buffer does not match the {head.name!r} head's camera "
                "(checkpoint of another dataset?)"
            )
        return model.eval()


class OfficialSplatterImage(nn.Module):
    """Upstream `GaussianSplatPredictor.forward` over a `SplatterImage` (single input view, no camera embedding).

    `forward(x [B 1 C H W], source_cameras_view_to_world [B 1 4 4] (row-vector convention, C2W^T),
    source_cv2wT_quat [B 1 4], focals_pixels [B 1 2] (Co3D only), activate_output)` returns upstream's dict:
    `xyz` [B N 3], `rotation` [B N 4], `features_dc` [B N 1 3], `opacity` [B N 1], `scaling` [B N 3],
    `features_rest` [B N 3 3]. For Co3D (origin distances) `x` carries the origin distance as a 4th channel.
    """

    def __init__(self, model: SplatterImage) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        x: Float[Tensor, "batch views channels height width"],
        source_cameras_view_to_world: Float[Tensor, "batch views 4 4"],
        source_cv2wT_quat: Float[Tensor, "batch views 4"] | None = None,
        focals_pixels: Float[Tensor, "batch views 2"] | None = None,
        activate_output: bool = True,
    ) -> dict[str, Tensor]:
        head = self.model.head
        if x.shape[1] != 1:
            raise ValueError(f"x: only single-view input is supported (N_views=1), got {x.shape[1]} views")
        channels = 4 if head.origin_distance else 3
        if x.shape[2] != channels:
            raise ValueError(f"x must have {channels} channels for head {head.name!r}, got {x.shape[2]}")
        images = x[:, 0, :3]
        origin_distance = None
        if head.origin_distance:
            distance_map = x[:, 0, 3]
            origin_distance = distance_map[:, 0, 0]
            if not torch.equal(distance_map, origin_distance[:, None, None].expand_as(distance_map)):
                raise ValueError("x: the origin-distance channel must be constant per image")
        if head.fov_degrees is None:
            if focals_pixels is None:
                raise ValueError(f"focals_pixels: head {head.name!r} needs per-image focal lengths [B 1 2]")
            K = torch.zeros(x.shape[0], 3, 3, dtype=x.dtype, device=x.device)
            K[:, 0, 0], K[:, 1, 1] = focals_pixels[:, 0, 0], focals_pixels[:, 0, 1]
            K[:, 0, 2] = K[:, 1, 2] = head.resolution / 2
            K[:, 2, 2] = 1
        else:
            if focals_pixels is not None:
                raise ValueError(f"focals_pixels: head {head.name!r} has a fixed focal length; pass None")
            K = head.default_intrinsics(x.shape[0]).to(x)
        raw = self.model.predict_map(images)
        (groups,) = self.model.map_spec.split(raw)
        rays = pixel_rays(K, head.resolution, head.resolution)
        depth = splatter_depth(groups["depth"], head, origin_distance)
        layer = layer_gaussians_in_camera(groups, rays, depth, isotropic=head.isotropic)
        cam_to_world = source_cameras_view_to_world[:, 0].transpose(-1, -2)
        quat = source_cv2wT_quat[:, 0] if source_cv2wT_quat is not None else None
        xyz, rotation, features_rest = gaussians_to_world(
            layer["means"], layer["quats"], layer["sh_rest"], cam_to_world, quat
        )
        if activate_output:
            opacity, scaling = layer["opacities"][..., None], layer["scales"]
        else:
            scale_raw = groups["scale"][:, :1].expand(-1, 3, -1, -1) if head.isotropic else groups["scale"]
            opacity = groups["opacity"].flatten(2).transpose(1, 2)
            scaling = scale_raw.flatten(2).transpose(1, 2)
        return {
            "xyz": xyz,
            "rotation": rotation,
            "features_dc": layer["sh_dc"],
            "opacity": opacity,
            "scaling": scaling,
            "features_rest": features_rest,
        }
