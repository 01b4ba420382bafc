"""Training you can watch in TensorBoard: `tensorboard --logdir runs/` shows every run directory's `tensorboard/`.

`TensorBoardLog` is a `splat_train.run_loop` progress callback: each logged record's numbers (every loss term, the
learning rate, the gradient norm, steps/s) become scalars `<stage>/<name>` at the stage's step, the same values as
`metrics.jsonl`. After evaluation, `add_evaluation` adds the table's scores (`eval/<split>/<method>/<slot>/<metric>`)
and the comparison grids as images. Only the main process writes; the writer opens on first use."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from splat_train import LoopProgress

NOT_SCALARS = frozenset({"stage", "step", "time", "world_size"})


class TensorBoardLog:
    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self._writer = None

    @property
    def writer(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.log_dir))
        return self._writer

    def __call__(self, update: LoopProgress) -> None:
        if update.record is None:
            return
        for name, value in update.record.items():
            if name not in NOT_SCALARS and isinstance(value, int | float) and not isinstance(value, bool):
                self.writer.add_scalar(f"{update.stage}/{name}", value, update.step)

    def add_evaluation(self, split: str, summary: Mapping[str, Any], grids: list[Path], step: int = 0) -> None:
        """The evaluation table's means and the comparison grids (input | teacher | samples | ground truth)."""
        for method, slots in summary.items():
            for slot, metrics in slots.items():
                for metric, value in metrics.items():
                    if metric != "items" and isinstance(value, int | float) and value == value:
                        self.writer.add_scalar(f"eval/{split}/{method}/{slot}/{metric}", value, step)
        for path in grids:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
            self.writer.add_image(f"eval/{split}/{path.stem}", pixels, step, dataformats="HWC")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
