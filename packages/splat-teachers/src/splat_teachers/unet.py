"""The DDPM++ U-Net of EDM (Karras et al. 2022, `training/networks.py::SongUNet`; Song et al. 2021), written anew.

It is the backbone of Splatter Image (Szymanowicz et al. 2024), which uses it without a noise embedding, and of
the diffusion student of "A Lesson in Splats", which uses it with one. Module and parameter names follow EDM (and
therefore the released Splatter Image checkpoints) exactly: `enc.128x128_conv`, `enc.64x64_down`,
`enc.16x16_block3.qkv`, `dec.16x16_in0`, `dec.128x128_aux_conv`, ... so official state dicts load 1:1.

Architecture (per resolution level, `channel_mult[level] * model_channels` channels):

* encoder: a 3x3 conv at full resolution, then per level a down block (2x2 average pool inside, except at level 0)
  and `num_blocks` residual blocks; every encoder output is pushed on a skip stack;
* decoder: at the coarsest level two blocks `in0` (attention) and `in1`, elsewhere an up block (nearest x2);
  then `num_blocks + 1` residual blocks, each taking `cat([x, skips.pop()])`;
* output: `aux_conv(silu(aux_norm(x)))` at full resolution.

A residual block is `x' = (conv1(dropout(silu(norm1(conv0(silu(norm0(x))) [+ affine(emb)])))) + skip(x)) / sqrt 2`,
followed, at resolutions listed in `attn_resolutions`, by single-head self-attention
`x'' = (proj(attention(norm2(x'))) + x') / sqrt 2` whose 1x1 `qkv` conv interleaves q, k, v channel by channel.
GroupNorms use `min(32, channels // 4)` groups and eps 1e-6.

Inputs are `resolution` x `resolution`, or `resolution` x `width` when `config.width` is set (the diffusion student
on Flash3D's padded, non-square Gaussian map). The network is convolutional apart from attention over all pixels of a
level, so only the input check depends on the width; levels keep EDM's names from the height (`enc.320x320_conv` for
a 320x448 input), and `attn_resolutions` refers to those heights.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn
from torch.nn.functional import silu

GROUPNORM_EPS = 1e-6


@dataclass(frozen=True)
class UNetConfig:
    """Hyperparameters of `SongUNet` (defaults: the released Splatter Image network)."""

    resolution: int = 128  # input/output height in pixels (and width unless `width` is set); names the layers
    # (`enc.128x128_conv`) and picks the attention levels, as in EDM
    in_channels: int = 3  # input channels (image, plus the noisy Gaussian map for the student)
    out_channels: int = 24  # output channels (the raw Gaussian map)
    model_channels: int = 128  # base channel count
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)  # channels per level as multiples of model_channels
    num_blocks: int = 4  # residual blocks per level in the encoder (the decoder has one more)
    attn_resolutions: tuple[int, ...] = (16,)  # resolutions (px) whose blocks end in self-attention
    dropout: float = 0.1  # dropout before every block's second conv (training mode only)
    noise_embedding: bool = False  # EDM's noise-level conditioning: positional embedding + MLP + per-block affine
    channel_mult_emb: int = 4  # embedding width = channel_mult_emb * model_channels
    channel_mult_noise: int = 1  # positional-embedding width = channel_mult_noise * model_channels
    num_heads: int = 1  # attention heads
    resample_filter: tuple[int, ...] = (1, 1)  # separable resampling filter ([1, 1] = box / nearest)
    output_init_weight: float = 0.2  # xavier gain of `aux_conv` (Splatter Image: 0.2; EDM: 1e-5)
    width: int | None = None  # input/output width for non-square inputs (e.g. Flash3D's padded map); None: square

    def __post_init__(self) -> None:
        for name in ("resolution", "in_channels", "out_channels", "model_channels", "num_blocks", "num_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"UNetConfig.{name} must be a positive int, got {value!r}")
        width = self.width
        if width is not None and (not isinstance(width, int) or isinstance(width, bool) or width <= 0):
            raise ValueError(f"UNetConfig.width must be a positive int or None, got {self.width!r}")
        if not self.channel_mult or any(not isinstance(m, int) or m <= 0 for m in self.channel_mult):
            raise ValueError(f"UNetConfig.channel_mult must be positive ints, got {self.channel_mult!r}")
        for name in ("resolution", "width"):
            value = getattr(self, name)
            if value is not None and value % 2 ** (len(self.channel_mult) - 1):
                raise ValueError(
                    f"UNetConfig.{name} {value} is not divisible by 2^{len(self.channel_mult) - 1} "
                    f"(one halving per level of channel_mult={self.channel_mult})"
                )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"UNetConfig.dropout must be in [0, 1), got {self.dropout}")
        for level, mult in enumerate(self.channel_mult):
            channels = mult * self.model_channels
            if channels % self.num_heads or channels < 4:
                raise ValueError(f"level {level} has {channels} channels: need >= 4 and divisible by num_heads")
        if self.noise_embedding and (self.channel_mult_noise <= 0 or self.channel_mult_emb <= 0):
            raise ValueError("channel_mult_noise and channel_mult_emb must be positive with noise_embedding=True")

    @property
    def emb_channels(self) -> int | None:
        return self.model_channels * self.channel_mult_emb if self.noise_embedding else None

    @property
    def level_resolutions(self) -> tuple[int, ...]:
        return tuple(self.resolution >> level for level in range(len(self.channel_mult)))

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the inputs and outputs."""
        return self.resolution, self.resolution if self.width is None else self.width


UNET_PRESETS: Mapping[str, UNetConfig] = MappingProxyType(
    {
        # Splatter Image as released ("Large" in A Lesson in Splats): 56,378,736 parameters with its output conv.
        "splatter-image": UNetConfig(),
        # The diffusion student ("Medium"): input = image (3) + noisy Gaussian map (24); noise-level embedding.
        # 64 base channels (x1, x2, x4, x4 at 128/64/32/16 px) and 2 blocks per level: 27,425,008 parameters with
        # the 1x1 output conv, 0.49x the teacher (A Lesson in Splats: 295 MB of checkpoint incl. Adam state,
        # i.e. about 25.8M parameters, against 646 MB for the teacher).
        "medium": UNetConfig(
            in_channels=27, model_channels=64, channel_mult=(1, 2, 4, 4), num_blocks=2, noise_embedding=True
        ),
        # CPU tests: 32 px, three levels, attention at 8 px.
        "tiny": UNetConfig(
            resolution=32, model_channels=16, channel_mult=(1, 2, 2), num_blocks=1, attn_resolutions=(8,)
        ),
    }
)


def unet_preset(name: str) -> UNetConfig:
    """The named `UNetConfig` (see `UNET_PRESETS`)."""
    if name not in UNET_PRESETS:
        raise ValueError(f"unknown U-Net preset {name!r}; choose one of {sorted(UNET_PRESETS)}")
    return UNET_PRESETS[name]


def _xavier(tensor: Tensor, gain: float, generator: torch.Generator | None) -> None:
    with torch.no_grad():
        nn.init.xavier_uniform_(tensor, gain=gain, generator=generator)


class ResampleConv(nn.Module):
    """EDM's conv layer: optional 2x up/down resampling with a fixed separable filter, then a `kernel` conv.

    Resampling comes first: down = depthwise conv with the normalised filter outer product at stride 2 (a 2x2 box
    average for [1, 1]); up = depthwise transposed conv with 4x that filter (nearest-neighbour for [1, 1]).
    `kernel=0` resamples only. Weights are xavier-uniform times `init_weight`; biases start at 0.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        *,
        up: bool = False,
        down: bool = False,
        resample_filter: tuple[int, ...] = (1, 1),
        init_weight: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if up and down:
            raise ValueError("ResampleConv cannot both upsample and downsample")
        self.in_channels, self.out_channels, self.up, self.down = in_channels, out_channels, up, down
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel, kernel)) if kernel else None
        self.bias = nn.Parameter(torch.zeros(out_channels)) if kernel else None
        if self.weight is not None:
            _xavier(self.weight, init_weight, generator)
        if up or down:
            taps = torch.as_tensor(resample_filter, dtype=torch.float32)
            self.register_buffer("resample_filter", (torch.outer(taps, taps) / taps.sum().square())[None, None])
        else:
            self.resample_filter = None

    def forward(
        self, x: Float[Tensor, "batch channels height width"]
    ) -> Float[Tensor, "batch channels2 height2 width2"]:
        if self.resample_filter is not None:
            taps = self.resample_filter.to(x.dtype)
            pad = (taps.shape[-1] - 1) // 2
            depthwise = taps.tile([self.in_channels, 1, 1, 1])
            if self.up:
                x = nn.functional.conv_transpose2d(x, depthwise * 4, groups=self.in_channels, stride=2, padding=pad)
            else:
                x = nn.functional.conv2d(x, depthwise, groups=self.in_channels, stride=2, padding=pad)
        if self.weight is not None:
            x = nn.functional.conv2d(x, self.weight.to(x.dtype), padding=self.weight.shape[-1] // 2)
            x = x + self.bias.to(x.dtype)[None, :, None, None]
        return x


def group_norm(channels: int) -> nn.GroupNorm:
    """EDM's GroupNorm: min(32, channels // 4) groups, eps 1e-6, unit gain, zero bias."""
    groups = min(32, channels // 4)
    if groups < 1 or channels % groups:
        raise ValueError(f"a GroupNorm over {channels} channels needs them divisible by min(32, channels // 4)")
    return nn.GroupNorm(num_groups=min(32, channels // 4), num_channels=channels, eps=GROUPNORM_EPS)


def positional_embedding(
    noise_labels: Float[Tensor, " batch"] | Int[Tensor, " batch"], channels: int, max_positions: int = 10000
) -> Float[Tensor, "batch channels"]:
    """EDM's DDPM++ noise embedding: [sin(l f_i), cos(l f_i)] with f_i = (1/max_positions)^(i/(channels/2 - 1)).

    (EDM computes [cos, sin] and then swaps the halves; the result is this.) Computed in float32; returned in the
    labels' dtype when they are floating point (integer timesteps give float32).
    """
    half = channels // 2
    exponents = torch.arange(half, dtype=torch.float32, device=noise_labels.device) / max(half - 1, 1)
    frequencies = (1.0 / max_positions) ** exponents
    angles = noise_labels.to(torch.float32)[:, None] * frequencies[None, :]
    embedding = torch.cat([angles.sin(), angles.cos()], dim=1)
    return embedding.to(noise_labels.dtype) if noise_labels.is_floating_point() else embedding


class UNetBlock(nn.Module):
    """EDM's residual block (DDPM++ flavour: additive embedding, no adaptive scale) with optional attention."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        emb_channels: int | None,
        up: bool = False,
        down: bool = False,
        attention: bool = False,
        num_heads: int = 1,
        dropout: float = 0.0,
        resample_filter: tuple[int, ...] = (1, 1),
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_heads = num_heads if attention else 0
        self.dropout = dropout
        if emb_channels is not None:
            self.affine = nn.Linear(emb_channels, out_channels)
            _xavier(self.affine.weight, 1.0, generator)
            with torch.no_grad():
                self.affine.bias.zero_()
        resample = dict(resample_filter=resample_filter, generator=generator)
        self.norm0 = group_norm(in_channels)
        self.conv0 = ResampleConv(in_channels, out_channels, 3, up=up, down=down, **resample)
        self.norm1 = group_norm(out_channels)
        self.conv1 = ResampleConv(out_channels, out_channels, 3, init_weight=1e-5, **resample)
        self.skip = None
        if out_channels != in_channels or up or down:
            self.skip = ResampleConv(in_channels, out_channels, 1, up=up, down=down, **resample)
        if attention:
            self.norm2 = group_norm(out_channels)
            self.qkv = ResampleConv(out_channels, out_channels * 3, 1, init_weight=math.sqrt(0.2), **resample)
            self.proj = ResampleConv(out_channels, out_channels, 1, init_weight=1e-5, **resample)

    def forward(
        self, x: Float[Tensor, "batch channels height width"], emb: Float[Tensor, "batch emb"] | None = None
    ) -> Float[Tensor, "batch channels2 height2 width2"]:
        skip_scale = math.sqrt(0.5)
        h = self.conv0(silu(self.norm0(x)))
        if emb is not None:
            h = h + self.affine(emb)[:, :, None, None].to(h.dtype)
        h = silu(self.norm1(h))
        h = self.conv1(nn.functional.dropout(h, p=self.dropout, training=self.training))
        x = (h + (self.skip(x) if self.skip is not None else x)) * skip_scale
        if self.num_heads:
            x = (self.proj(self.attention(self.norm2(x))) + x) * skip_scale
        return x

    def attention(
        self, x: Float[Tensor, "batch channels height width"]
    ) -> Float[Tensor, "batch channels height width"]:
        """softmax(q^T k / sqrt(d)) v per head; `qkv` channels are [head, channel, (q k v)] with q, k, v innermost."""
        batch, channels, height, width = x.shape
        heads = self.num_heads
        qkv = self.qkv(x).reshape(batch, heads, channels // heads, 3, height * width)  # (B, heads, d, 3, HW)
        q, k, v = (t.transpose(-1, -2).to(torch.float32) for t in qkv.unbind(3))  # (B, heads, HW, d)
        attended = nn.functional.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, d), scale 1/sqrt(d)
        return attended.to(x.dtype).transpose(-1, -2).reshape(batch, channels, height, width)


class SongUNet(nn.Module):
    """EDM's DDPM++ U-Net (`training/networks.py::SongUNet`, standard encoder/decoder), see the module docstring.

    `forward(x, noise_labels)`: `noise_labels` [batch] is required iff `config.noise_embedding` (EDM's c_noise).
    Weights are initialised from `generator` (a fresh generator seeded with 0 when None) as in EDM: xavier-uniform,
    x1e-5 for each block's second conv and attention output, x sqrt(0.2) for qkv, zero biases.
    """

    def __init__(self, config: UNetConfig, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        emb_channels = config.emb_channels
        block = dict(
            emb_channels=emb_channels,
            num_heads=config.num_heads,
            dropout=config.dropout,
            resample_filter=config.resample_filter,
            generator=generator,
        )
        if config.noise_embedding:
            noise_channels = config.model_channels * config.channel_mult_noise
            self.map_layer0 = nn.Linear(noise_channels, emb_channels)
            self.map_layer1 = nn.Linear(emb_channels, emb_channels)
            for layer in (self.map_layer0, self.map_layer1):
                _xavier(layer.weight, 1.0, generator)
                with torch.no_grad():
                    layer.bias.zero_()

        self.enc = nn.ModuleDict()
        cout = config.in_channels
        skips = []
        for level, mult in enumerate(config.channel_mult):
            res = config.resolution >> level
            if level == 0:
                cin, cout = cout, config.model_channels
                self.enc[f"{res}x{res}_conv"] = ResampleConv(cin, cout, 3, generator=generator)
            else:
                self.enc[f"{res}x{res}_down"] = UNetBlock(cout, cout, down=True, **block)
            skips.append(cout)
            for index in range(config.num_blocks):
                cin, cout = cout, config.model_channels * mult
                attention = res in config.attn_resolutions
                self.enc[f"{res}x{res}_block{index}"] = UNetBlock(cin, cout, attention=attention, **block)
                skips.append(cout)

        self.dec = nn.ModuleDict()
        for level, mult in reversed(list(enumerate(config.channel_mult))):
            res = config.resolution >> level
            if level == len(config.channel_mult) - 1:
                self.dec[f"{res}x{res}_in0"] = UNetBlock(cout, cout, attention=True, **block)
                self.dec[f"{res}x{res}_in1"] = UNetBlock(cout, cout, **block)
            else:
                self.dec[f"{res}x{res}_up"] = UNetBlock(cout, cout, up=True, **block)
            for index in range(config.num_blocks + 1):
                cin, cout = cout + skips.pop(), config.model_channels * mult
                attention = index == config.num_blocks and res in config.attn_resolutions
                self.dec[f"{res}x{res}_block{index}"] = UNetBlock(cin, cout, attention=attention, **block)
        res = config.resolution
        self.dec[f"{res}x{res}_aux_norm"] = group_norm(cout)
        self.dec[f"{res}x{res}_aux_conv"] = ResampleConv(
            cout, config.out_channels, 3, init_weight=config.output_init_weight, generator=generator
        )

    def embed_noise(self, noise_labels: Float[Tensor, " batch"] | Int[Tensor, " batch"]) -> Float[Tensor, "batch emb"]:
        """The per-sample embedding that every block adds (through its `affine`) after its first conv."""
        emb = positional_embedding(noise_labels, self.map_layer0.in_features).to(self.map_layer0.weight.dtype)
        return silu(self.map_layer1(silu(self.map_layer0(emb))))

    def forward(
        self,
        x: Float[Tensor, "batch channels height width"],
        noise_labels: Float[Tensor, " batch"] | Int[Tensor, " batch"] | None = None,
    ) -> Float[Tensor, "batch out_channels height width"]:
        config = self.config
        if x.ndim != 4 or x.shape[1] != config.in_channels:
            raise ValueError(f"x must be [batch {config.in_channels} height width], got {list(x.shape)}")
        if x.shape[2:] != config.input_size:
            height, width = config.input_size
            raise ValueError(f"x must be {height}x{width} for this U-Net, got {x.shape[2]}x{x.shape[3]}")
        if config.noise_embedding != (noise_labels is not None):
            want = "requires" if config.noise_embedding else "takes no"
            raise ValueError(f"noise_labels: this U-Net {want} noise labels (noise_embedding={config.noise_embedding})")
        emb = self.embed_noise(noise_labels) if noise_labels is not None else None

        skips = []
        for block in self.enc.values():
            x = block(x, emb) if isinstance(block, UNetBlock) else block(x)
            skips.append(x)
        for name, block in self.dec.items():
            if name.endswith("_aux_norm"):
                x = block(x)
            elif name.endswith("_aux_conv"):
                x = block(silu(x))
            else:
                if "_block" in name:
                    x = torch.cat([x, skips.pop()], dim=1)
                x = block(x, emb)
        return x


class GaussianMapNetwork(nn.Module):
    """`SongUNet` followed by a 1x1 conv over its output channels: image (+ noisy map) -> raw Gaussian map.

    Splatter Image's `SingleImageSongUNetPredictor` (`encoder`, `out`); the diffusion student reuses it with the
    noise embedding on. `out` starts as xavier-uniform with zero bias; teachers re-initialise its rows per
    channel group (`pixel_gaussians.init_output_conv_`).
    """

    def __init__(self, config: UNetConfig, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        self.encoder = SongUNet(config, generator=generator)
        self.out = nn.Conv2d(config.out_channels, config.out_channels, kernel_size=1)
        _xavier(self.out.weight, 1.0, generator)
        with torch.no_grad():
            self.out.bias.zero_()

    @property
    def config(self) -> UNetConfig:
        return self.encoder.config

    def forward(
        self,
        x: Float[Tensor, "batch channels height width"],
        noise_labels: Float[Tensor, " batch"] | Int[Tensor, " batch"] | None = None,
    ) -> Float[Tensor, "batch out_channels height width"]:
        return self.out(self.encoder(x, noise_labels))
