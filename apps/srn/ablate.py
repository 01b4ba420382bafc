"""The paper's ablation table on the study's toy cars, with our numbers beside the paper's (SRN cars val).

    uv run apps/srn/ablate.py OUT_DIR [--teacher CKPT] [--teacher-steps 3000] [--jobs 2] [--rows s2_map,...] [SRN flags]

One teacher (trained here for --teacher-steps, or given) serves every row; stage-2 rows start from their stage-1
row's weights (`app_srn.ablation`). Scores are on the 32 validation objects, never on test. About an hour on two
CPU cores with the defaults (two rows at a time); interrupted, the same command resumes, and finished rows are not
run again. Writes OUT_DIR/ablation.md and OUT_DIR/ablation.json."""

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from app_srn.ablation import COMPARISON_HEADER, ROW_HEADER, ablation_tables, markdown, run_ablation
from splat_apps.commands import one_line_errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--teacher", type=Path, default=None, help="a teacher checkpoint to use instead of training")
    parser.add_argument("--teacher-steps", type=int, default=3000)
    parser.add_argument("--jobs", type=int, default=2, help="rows trained at once, one CPU thread each")
    parser.add_argument("--rows", type=lambda text: tuple(text.split(",")), default=None, help="only these rows")
    arguments, flags = parser.parse_known_args()
    console = Console()

    def run() -> None:
        started = time.time()
        results = run_ablation(
            arguments.out_dir, flags, teacher_checkpoint=arguments.teacher, teacher_steps=arguments.teacher_steps,
            jobs=arguments.jobs, rows=arguments.rows, report=lambda line: console.print(line, highlight=False),
        )  # fmt: skip
        rows, comparisons = ablation_tables(results)
        for title, header, cells in (("rows", ROW_HEADER, rows), ("comparisons", COMPARISON_HEADER, comparisons)):
            table = Table(title=f"ablation: {title}")
            for column in header:
                table.add_column(column)
            for cells_of_row in cells:
                table.add_row(*cells_of_row)
            console.print(table)
        command = shlex.join(["uv", "run", "apps/srn/ablate.py", *sys.argv[1:]])
        text = f"`{command}` ({time.time() - started:.0f} s)\n\n{markdown(ROW_HEADER, rows)}\n\n"
        (arguments.out_dir / "ablation.md").write_text(text + markdown(COMPARISON_HEADER, comparisons) + "\n")
        summary = {name: {k: v for k, v in result.items() if k != "per_item"} for name, result in results.items()}
        (arguments.out_dir / "ablation.json").write_text(json.dumps({"rows": summary, "comparisons": comparisons}))

    return one_line_errors(run, console)


if __name__ == "__main__":
    sys.exit(main())
