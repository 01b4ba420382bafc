"""The stage sequence of a run directory: one data source per stage, missing ones refused before any training, and
the weights of a stage that has not run named in one line."""

import pathlib
from dataclasses import dataclass, field

import pytest
import train_fixtures as F

from splat_train import BootstrapConfig, DiffusionConfig, LoopConfig, MultistepConfig, TeacherStageConfig
from splat_train.batch import ViewBatch
from splat_train.runs import StageConfigs, run_stages, stage_weights


@dataclass
class _Counting:
    """A `BatchSource` of `objects` that records (stage, batch size) at every batch it makes."""

    stage: str
    objects: list[int]
    calls: list[tuple[str, int]] = field(default_factory=list)

    @property
    def num_items(self) -> int:
        return len(self.objects)

    @property
    def batch_size(self) -> int:
        return len(self.objects)

    def make_batch(self, items, seeds) -> ViewBatch:
        self.calls.append((self.stage, len(items)))
        return F.batch([self.objects[i] for i in items], angles=(0.0, 40.0))


def test_run_stages_takes_one_source_per_stage(tmp_path: pathlib.Path) -> None:
    """A mapping stage → source feeds each stage (and the normalizer, bootstrap batches) its own batches."""
    calls: list[tuple[str, int]] = []
    loop = LoopConfig(max_steps=1, log_every=1, progress=False, ema_start=0)
    configs = StageConfigs(
        TeacherStageConfig(loop=loop),
        BootstrapConfig(loop=loop),
        MultistepConfig(loop=loop),
        diffusion=DiffusionConfig(ddim_steps=2),
        normalizer_batches=2,
    )
    sources = {"teacher": _Counting("teacher", [0, 1, 2], calls), "bootstrap": _Counting("bootstrap", [0, 1], calls)}
    with pytest.raises(ValueError, match="no source for stage 'multistep'"):
        run_stages("all", tmp_path, F.tiny_teacher(), F.tiny_student, sources, configs)
    assert calls == [] and not (tmp_path / "checkpoints").exists()  # refused before training anything
    sources["multistep"] = _Counting("multistep", [3], calls)
    _, student = run_stages("all", tmp_path / "run", F.tiny_teacher(), F.tiny_student, sources, configs)
    assert student is not None
    assert calls == [("teacher", 3), ("bootstrap", 2), ("bootstrap", 2), ("bootstrap", 2), ("multistep", 1)]


def test_the_weights_of_a_stage_that_has_not_run_are_a_clear_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match=r"no bootstrap checkpoint yet \(run that stage first: --stage bootstrap\)"):
        stage_weights(tmp_path, "bootstrap")
