"""Training progress on the console: a rich progress bar per stage on a terminal; one plain line per logged step
otherwise (SLURM, `nohup`, a pipe), so a log file shows a run's progress while it runs."""

import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from splat_train import LoopProgress


def status_text(record: dict) -> str:
    return f"loss {record['loss']:.4g} · {record['steps_per_s']:.2f} it/s"


class ProgressDisplay:
    """A `splat_train.run_loop` progress callback writing to `console`; use it as a context manager."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.interactive = console.is_terminal
        self._bar: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._started: dict[str, tuple[float, int]] = {}

    def __enter__(self) -> "ProgressDisplay":
        if self.interactive:
            self._bar = Progress(
                TextColumn("[bold]{task.description}[/bold]"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._bar.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, update: LoopProgress) -> None:
        if update.stage not in self._started:
            self._started[update.stage] = (time.perf_counter(), update.step)
            if self._bar is not None:
                self._tasks[update.stage] = self._bar.add_task(
                    update.stage, total=update.total, completed=update.step, status=""
                )
        if self._bar is not None:
            status = {} if update.record is None else {"status": status_text(update.record)}
            self._bar.update(self._tasks[update.stage], completed=update.step, **status)
        elif update.record is not None:
            self.console.print(self.plain_line(update), highlight=False)

    def plain_line(self, update: LoopProgress) -> str:
        """`<stage> <step>/<total> · loss … · … it/s · ETA …` for a log without a terminal."""
        started, first = self._started[update.stage]
        done = update.step - first
        elapsed = time.perf_counter() - started
        left = (update.total - update.step) * elapsed / done if done > 0 else float("nan")
        eta = f"{left / 60:.1f} min" if left == left else "?"
        return f"{update.stage} {update.step}/{update.total} · {status_text(update.record)} · ETA {eta}"
