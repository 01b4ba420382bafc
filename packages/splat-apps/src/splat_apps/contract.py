"""The app contract: what an app provides so that the generic `train`, `eval` and `sample` commands
(`splat_apps.commands`) run its experiments.

An app is a small object with

* its experiment type (a subclass of `splat_apps.Experiment`) and named presets;
* `data(experiment)`: its dataset — a real one given on the command line, or its built-in synthetic data (generated
  on first use from the app's scene description, see `splat_apps.synthetic`);
* `training_data(experiment, data)`: the stages' `BatchSource` (or one per stage) and a line describing the data;
* `teacher(experiment, data)`: a fresh teacher, or the given one (`experiment.given_teacher`);
* `protocol(experiment, data)`: its evaluation protocol (`EvaluationProtocol`: which views, how scores are grouped,
  the table and the paper's reference numbers);
* `sample_input(options, experiment, data, teacher)`: what `sample.py` turns into Gaussians (`SampleInput`), from the
  app's own `sample_options` (image file, intrinsics, which test item, ...).

The student is the same for every app (`model.student_unet` on the teacher's Gaussian map).
"""

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, TypeVar, runtime_checkable

from torch import Tensor, nn

from splat_render import Cameras, Gaussians
from splat_train import BatchSource, ViewBatch

from .views import ViewExample, collate

E = TypeVar("E")
D = TypeVar("D")


@dataclass(frozen=True)
class Column:
    """A table column: the mean of `metric` over the views of `slot` (per item, then over items)."""

    slot: str
    metric: str
    title: str
    digits: int = 2


@dataclass(frozen=True)
class Reference:
    """Published numbers shown beside a run's table: `values[(slot, metric)]`; columns without one show —."""

    name: str
    values: Mapping[tuple[str, str], float]


@dataclass(frozen=True)
class TableSpec:
    """How a protocol's summary is shown: the markdown table's columns, console tables (a title and the columns of
    each; default one table of all columns), the reference rows and the notes around them."""

    title: str  # the markdown heading (data, split, size, preset)
    columns: tuple[Column, ...]
    console: tuple[tuple[str, tuple[Column, ...]], ...] = ()
    references: tuple[Reference, ...] = ()
    reference_note: str = ""  # the sentence introducing the reference table (what they are, that they are not this run)
    note: str = ""  # printed after the tables (e.g. why the reference numbers are not comparable); "" for none


@dataclass(frozen=True)
class EvalBatch:
    """A batch of the protocol: the source images and every target view to render and score (targets may include
    the input view, scored in its own slot), the item of every batch element, the slot of every target view (the
    same for every element), the seed of the student samples' noise, and per-element grid file names."""

    batch: ViewBatch
    items: tuple[str, ...]
    slots: tuple[str, ...]
    seed: int
    grid_names: tuple[str, ...] = ()


@runtime_checkable
class EvaluationProtocol(Protocol):
    """An app's evaluation protocol over one split (see `splat_apps.evaluation.evaluate`)."""

    description: str  # what is evaluated, for the progress bar ("12 test objects")
    count: int  # batch elements in all (for the progress bar)
    input_slot: str | None  # the slot of the input view, left out of the grids' novel views (None: no such slot)
    grid_items: int  # comparison grids for the first N items
    grid_scale_to: int  # grid cells are upscaled (nearest) to at least this many pixels across
    slot_labels: Mapping[str, str]  # grid row labels per slot (empty: no row labels)
    info: Mapping[str, Any]  # extra entries of scores.json (split file, image size, ...)
    table: TableSpec
    transform: Callable[[Tensor], Tensor] | None  # applied to renders and ground truth before scoring (e.g. a crop)

    def batches(self) -> Iterator[EvalBatch]: ...


@dataclass(frozen=True)
class SampleInput:
    """What `sample.py` turns into Gaussians: a name (output folder), the source image and camera (and teacher
    inputs) as a `ViewBatch` (its targets are ignored), and the camera path its animations are rendered along, as a
    function of the Gaussians shown (e.g. a turntable about their centre)."""

    name: str
    batch: ViewBatch
    path: Callable[[Gaussians, int], Cameras]  # (gaussians, frames) -> cameras of batch 1 and `frames` views
    grid_scale_to: int = 96


class AppDefaults:
    """What most apps share, to subclass: the `cpu-demo` default preset, `--data` for `--data.root`, turntables."""

    default_preset = "cpu-demo"
    aliases: Mapping[str, str] = MappingProxyType({"--data": "--data.root"})
    animation = "turntables"


@runtime_checkable
class App(Protocol[E, D]):
    """What an app provides (see the module docstring)."""

    name: str  # short name: run directories `runs/<name>-<preset>`
    title: str  # for headings ("SRN", "Co3D", "RealEstate10K")
    experiment_type: type[E]
    presets: Mapping[str, Callable[[], E]]
    default_preset: str
    aliases: Mapping[str, str]  # short flags of train.py ({"--data": "--data.root"})
    sample_options: type  # the dataclass of sample.py's input options (flags without a prefix)
    animation: str  # what sample.py calls its animations ("turntables", "fly-throughs")

    def data(self, experiment: E) -> D: ...

    def training_data(self, experiment: E, data: D) -> tuple[BatchSource | Mapping[str, BatchSource], str]: ...

    def teacher(self, experiment: E, data: D) -> nn.Module: ...

    def protocol(self, experiment: E, data: D) -> EvaluationProtocol: ...

    def sample_input(self, options: Any, experiment: E, data: D, teacher: nn.Module) -> SampleInput: ...


def example_batch(example: ViewExample, slots: tuple[str, ...], seed: int, device: str, name: str) -> EvalBatch:
    """The protocol batch of one item: its example alone, each target view in its slot, its seed and grid name."""
    return EvalBatch(collate([example], device), items=(example.item,), slots=slots, seed=seed, grid_names=(name,))


def evaluated_items(available: int, limit: int | None, flag: str, what: str) -> int:
    """How many items a protocol evaluates: all `available` ones, or the first `limit`; a ValueError when none."""
    count = available if limit is None else min(limit, available)
    if count < 1:
        raise ValueError(f"nothing to evaluate: {what} ({flag} {limit})")
    return count


@dataclass(frozen=True)
class StaticProtocol:
    """An `EvaluationProtocol` from its parts (most apps need no class of their own)."""

    description: str
    count: int
    make_batches: Callable[[], Iterator[EvalBatch]]
    table: TableSpec
    input_slot: str | None = "input"
    grid_items: int = 4
    grid_scale_to: int = 96
    slot_labels: Mapping[str, str] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)
    transform: Callable[[Tensor], Tensor] | None = None

    def batches(self) -> Iterator[EvalBatch]:
        return self.make_batches()
