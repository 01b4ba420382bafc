"""The command line of an experiment: `--preset NAME` picks the defaults (read first), then tyro parses every field
of the experiment dataclass as a flag (`--bootstrap.loop.max-steps 100`), with short aliases (`--data PATH` for
`--data.root PATH`) and the flags of older versions mapped to today's fields."""

import argparse
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

# Flags of older versions (each student stage had its own diffusion config, each stage its own background):
# today one `--diffusion.*` and one `--background` serve every stage. Keys ending in "." map flag prefixes.
LEGACY_ALIASES = {
    "--bootstrap.diffusion.": "--diffusion.",
    "--multistep.diffusion.": "--diffusion.",
    "--teacher.background": "--background",
    "--bootstrap.background": "--background",
    "--multistep.background": "--background",
    "--eval.background": "--background",
}


def expand_aliases(argv: Sequence[str], aliases: Mapping[str, str]) -> list[str]:
    """`argv` with every alias flag (`--data`, `--data=...`) replaced by its full name; an alias ending in "."
    replaces that prefix of any flag (`--bootstrap.diffusion.t-star` → `--diffusion.t-star`)."""
    expanded = []
    for argument in argv:
        for short, full in aliases.items():
            if short.endswith("."):
                if argument.startswith(short):
                    argument = full + argument[len(short) :]
                    break
            elif argument == short or argument.startswith(short + "="):
                argument = full + argument[len(short) :]
                break
        expanded.append(argument)
    return expanded


def parse_experiment(
    experiment_type: type,
    presets: Mapping[str, Callable[[], Any]],
    argv: Sequence[str],
    *,
    default_preset: str,
    description: str,
    aliases: Mapping[str, str] | None = None,
    run_dir_pattern: str | None = None,
) -> Any:
    """Parse an experiment whose defaults come from `--preset NAME`; every field can then be overridden. `aliases`
    maps short flags to tyro's (`{"--data": "--data.root"}`); `run_dir_pattern` (e.g. "runs/srn-{preset}") names
    the run directory after the preset unless `--run-dir` is given. `--help` lists the presets."""
    import tyro

    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--preset", default=default_preset, choices=sorted(presets))
    known, _ = early.parse_known_args(list(argv))
    arguments = expand_aliases(argv, {**LEGACY_ALIASES, **(aliases or {})})
    default = presets[known.preset]()
    if run_dir_pattern is not None and not any(a == "--run-dir" or a.startswith("--run-dir=") for a in arguments):
        default = dataclasses.replace(default, run_dir=Path(run_dir_pattern.format(preset=known.preset)))
    choices = ", ".join(f"{name} (default)" if name == default_preset else name for name in presets)
    shorts = "; ".join(f"{short} for {full}" for short, full in (aliases or {}).items())
    epilog = f"\n\nPresets (--preset NAME, read first; the defaults shown are the preset's): {choices}."
    if shorts:
        epilog += f" Short flags: {shorts}."
    return tyro.cli(experiment_type, default=default, args=arguments, description=description.rstrip() + epilog)
