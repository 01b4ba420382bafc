"""Flash3D's RealEstate10K evaluation as a `splat_apps.StaticProtocol`: the rows of a split file, `batch_size` rows
per batch; per row the source frame is the input and its four views (src, +5, +10, ±30) are scored in their slots on
5%-border-cropped images. A row is an item, so a slot's mean is the mean over rows (Flash3D `evaluate.py`); the
student's samples are seeded by the index of the batch's first row."""

from collections.abc import Iterator, Sequence
from pathlib import Path

from splat_apps import Column, EvalBatch, Reference, StaticProtocol, TableSpec, collate

from .data import DataSource, SequenceDataset
from .experiment import GREY, RE10KExperiment
from .protocol import SLOT_LABELS, TARGET_SLOTS, VIEW_SLOTS, SplitRow, crop_border, load_split_example, read_split

SPLIT_FILE_HINT = (
    "Flash3D's splits/re10k_mine_filtered/test_files.txt, or write one with apps/re10k/protocol.py; "
    "pass it with --data.split-file, or --split-file to eval.py"
)
METRICS = (("psnr", "PSNR ↑", 2), ("ssim", "SSIM ↑", 3), ("lpips", "LPIPS ↓", 3))
COLUMNS = (
    *(
        Column(slot, metric, f"{title} {SLOT_LABELS[slot]}", digits)
        for metric, title, digits in METRICS
        for slot in TARGET_SLOTS
    ),
    Column("src", "psnr", "PSNR source", 2),
)
# One console table per metric, the slots as columns (PSNR also for the source view).
CONSOLE = tuple(
    (
        f"{title} (RealEstate10K protocol, 5% border crop)",
        tuple(Column(c.slot, c.metric, SLOT_LABELS[c.slot], c.digits) for c in COLUMNS if c.metric == metric),
    )
    for metric, title, _ in METRICS
)


def _reported(name: str, psnr: tuple[float, float, float], ssim: float, lpips: float) -> Reference:
    """Published numbers (real RealEstate10K, 256×384, Flash3D's test split): PSNR of every slot, SSIM / LPIPS at +5."""
    values = {(slot, "psnr"): value for slot, value in zip(TARGET_SLOTS, psnr, strict=True)}
    return Reference(name, {**values, ("tgt5", "ssim"): ssim, ("tgt5", "lpips"): lpips})


PAPER = (
    _reported("A Lesson in Splats, paper", (29.12, 26.54, 25.40), 0.932, 0.087),
    _reported("Flash3D, paper", (28.46, 25.94, 24.93), 0.899, 0.100),
)
REFERENCE_NOTE = (
    "Published numbers, for reference (the paper's Table: real RealEstate10K at 256x384 on Flash3D's test split; "
    "not this run; — = not reported):"
)
SYNTHETIC_NOTE = (
    "This run used synthetic rooms, not RealEstate10K, at a different image size and with small networks: "
    "its numbers are not comparable to the paper's."
)


def evaluation_split_file(experiment: RE10KExperiment, source: DataSource) -> Path:
    """The split file evaluated: `--eval.split-file` (eval.py's `--split-file`) if given, else the run's."""
    return Path(experiment.eval.split_file) if experiment.eval.split_file is not None else source.split_file


def row_items(rows: Sequence[SplitRow]) -> tuple[str, ...]:
    """A unique item name per row: its line (`key src tgt5 tgt10 tgt_rand`), with `#<row number>` after a repeat."""
    seen: set[str] = set()
    items = []
    for number, row in enumerate(rows, start=1):
        item = row.line() if row.line() not in seen else f"{row.line()} #{number}"
        seen.add(item)
        items.append(item)
    return tuple(items)


def table_spec(experiment: RE10KExperiment, source: DataSource, split_file: Path, rows: int) -> TableSpec:
    height, width = experiment.image_size
    data = "synthetic rooms" if source.synthetic else f"{source.root}"
    background = "grey background" if tuple(experiment.background) == GREY else f"background {experiment.background}"
    title = (
        f"RealEstate10K ({data}; {rows} rows of {split_file.name}, {height}x{width}, 5% border crop, {background}, "
        f"preset {experiment.preset})"
    )
    note = SYNTHETIC_NOTE if source.synthetic else ""
    return TableSpec(title, COLUMNS, console=CONSOLE, references=PAPER, reference_note=REFERENCE_NOTE, note=note)


def protocol(experiment: RE10KExperiment, source: DataSource, dataset: SequenceDataset) -> StaticProtocol:
    """The protocol over the rows of the evaluated split file, reading frames from `dataset` (the eval split)."""
    config = experiment.eval
    if config.batch_size < 1:
        raise ValueError(f"--eval.batch-size must be positive, got {config.batch_size}")
    split_file = evaluation_split_file(experiment, source)
    if not split_file.is_file():
        raise ValueError(f"{split_file}: evaluation split file not found ({SPLIT_FILE_HINT})")
    rows = read_split(split_file)
    if not rows:
        raise ValueError(f"{split_file}: no rows")
    rows = rows[: config.max_rows]  # None: all
    items = row_items(rows)

    def batches() -> Iterator[EvalBatch]:
        for start in range(0, len(rows), config.batch_size):
            chosen = range(start, min(start + config.batch_size, len(rows)))
            examples = []
            for index in chosen:
                row = rows[index]
                try:
                    examples.append(load_split_example(dataset[row.key], row, experiment.image_size))
                except (KeyError, ValueError) as error:
                    reason = error.args[0] if isinstance(error, KeyError) and error.args else error
                    raise ValueError(f"{split_file}: row {index + 1} ({row.line()}): {reason}") from None
            yield EvalBatch(
                batch=collate(examples, experiment.device),
                items=tuple(items[i] for i in chosen),
                slots=VIEW_SLOTS,
                seed=start,
                grid_names=tuple(f"{rows[i].key[:16]}_{rows[i].src}" for i in chosen),
            )

    return StaticProtocol(
        description=f"{len(rows)} rows of {split_file.name}",
        count=len(rows),
        make_batches=batches,
        table=table_spec(experiment, source, split_file, len(rows)),
        input_slot="src",
        grid_items=config.grid_rows,
        grid_scale_to=192,
        slot_labels=SLOT_LABELS,
        info={"split_file": str(split_file), "image_size": list(experiment.image_size), "synthetic": source.synthetic},
        transform=crop_border,
    )
