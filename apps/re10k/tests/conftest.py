"""The small synthetic RealEstate10K dataset the tests share (generated once per session into a temporary folder),
and the cpu-demo experiment reading it at 32×64. Shape checking of `app_re10k` comes from pytest's
`--jaxtyping-packages` (see noxfile.py)."""

from dataclasses import replace

import pytest
from re10k_testdata import SMALL

from app_re10k.data import ChunkDataset, FrameSequence
from app_re10k.experiment import PRESETS, RE10KExperiment
from app_re10k.synthetic import SyntheticDataset, generate_synthetic


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    return generate_synthetic(SMALL, tmp_path_factory.mktemp("synthetic"))


@pytest.fixture
def sequence(small_dataset: SyntheticDataset) -> FrameSequence:
    """The first clip (in key order) of the small dataset's train split, read from its chunks."""
    dataset = ChunkDataset(small_dataset.chunks, "train")
    return dataset[min(dataset.keys())]


@pytest.fixture
def experiment(small_dataset: SyntheticDataset) -> RE10KExperiment:
    """The cpu-demo preset on the small dataset (32×48 frames), resized to a 32×64 teacher."""
    demo = PRESETS["cpu-demo"]()
    data = replace(demo.data, synthetic=small_dataset.options, cache_dir=small_dataset.root.parent)
    model = replace(demo.model, teacher=replace(demo.model.teacher, height=32, width=64))
    return replace(demo, data=data, model=model)
