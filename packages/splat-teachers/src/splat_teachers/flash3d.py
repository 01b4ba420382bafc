"""A Flash3D-style scene teacher (Szymanowicz et al. 2024, "Flash3D", github.com/eldar/flash3d at a71c9b9).

The image is padded by 32 px of black on every side; a depth backbone predicts metric depth for the padded image;
a ResNet encoder (torchvision; ResNet-50 in Flash3D) reads [RGB, depth / 20] (normalised by (x - 0.45) / 0.225,
monodepth2 "pre-BN" features) and monodepth2-style skip decoders (conv3x3 + ELU, nearest upsampling) predict,
per padded pixel, `gaussians_per_pixel` = 2 Gaussian layers:

* layer 0 sits at the backbone depth d_0, layer k > 0 at d_k = d_{k-1} + exp(clamp(x_k, -10, 6)) (one depth
  decoder with `gaussians_per_pixel - 1` outputs), so deeper layers are strictly behind;
* per layer a Gaussian decoder gives offset 3 (added to ray * depth in camera space, not scaled), opacity 1
  (sigmoid), scale 3 (0.01 exp), rotation 4 (normalised), SH DC 3 and degree-1 SH 9 (no activation).

The Gaussian map (`map_spec`) stacks, per layer, the 24 Splatter Image groups over the padded grid; the `depth`
channel holds log d_0 for layer 0 and the raw increment x_k for layer k > 0. `flash3d_gaussians_from_map` turns
any such map into Gaussians without a network.

The depth source is pluggable (`DepthBackbone`): the built-in trainable `MonocularDepthHead` (so the teacher
trains from images alone), an external backbone such as `UniDepthV1` (torch.hub; frozen, never saved with the
teacher), or a precomputed `depth=` map per call.
"""

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal, Protocol, runtime_checkable

import torch
from jaxtyping import Float
from torch import Tensor, nn

from splat_render import Cameras, Gaussians

from ._state_dict import load_state_dict_strict, read_state_dict
from .pixel_gaussians import (
    ChannelInit,
    GaussianMapSpec,
    assemble_gaussians,
    check_input_cameras,
    init_output_conv_,
    layer_gaussians_in_camera,
    pixel_rays,
)
from .protocol import TeacherOutput

INPUT_MEAN, INPUT_STD = 0.45, 0.225  # monodepth2 input normalisation, applied to all four channels


@dataclass(frozen=True)
class ResNetConfig:
    """A torchvision ResNet body: block type and blocks per stage (stem and stage widths as in torchvision)."""

    block: Literal["basic", "bottleneck"] = "bottleneck"
    layers: tuple[int, int, int, int] = (3, 4, 6, 3)

    @property
    def channels(self) -> tuple[int, ...]:
        """Channels of the five feature maps (strides 2, 4, 8, 16, 32)."""
        expansion = 4 if self.block == "bottleneck" else 1
        return (64, 64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion)

    @property
    def imagenet_weights(self):
        """torchvision's ImageNet weights for this body (Flash3D's choice), or None if it is not resnet18/50."""
        torchvision = _torchvision()
        if (self.block, self.layers) == ("basic", (2, 2, 2, 2)):
            return torchvision.models.ResNet18_Weights.IMAGENET1K_V1
        if (self.block, self.layers) == ("bottleneck", (3, 4, 6, 3)):
            return torchvision.models.ResNet50_Weights.IMAGENET1K_V2
        return None


def _torchvision():
    """torchvision, imported on use (it takes seconds to import; only Flash3D's ResNet encoders need it)."""
    try:
        import torchvision
    except ImportError:
        raise ImportError(
            "Flash3D's ResNet encoders need torchvision: install splat-teachers[flash3d] (pip install torchvision)"
        ) from None
    return torchvision


RESNET50 = ResNetConfig("bottleneck", (3, 4, 6, 3))
RESNET18 = ResNetConfig("basic", (2, 2, 2, 2))
RESNET10 = ResNetConfig("basic", (1, 1, 1, 1))  # a reduced ResNet-18 (one block per stage) for CPU tests


@dataclass(frozen=True)
class MonocularDepthConfig:
    """The built-in depth head: ResNet encoder + skip decoder -> disparity sigmoid -> depth in [min, max]."""

    encoder: ResNetConfig = RESNET18
    decoder_channels: tuple[int, int, int, int, int] = (16, 32, 64, 128, 256)
    min_depth: float = 0.1
    max_depth: float = 20.0  # Flash3D's RealEstate10K max_depth

    def __post_init__(self) -> None:
        if not 0 < self.min_depth < self.max_depth:
            raise ValueError(
                f"MonocularDepthConfig needs 0 < min_depth < max_depth, got {self.min_depth}, {self.max_depth}"
            )


FLASH3D_INITS: tuple[tuple[str, ChannelInit], ...] = (
    ("depth", ChannelInit(0.1, -0.1)),  # the depth-increment conv (layers k > 0)
    ("offset", ChannelInit(0.2, 0.0)),
    ("opacity", ChannelInit(1.0, 0.0)),
    ("scale", ChannelInit(0.1, math.log(0.02))),
    ("rotation", ChannelInit(1.0, 0.0)),
    ("sh_dc", ChannelInit(5.0, 0.0)),
    ("sh_rest", ChannelInit(1.0, 0.0)),
)


@dataclass(frozen=True)
class Flash3DConfig:
    """Flash3D's `layered_re10k` experiment (defaults) and smaller variants."""

    height: int = 256  # input image size (must be multiples of 32)
    width: int = 384
    padding: int = 32  # black border added on every side; Gaussians are predicted for the padded grid
    gaussians_per_pixel: int = 2
    encoder: ResNetConfig = RESNET50
    decoder_channels: tuple[int, int, int, int, int] = (32, 32, 64, 128, 256)  # per Gaussian-layer decoder
    depth_decoder_channels: tuple[int, int, int, int, int] = (16, 32, 64, 128, 256)
    depth_divisor: float = 20.0  # the encoder's 4th channel is depth / depth_divisor
    scale_multiplier: float = 0.01  # scale = scale_multiplier * exp(x)
    depth_source: Literal["learned", "external"] = "learned"
    depth_head: MonocularDepthConfig = MonocularDepthConfig()
    inits: tuple[tuple[str, ChannelInit], ...] = field(default=FLASH3D_INITS)

    def __post_init__(self) -> None:
        for name in ("height", "width", "padding"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0 or value % 32 or (name != "padding" and value == 0):
                kind = "non-negative" if name == "padding" else "positive"
                raise ValueError(f"Flash3DConfig.{name} must be a {kind} multiple of 32, got {value!r}")
        if not isinstance(self.gaussians_per_pixel, int) or self.gaussians_per_pixel < 1:
            raise ValueError(f"Flash3DConfig.gaussians_per_pixel must be >= 1, got {self.gaussians_per_pixel!r}")

    @property
    def map_spec(self) -> GaussianMapSpec:
        return GaussianMapSpec(
            height=self.height + 2 * self.padding,
            width=self.width + 2 * self.padding,
            gaussians_per_pixel=self.gaussians_per_pixel,
            padding=self.padding,
        )


_TINY_DECODER = (8, 8, 16, 16, 32)
FLASH3D_PRESETS: Mapping[str, Flash3DConfig] = MappingProxyType(
    {
        "re10k": Flash3DConfig(),
        # CPU tests: 32x32 images (96x96 padded), a one-block-per-stage ResNet-18 ("ResNet-10") and narrow decoders.
        "tiny": Flash3DConfig(
            height=32,
            width=32,
            encoder=RESNET10,
            decoder_channels=_TINY_DECODER,
            depth_decoder_channels=_TINY_DECODER,
            depth_head=MonocularDepthConfig(encoder=RESNET10, decoder_channels=_TINY_DECODER),
        ),
    }
)


def flash3d_preset(name: str) -> Flash3DConfig:
    if name not in FLASH3D_PRESETS:
        raise ValueError(f"unknown Flash3D preset {name!r}; choose one of {sorted(FLASH3D_PRESETS)}")
    return FLASH3D_PRESETS[name]


@runtime_checkable
class DepthBackbone(Protocol):
    """Metric depth of (padded) images: `backbone(images [batch 3 H W] in [0, 1], K [batch 3 3]) -> [batch 1 H W]`."""

    def __call__(
        self, images: Float[Tensor, "batch 3 height width"], K: Float[Tensor, "batch 3 3"]
    ) -> Float[Tensor, "batch 1 height width"]: ...


def _default_conv_init_(conv: nn.Conv2d, generator: torch.Generator | None) -> None:
    """PyTorch's default conv initialisation (kaiming-uniform, a = sqrt 5; uniform bias), from `generator`."""
    with torch.no_grad():
        nn.init.kaiming_uniform_(conv.weight, a=math.sqrt(5), generator=generator)
        if conv.bias is not None:
            bound = 1 / math.sqrt(conv.weight[0].numel())
            conv.bias.uniform_(-bound, bound, generator=generator)


def imagenet_state_dict(config: ResNetConfig) -> dict[str, Tensor]:
    """torchvision's ImageNet weights for `config`, read only from the local torch hub cache (never downloaded)."""
    weights = config.imagenet_weights
    if weights is None:
        raise ValueError(f"pretrained: no ImageNet weights for a {config.block} ResNet with layers {config.layers}")
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    if not path.is_file():
        raise ValueError(
            f"pretrained=True: ImageNet weights not found at {path}; put {weights.url} there (no download)"
        )
    return read_state_dict(path)


class ResNetEncoder(nn.Module):
    """monodepth2's ResNet encoder ("pre-BN"): features [conv1(x), layer1..layer4] at strides 2..32.

    A non-RGB input (`in_channels` != 3) gets a fresh conv1 with a bias, as Flash3D's depth-conditioned encoder.
    """

    def __init__(
        self,
        config: ResNetConfig,
        in_channels: int = 3,
        *,
        pretrained: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        torchvision = _torchvision()
        block = (
            torchvision.models.resnet.Bottleneck
            if config.block == "bottleneck"
            else torchvision.models.resnet.BasicBlock
        )
        device = torch.get_default_device()
        with torch.device("meta"):  # torchvision initialises from the global RNG; we initialise from `generator`
            resnet = torchvision.models.ResNet(block, list(config.layers))
            resnet.fc = nn.Identity()
            if in_channels != 3:
                resnet.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=True)
        self.resnet = resnet.to_empty(device=device)
        with torch.no_grad():
            for module in self.resnet.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                elif isinstance(module, nn.BatchNorm2d):
                    module.reset_parameters()
            if in_channels != 3:
                _default_conv_init_(self.resnet.conv1, generator)
        if pretrained:
            loaded = imagenet_state_dict(config)
            keep = {k: v for k, v in loaded.items() if not k.startswith("fc.")}
            if in_channels != 3:
                keep = {k: v for k, v in keep.items() if not k.startswith("conv1.")}
                keep |= {k: v for k, v in self.resnet.state_dict().items() if k.startswith("conv1.")}
            load_state_dict_strict(self.resnet, keep, source="ImageNet weights")

    @property
    def channels(self) -> tuple[int, ...]:
        return self.config.channels

    def forward(self, x: Float[Tensor, "batch channels height width"]) -> list[Tensor]:
        net = self.resnet
        x = net.conv1((x - INPUT_MEAN) / INPUT_STD)
        features = [x]
        x = net.relu(net.bn1(x))
        features.append(net.layer1(net.maxpool(x)))
        for layer in (net.layer2, net.layer3, net.layer4):
            features.append(layer(features[-1]))
        return features


class ConvBlock(nn.Module):
    """3x3 conv with reflection padding, then ELU (monodepth2)."""

    def __init__(self, in_channels: int, out_channels: int, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, padding_mode="reflect")
        _default_conv_init_(self.conv, generator)

    def forward(self, x: Float[Tensor, "batch channels height width"]) -> Float[Tensor, "batch out height width"]:
        return nn.functional.elu(self.conv(x))


class SkipDecoder(nn.Module):
    """monodepth2's decoder: from stride 32 to 1, ConvBlock -> nearest x2 -> cat(encoder skip) -> ConvBlock; `out`."""

    def __init__(
        self,
        encoder_channels: tuple[int, ...],
        channels: tuple[int, ...],
        out_channels: int,
        *,
        out_kernel: int = 1,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleDict()
        for i in range(4, -1, -1):
            cin = encoder_channels[-1] if i == 4 else channels[i + 1]
            self.blocks[f"upconv_{i}_0"] = ConvBlock(cin, channels[i], generator=generator)
            cin = channels[i] + (encoder_channels[i - 1] if i > 0 else 0)
            self.blocks[f"upconv_{i}_1"] = ConvBlock(cin, channels[i], generator=generator)
        padding = dict(padding=1, padding_mode="reflect") if out_kernel == 3 else {}
        self.out = nn.Conv2d(channels[0], out_channels, out_kernel, **padding)
        _default_conv_init_(self.out, generator)

    def forward(self, features: list[Tensor]) -> Float[Tensor, "batch channels height width"]:
        x = features[-1]
        for i in range(4, -1, -1):
            x = nn.functional.interpolate(self.blocks[f"upconv_{i}_0"](x), scale_factor=2, mode="nearest")
            if i > 0:
                x = torch.cat([x, features[i - 1]], dim=1)
            x = self.blocks[f"upconv_{i}_1"](x)
        return self.out(x)


class MonocularDepthHead(nn.Module):
    """A trainable monocular depth network (a `DepthBackbone`): depth = 1 / lerp(1/max, 1/min, sigmoid(x)).

    monodepth2's disparity parameterisation; intrinsics are accepted for the protocol and not used.
    """

    def __init__(
        self, config: MonocularDepthConfig = MonocularDepthConfig(), *, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.encoder = ResNetEncoder(config.encoder, 3, generator=generator)
        self.decoder = SkipDecoder(
            config.encoder.channels, config.decoder_channels, 1, out_kernel=3, generator=generator
        )

    def forward(
        self, images: Float[Tensor, "batch 3 height width"], K: Float[Tensor, "batch 3 3"] | None = None
    ) -> Float[Tensor, "batch 1 height width"]:
        disparity = torch.sigmoid(self.decoder(self.encoder(images)))
        min_disparity, max_disparity = 1 / self.config.max_depth, 1 / self.config.min_depth
        return 1 / (min_disparity + (max_disparity - min_disparity) * disparity)


def load_unidepth_v1(backbone: str = "vitl14"):
    """UniDepth v1 through torch.hub (network access and UniDepth's dependencies needed on first use)."""
    try:
        return torch.hub.load(
            "lpiccinelli-eth/UniDepth", "UniDepth", version="v1", backbone=backbone, pretrained=True, trust_repo=True
        )
    except Exception as error:
        reason = (str(error).strip().splitlines() or [""])[0]
        raise RuntimeError(
            f"UniDepth v1 ({backbone}) could not be loaded through torch.hub 'lpiccinelli-eth/UniDepth' (it needs "
            f"network access, or a populated torch hub cache, and UniDepth's dependencies): "
            f"{type(error).__name__}: {reason}"
        ) from None


class UniDepthV1:
    """Adapter: UniDepth v1 as a frozen `DepthBackbone` (Flash3D's depth source). Not an `nn.Module`, so its
    weights are never part of a teacher's state dict; it runs without gradients. `model` injects a loaded model."""

    def __init__(self, backbone: str = "vitl14", *, model=None) -> None:
        self.model = model if model is not None else load_unidepth_v1(backbone)

    def __call__(
        self, images: Float[Tensor, "batch 3 height width"], K: Float[Tensor, "batch 3 3"]
    ) -> Float[Tensor, "batch 1 height width"]:
        with torch.no_grad():
            return self.model.infer(images, intrinsics=K)["depth"]


def padded_intrinsics(K: Float[Tensor, "batch 3 3"], padding: int) -> Float[Tensor, "batch 3 3"]:
    """K of the image padded by `padding` pixels on every side (principal point shifted)."""
    shift = torch.zeros_like(K)
    shift[:, 0, 2] = shift[:, 1, 2] = padding
    return K + shift


def flash3d_gaussians_from_map(
    gaussian_map: Float[Tensor, "batch channels height width"],
    cameras: Cameras,
    config: Flash3DConfig,
) -> Gaussians:
    """Flash3D's head on a raw map (see the module docstring), in the world frame of the input `cameras`."""
    spec = config.map_spec
    spec.check(gaussian_map)
    check_input_cameras(cameras, gaussian_map.shape[0], spec.image_height, spec.image_width)
    rays = pixel_rays(cameras.K[:, 0].to(gaussian_map.dtype), spec.height, spec.width, padding=spec.padding)
    layers, depth = [], None
    for groups in spec.split(gaussian_map):
        if depth is None:
            depth = torch.exp(groups["depth"])
        else:
            depth = depth + torch.exp(torch.clamp(groups["depth"], -10.0, 6.0))
        layers.append(layer_gaussians_in_camera(groups, rays, depth, scale_multiplier=config.scale_multiplier))
    return assemble_gaussians(layers, cameras.cam_to_world[:, 0].to(gaussian_map.dtype), None)


class Flash3D(nn.Module):
    """The Flash3D-style teacher: `teacher(images, cameras, *, depth=None) -> TeacherOutput`.

    `depth` [batch 1 H+2p W+2p] overrides the depth source for one call. With `config.depth_source="external"`,
    pass `depth_backbone` (for example `UniDepthV1()`); it is kept outside the module (frozen, not saved).
    `pretrained=True` initialises the encoder from torchvision's ImageNet weights in the local torch hub cache.
    """

    def __init__(
        self,
        config: Flash3DConfig = Flash3DConfig(),
        *,
        depth_backbone: DepthBackbone | None = None,
        pretrained: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        self.config = config
        if config.depth_source == "learned":
            if depth_backbone is not None:
                raise ValueError("depth_backbone: this config learns its depth (depth_source='learned'); pass None")
            self.depth_head = MonocularDepthHead(config.depth_head, generator=generator)
        self._external_depth = (depth_backbone,)  # a tuple, so that an nn.Module backbone is not registered
        self.encoder = ResNetEncoder(config.encoder, 4, pretrained=pretrained, generator=generator)
        spec, inits = config.map_spec, dict(config.inits)
        if config.gaussians_per_pixel > 1:
            self.depth_decoder = SkipDecoder(
                config.encoder.channels,
                config.depth_decoder_channels,
                config.gaussians_per_pixel - 1,
                out_kernel=3,
                generator=generator,
            )
            with torch.no_grad():
                nn.init.xavier_uniform_(self.depth_decoder.out.weight, gain=inits["depth"].gain, generator=generator)
                self.depth_decoder.out.bias.fill_(inits["depth"].bias)
        per_gaussian = GaussianMapSpec(spec.height, spec.width, groups=spec.groups[1:])  # no depth channel
        self.gaussian_decoders = nn.ModuleList()
        for _ in range(config.gaussians_per_pixel):
            decoder = SkipDecoder(
                config.encoder.channels, config.decoder_channels, per_gaussian.channels, generator=generator
            )
            init_output_conv_(decoder.out, per_gaussian, inits, generator)
            self.gaussian_decoders.append(decoder)

    @property
    def map_spec(self) -> GaussianMapSpec:
        return self.config.map_spec

    def gaussians_from_map(
        self, gaussian_map: Float[Tensor, "batch channels height width"], cameras: Cameras
    ) -> Gaussians:
        return flash3d_gaussians_from_map(gaussian_map, cameras, self.config)

    def predict_depth(
        self, padded_images: Float[Tensor, "batch 3 height width"], K: Float[Tensor, "batch 3 3"]
    ) -> Float[Tensor, "batch 1 height width"]:
        """Depth of the padded images from the configured source."""
        if self.config.depth_source == "learned":
            return self.depth_head(padded_images, K)
        (backbone,) = self._external_depth
        if backbone is None:
            raise ValueError("depth: depth_source='external' needs a depth_backbone or a depth= map per call")
        with torch.no_grad():
            return backbone(padded_images, K)

    def predict_map(
        self,
        images: Float[Tensor, "batch channels height width"],
        K: Float[Tensor, "batch 3 3"],
        *,
        depth: Float[Tensor, "batch 1 padded_height padded_width"] | None = None,
    ) -> Float[Tensor, "batch map_channels padded_height padded_width"]:
        """The raw map over the padded grid (`map_spec`): per layer [depth, 23 Gaussian channels]."""
        config, spec = self.config, self.config.map_spec
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [batch 3 height width] RGB, got {list(images.shape)}")
        if images.shape[2:] != (config.height, config.width):
            raise ValueError(
                f"images must be {config.height}x{config.width} for this Flash3D config, "
                f"got {images.shape[2]}x{images.shape[3]}"
            )
        p = config.padding
        padded = nn.functional.pad(images, (p, p, p, p))
        if depth is None:
            depth = self.predict_depth(padded, padded_intrinsics(K, p))
        if depth.shape != (images.shape[0], 1, spec.height, spec.width):
            raise ValueError(
                f"depth must be [batch 1 {spec.height} {spec.width}] (the padded grid), got {list(depth.shape)}"
            )
        features = self.encoder(torch.cat([padded, depth / config.depth_divisor], dim=1))
        increments = self.depth_decoder(features) if config.gaussians_per_pixel > 1 else None
        layers = []
        for index, decoder in enumerate(self.gaussian_decoders):
            if index == 0:
                layer_depth = torch.log(depth.clamp_min(1e-6))
            else:
                layer_depth = increments[:, index - 1 : index]
            layers += [layer_depth, decoder(features)]
        return torch.cat(layers, dim=1)

    def forward(
        self,
        images: Float[Tensor, "batch channels height width"],
        cameras: Cameras,
        *,
        depth: Float[Tensor, "batch 1 padded_height padded_width"] | None = None,
    ) -> TeacherOutput:
        check_input_cameras(cameras, images.shape[0], images.shape[2], images.shape[3])
        gaussian_map = self.predict_map(images, cameras.K[:, 0].to(images.dtype), depth=depth)
        return TeacherOutput(gaussian_map=gaussian_map, gaussians=self.gaussians_from_map(gaussian_map, cameras))
