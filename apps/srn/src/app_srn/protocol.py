"""The SRN evaluation protocol (pixelNeRF / Splatter Image): input view 64 of the 251-view test spiral (the same
point of a shorter spiral for the synthetic data), every other view a target; per-object means over the novel views,
then the mean over objects; the input view scored in its own slot. The published numbers are shown beside the table.
"""

from collections.abc import Iterator

from splat_apps import Column, EvalBatch, Reference, StaticProtocol, TableSpec
from splat_apps.contract import evaluated_items, example_batch

from .data import SRNDataset, default_input_view
from .experiment import SRNExperiment

COLUMNS = (
    Column("novel", "psnr", "PSNR ↑", 2),
    Column("novel", "ssim", "SSIM ↑", 3),
    Column("novel", "lpips", "LPIPS ↓", 3),
    Column("input", "psnr", "PSNR (input view)", 2),
)


def _paper(psnr: float, ssim: float, lpips: float) -> dict[tuple[str, str], float]:
    return {("novel", "psnr"): psnr, ("novel", "ssim"): ssim, ("novel", "lpips"): lpips}


# Published numbers (real ShapeNet-SRN, 128x128, test split), for reference only.
PAPER = {
    "cars": (
        Reference("A Lesson in Splats (Medium), paper", _paper(24.84, 0.93, 0.077)),
        Reference("Splatter Image (Large), paper", _paper(24.00, 0.92, 0.078)),
    ),
    "chairs": (
        Reference("A Lesson in Splats (Medium), paper", _paper(25.21, 0.93, 0.066)),
        Reference("Splatter Image (Large), paper", _paper(24.43, 0.93, 0.067)),
    ),
}


def table_spec(experiment: SRNExperiment, dataset: SRNDataset, objects: int) -> TableSpec:
    title = (
        f"SRN {dataset.category} ({dataset.split} split, {objects} objects, {dataset.resolution or 128}px, "
        f"preset {experiment.preset})"
    )
    reference = PAPER.get(dataset.category, ())
    note = ""
    if not reference:
        note = (
            "These are synthetic objects, not ShapeNet: the paper's numbers (cars: student 24.84 / 0.93 / 0.077 vs "
            "Splatter Image 24.00 / 0.92 / 0.078; chairs: 25.21 vs 24.43 PSNR) are not comparable to this table."
        )
    intro = "For reference, the published numbers (real ShapeNet-SRN, 128x128 test split; not this run):"
    return TableSpec(title, COLUMNS, references=reference, reference_note=intro, note=note)


def protocol(experiment: SRNExperiment, dataset: SRNDataset) -> StaticProtocol:
    config = experiment.eval
    count = evaluated_items(len(dataset), config.max_objects, "--max-objects", repr(dataset))

    def batches() -> Iterator[EvalBatch]:
        for index in range(count):
            example = dataset.evaluation_example(index, default_input_view(dataset.num_views(index)), score_input=True)
            slots = ("novel",) * (example.target_images.shape[0] - 1) + ("input",)  # the input view scored last
            yield example_batch(example, slots, index, experiment.device, example.item[:12])

    return StaticProtocol(
        description=f"{count} {dataset.split} objects",
        count=count,
        make_batches=batches,
        table=table_spec(experiment, dataset, count),
        grid_items=config.grid_objects,
    )
