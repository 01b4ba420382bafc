"""The Splatter Image Co3D protocol (`eval.py`, `datasets/co3d.py`): test split; input = the first frame of each
sequence (view 0), also scored as the first target in its own slot `input`; targets = every other frame whose ground
truth is not all black (slot `novel`); full images on a black background, unclamped renders; per-sequence means over
the novel views, then the mean over sequences. The paper's numbers are shown beside the table, with a note whenever
they are not comparable (synthetic data, another category or split).
"""

from collections.abc import Iterator

from splat_apps import Column, EvalBatch, Reference, StaticProtocol, TableSpec
from splat_apps.contract import evaluated_items, example_batch

from .data import Co3DDataset, image_size
from .experiment import Co3DExperiment

PAPER_CATEGORY = "hydrant"
COLUMNS = (
    Column("novel", "psnr", "PSNR ↑", 2),
    Column("novel", "ssim", "SSIM ↑", 3),
    Column("novel", "lpips", "LPIPS ↓", 3),
    Column("input", "psnr", "PSNR (input view)", 2),
)


def _paper(psnr: float, lpips: float) -> dict[tuple[str, str], float]:
    return {("novel", "psnr"): psnr, ("novel", "lpips"): lpips}


# Published numbers ("A Lesson in Splats", real Co3D hydrant, 128x128 test split; the paper gives no SSIM here).
PAPER = (
    Reference("A Lesson in Splats (paper)", _paper(22.34, 0.149)),
    Reference("Splatter Image (paper)", _paper(21.77, 0.154)),
    Reference("ViewSet Diffusion (paper)", _paper(21.24, 0.201)),
)
REFERENCE_NOTE = (
    "The paper's published numbers (A Lesson in Splats, real Co3D hydrant, 128x128 test split; copied from the "
    "paper, not produced by this run):"
)


def not_comparable(synthetic: bool, dataset: Co3DDataset, size: int) -> str:
    """Why the paper's numbers do not apply to this run ("" when they do: real Co3D hydrant, test split)."""
    if synthetic:
        reason = "this run is on synthetic hydrant-like objects, not Co3D"
    elif dataset.category != PAPER_CATEGORY or dataset.split != "test":
        reason = f"this run is Co3D {dataset.category}, {dataset.split} split, {size}px"
    else:
        return ""
    return f"Not comparable: {reason}; the paper's numbers above are for reference only."


def table_spec(experiment: Co3DExperiment, dataset: Co3DDataset, sequences: int) -> TableSpec:
    synthetic = experiment.data.root is None
    size = image_size(dataset)
    data = "synthetic hydrant-like sequences" if synthetic else f"Co3D {dataset.category}"
    title = f"{data} ({dataset.split} split, {sequences} sequences, {size}px, preset {experiment.preset})"
    return TableSpec(
        title,
        COLUMNS,
        references=PAPER,
        reference_note=REFERENCE_NOTE,
        note=not_comparable(synthetic, dataset, size),
    )


def protocol(experiment: Co3DExperiment, dataset: Co3DDataset) -> StaticProtocol:
    """One batch per sequence (seeded by its index): the input view first, in slot `input`, then its novel views."""
    config = experiment.eval
    count = evaluated_items(len(dataset), config.max_sequences, "--max-sequences", repr(dataset))

    def batches() -> Iterator[EvalBatch]:
        for index in range(count):
            example = dataset.evaluation_example(index)  # input view 0 (also the first target), no black targets
            slots = ("input",) + ("novel",) * (example.target_images.shape[0] - 1)
            yield example_batch(example, slots, index, experiment.device, example.item[:24])

    return StaticProtocol(
        description=f"{count} {dataset.split} sequences",
        count=count,
        table=table_spec(experiment, dataset, count),
        make_batches=batches,
        info={"split": dataset.split, "image_size": image_size(dataset)},
        grid_items=config.grid_sequences,
    )
