"""splat-apps: what every lesson-splats app shares — the app contract, the experiment config and its command line,
run directories, the generic `train` / `eval` / `sample` commands, evaluation tables and pictures, the camera and
view toolkit, and the synthetic-data core. An app supplies only its presets, reader, protocol and scene content."""

from .commands import eval_main, sample_main, train_main
from .contract import App, Column, EvalBatch, EvaluationProtocol, Reference, SampleInput, StaticProtocol, TableSpec
from .experiment import EvalOptions, Experiment, build_student, load_trained_models, training_fields
from .views import (
    ViewExample,
    collate,
    evaluation_view_indices,
    make_example,
    relative_world_to_cam,
    resize_images,
    sample_view_indices,
    with_planes,
)

__all__ = [
    "App",
    "Column",
    "EvalBatch",
    "EvalOptions",
    "EvaluationProtocol",
    "Experiment",
    "Reference",
    "SampleInput",
    "StaticProtocol",
    "TableSpec",
    "ViewExample",
    "build_student",
    "collate",
    "eval_main",
    "evaluation_view_indices",
    "load_trained_models",
    "make_example",
    "relative_world_to_cam",
    "resize_images",
    "sample_main",
    "sample_view_indices",
    "train_main",
    "training_fields",
    "with_planes",
]
