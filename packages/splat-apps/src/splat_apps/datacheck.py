"""What every reader shares: `DataError` (a malformed file or folder, named), a whole-dataset check report listing
every problem with its path, and the `--check-data PATH` command line that prints it."""

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class DataError(ValueError):
    """A malformed file or folder of a dataset; `path` names it and `problem` says what is wrong."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def given_folder(flag: str, path: str | Path, expected: str) -> Path:
    """`path` when it is a folder; otherwise a ValueError naming `flag` and what was `expected` there."""
    if not Path(path).is_dir():
        raise ValueError(f"{flag} {path}: no such folder (expected {expected})")
    return Path(path)


@dataclass(frozen=True)
class SplitCheck:
    """One split of a checked dataset: its folder, how many items (objects, sequences) and views were read, how many
    items the reader excludes on purpose, and every problem found."""

    split: str
    directory: Path | None = None
    items: int = 0
    views: int = 0
    excluded: int = 0
    problems: tuple[DataError, ...] = ()


@dataclass(frozen=True)
class DatasetCheck:
    root: Path
    title: str  # "SRN dataset <root> (category 'cars')"
    item_word: str  # "objects", "sequences"
    splits: tuple[SplitCheck, ...] = field(default_factory=tuple)

    @property
    def problems(self) -> tuple[DataError, ...]:
        return tuple(p for s in self.splits for p in s.problems)

    @property
    def ok(self) -> bool:
        return not self.problems


def format_check(check: DatasetCheck) -> str:
    """Plain-text summary of a `DatasetCheck` (one line per split, then one per problem)."""
    lines = [check.title]
    for split in check.splits:
        excluded = f"  excluded {split.excluded:4d}" if split.excluded else ""
        lines.append(
            f"  {split.split:5s}  {check.item_word} {split.items:6d}  views {split.views:8d}{excluded}"
            f"  problems {len(split.problems)}"
        )
    lines.extend(f"  problem: {problem}" for problem in check.problems)
    lines.append("OK" if check.ok else f"{len(check.problems)} problem(s)")
    return "\n".join(lines)


def print_check(check: DatasetCheck) -> None:
    """A `DatasetCheck` as a rich table, then its problems."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    table = Table(title=check.title)
    for column in ("split", "folder", check.item_word, "views", "excluded", "problems"):
        table.add_column(column, justify="left" if column in ("split", "folder") else "right")
    for split in check.splits:
        numbers = (split.items, split.views, split.excluded, len(split.problems))
        table.add_row(split.split, str(split.directory or "-"), *map(str, numbers))
    console.print(table)
    for problem in check.problems:
        console.print(f"[red]problem[/red] {escape(str(problem))}", highlight=False, soft_wrap=True)
    console.print("[green]OK[/green]" if check.ok else f"[red]{len(check.problems)} problem(s)[/red]")


def check_command(
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str,
    root_help: str,
    splits: Sequence[str],
    check: Callable[..., DatasetCheck],
    options: Sequence[tuple[str, dict]] = (),
) -> int:
    """`<prog> --check-data PATH [--split S ...] [--plain] [options]`: run `check(root, splits, **options)`, print
    the report, exit status 0 when the dataset has no problem. `options` are extra argparse arguments, passed to
    `check` by their destination name."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--check-data", type=Path, required=True, metavar="PATH", help=root_help)
    parser.add_argument("--split", action="append", choices=list(splits), help="split(s) to check (default: all)")
    parser.add_argument("--plain", action="store_true", help="plain-text output instead of a rich table")
    for flag, settings in options:
        parser.add_argument(flag, **settings)
    args = vars(parser.parse_args(argv))
    root, chosen, plain = args.pop("check_data"), args.pop("split") or list(splits), args.pop("plain")
    result = check(root, chosen, **args)
    if plain:
        print(format_check(result))
    else:
        print_check(result)
    return 0 if result.ok else 1
