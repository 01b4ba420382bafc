"""The RealEstate10K experiment and its presets (`cpu-demo`, `re10k`). The image size of a run is the teacher's
(`--model.teacher.height/width`; Flash3D: 256×384): every frame is resized to it. Flash3D renders on a random colour
in training and on grey 0.5 at evaluation; here every stage and the evaluation use grey 0.5 (`--background`)."""

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from splat_apps import EvalOptions, Experiment
from splat_apps.experiment import demo_loop
from splat_teachers import Flash3DConfig, MonocularDepthConfig, ResNetConfig, UNetConfig, flash3d_preset, unet_preset
from splat_train import Background, BootstrapConfig, LoopConfig, MultistepConfig, TeacherStageConfig

from .synthetic import SyntheticOptions

GREY: Background = (0.5, 0.5, 0.5)  # Flash3D's evaluation background


@dataclass(frozen=True)
class DataConfig:
    root: Path | None = None  # RealEstate10K root holding train/ and test/ (either layout); None: synthetic scenes
    split_file: Path | None = None  # evaluation rows `key src tgt5 tgt10 tgt_rand` (None: <root>/test_files.txt)
    synthetic: SyntheticOptions = SyntheticOptions()  # the built-in scenes (used when root is None)
    cache_dir: Path | None = None  # where the synthetic scenes are generated (None: <repo>/data/synthetic)
    batch_size: int = 4  # scenes per step (and process, under torchrun) of the teacher and the bootstrap stage
    multistep_batch_size: int = 2  # scenes per step (and process) of the multi-step stage (the paper: 100 → 10)
    num_targets: int = 3  # novel frames per scene (Flash3D: 3), at random distinct offsets within ±max_offset
    max_offset: int = 30
    render_source: bool = True  # the source frame is rendered and supervised too (Flash3D renders frame 0)
    cached_chunks: int = 2  # pixelSplat chunks kept in memory (~100 MB each for the real data)


@dataclass(frozen=True)
class ModelConfig:
    teacher: Flash3DConfig = flash3d_preset("re10k")  # its height/width is the image size of the whole run
    depth: Literal["learned", "unidepth"] = "learned"  # the built-in depth head (trained from images alone), or
    # Flash3D's frozen UniDepth v1 through torch.hub (needs network access or a populated hub cache)
    pretrained_encoder: bool = False  # ImageNet weights for the teacher's ResNet (local torch hub cache; Flash3D: yes)
    student_unet: UNetConfig = unet_preset("medium")  # size and in/out channels are taken from the teacher's map


@dataclass(frozen=True)
class EvalConfig(EvalOptions):
    split: str = "test"  # the dataset split the split file indexes
    split_file: Path | None = None  # rows `key src tgt5 tgt10 tgt_rand` to evaluate (None: the run's data.split_file)
    max_rows: int | None = None  # evaluate only the first N rows of the split file (None: all)
    batch_size: int = 4  # rows per forward pass (samples are seeded per batch: results depend on it slightly)
    grid_rows: int = 4  # comparison grids for the first N rows


@dataclass(frozen=True)
class RE10KExperiment(Experiment):
    """Everything a RealEstate10K run needs. Start from a preset (`--preset`); every field can be overridden."""

    run_dir: Path = Path("runs/re10k-cpu-demo")  # config, checkpoints, metrics.jsonl, eval tables and pictures
    background: Background = GREY  # RGB behind every render: training stages and evaluation (Flash3D: grey)
    teacher_weights: Path | None = None  # a teacher checkpoint of this app (another run's checkpoints/teacher/
    # step_*.safetensors, EMA weights) instead of training one; the same teacher config is required
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    eval: EvalConfig = EvalConfig()

    @property
    def given_teacher(self) -> Path | None:
        return self.teacher_weights

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of every frame of the run: the teacher's."""
        return self.model.teacher.height, self.model.teacher.width


RESNET10 = ResNetConfig("basic", (1, 1, 1, 1))


def _cpu_demo() -> RE10KExperiment:
    """About 15 minutes on 2 CPU cores: 64×96 synthetic rooms, a small Flash3D (ResNet-10 encoders, narrow decoders,
    its learned depth head, 2 Gaussians per pixel, no padding), a small student on its 64×96 map, short stages."""
    height, width = 64, 96
    decoder = (8, 8, 16, 16, 32)
    teacher = Flash3DConfig(
        height=height,
        width=width,
        padding=0,  # Flash3D pads by 32 px: at 64x96 a 50% border, 3.3x the Gaussians and ~2.5x the time on CPU
        encoder=RESNET10,
        decoder_channels=decoder,
        depth_decoder_channels=decoder,
        depth_head=MonocularDepthConfig(encoder=RESNET10, decoder_channels=decoder, min_depth=0.1, max_depth=20.0),
    )
    student = UNetConfig(
        model_channels=16,
        channel_mult=(1, 2, 2, 2),
        num_blocks=1,
        attn_resolutions=(8,),  # the coarsest level of the 64-row map
        dropout=0.0,
        noise_embedding=True,
    )
    return RE10KExperiment(
        preset="cpu-demo",
        run_dir=Path("runs/re10k-cpu-demo"),
        normalizer_batches=8,
        data=DataConfig(
            synthetic=SyntheticOptions(height=height, width=width, train_scenes=20, test_scenes=6, frames=60),
            cached_chunks=4,
        ),
        model=ModelConfig(teacher=teacher, student_unet=student),
        teacher=TeacherStageConfig(loop=demo_loop(300, 100, 0.98, 50), learning_rate=5e-4, adam_eps=1e-8),
        bootstrap=BootstrapConfig(loop=demo_loop(120, 40, 0.95, 20), learning_rate=1e-3),
        multistep=MultistepConfig(loop=demo_loop(20, 10, 0.9, 5), learning_rate=1e-4),
        eval=EvalConfig(batch_size=6, num_samples=2, grid_rows=3),
    )


def _paper() -> RE10KExperiment:
    """The paper's setting on a GPU: 256×384 frames, Flash3D's `layered_re10k` teacher (ResNet-50, 2 Gaussians per
    pixel on the 320×448 padded grid, ImageNet encoder), the Medium student on that grid."""
    student = replace(unet_preset("medium"), attn_resolutions=(40,))  # the coarsest level of the 320-row map
    return RE10KExperiment(
        preset="re10k",
        run_dir=Path("runs/re10k"),
        device="cuda",
        data=DataConfig(batch_size=16, multistep_batch_size=4, num_targets=3),
        model=ModelConfig(teacher=flash3d_preset("re10k"), pretrained_encoder=True, student_unet=student),
        teacher=TeacherStageConfig(  # Flash3D: Adam 1e-4, batch 16, EMA 0.9999 every 10 steps, LPIPS after 50k steps
            loop=LoopConfig(max_steps=300_000, checkpoint_every=5000),
            learning_rate=1e-4,
            adam_eps=1e-8,
            lpips_weight=0.01,
            lpips_start_step=50_000,
        ),
        bootstrap=BootstrapConfig(loop=LoopConfig(max_steps=100_000, checkpoint_every=2000)),
        multistep=MultistepConfig(loop=LoopConfig(max_steps=20_000, checkpoint_every=1000)),
        eval=EvalConfig(batch_size=8, num_samples=4),
    )


PRESETS = {"cpu-demo": _cpu_demo, "re10k": _paper}
