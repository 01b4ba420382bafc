"""Sessions: `tests` (pytest over every package and app, shape-checked), `benchmarks` (quick by default,
`-- --full` for the real sizes) and `lint` (ruff). Every session installs exactly `uv.lock` (`uv sync --locked`);
nothing is re-resolved.

    uvx nox -s tests
    uvx nox -s tests -- -k render          # extra arguments go to pytest
    uvx nox -s benchmarks                  # quick sizes
    uvx nox -s benchmarks -- --full        # the sizes of benchmarks/RESULTS.md
"""

import pathlib

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

ROOT = pathlib.Path(__file__).parent
# Our packages, shape-checked by beartype through jaxtyping's import hook (STYLE.md §6, §8).
CHECKED = [
    "splat_render",
    "splat_diffusion",
    "splat_teachers",
    "splat_train",
    "splat_apps",
    "app_srn",
    "app_co3d",
    "app_re10k",
]
TEST_DIRS = [
    *sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("packages/*/tests")),
    *sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("apps/*/tests")),
    "tests",
]


def sync(session: nox.Session) -> None:
    session.run_install(
        "uv",
        "sync",
        "--locked",
        "--all-packages",
        "--group",
        "dev",
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
        external=True,
    )


@nox.session
def tests(session: nox.Session) -> None:
    """Each test directory runs in its own pytest process (packages are tested in isolation)."""
    sync(session)
    hook = "--jaxtyping-packages=" + ",".join([*CHECKED, "beartype.beartype"])
    for test_dir in TEST_DIRS:
        if (ROOT / test_dir).is_dir():
            session.run("pytest", test_dir, hook, *session.posargs)


@nox.session
def benchmarks(session: nox.Session) -> None:
    """Run every benchmarks/*.py script; quick sizes unless `-- --full`."""
    sync(session)
    mode = "--full" if "--full" in session.posargs else "--quick"
    for script in sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_")):
        session.run("python", str(script.relative_to(ROOT)), mode)


@nox.session
def lint(session: nox.Session) -> None:
    sync(session)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
