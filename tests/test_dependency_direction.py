"""Dependencies point down only (DESIGN.md): apps -> splat-apps -> splat-train -> {splat-teachers, splat-diffusion}
-> splat-render; every package and app imports only what its pyproject.toml declares (optional extras count as
declared: the package imports them on use); and test modules have names unique across the repository, so one
pytest process can collect every test folder."""

import ast
import pathlib
import sys
import tomllib
from collections import Counter

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MEMBERS = {
    p.parent.name if p.parent.parent.name == "packages" else f"app-{p.parent.name}": p.parent
    for p in sorted([*ROOT.glob("packages/*/pyproject.toml"), *ROOT.glob("apps/*/pyproject.toml")])
}
LIBRARIES = {"splat-render", "splat-diffusion", "splat-teachers", "splat-train", "splat-apps"}
ALLOWED = {
    "splat-render": set(),
    "splat-diffusion": set(),
    "splat-teachers": {"splat-render"},
    "splat-train": {"splat-render", "splat-diffusion", "splat-teachers"},
    "splat-apps": {"splat-render", "splat-diffusion", "splat-teachers", "splat-train"},
    **{f"app-{app}": LIBRARIES for app in ("srn", "re10k", "co3d")},
}
# import name -> distribution name, where they differ
DISTRIBUTION = {"PIL": "pillow", "yaml": "pyyaml"}


def module_name(member: str) -> str:
    return member.replace("-", "_")


def imported_modules(member: str) -> set[str]:
    names = set()
    for path in (MEMBERS[member] / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def _name(requirement: str) -> str:
    return requirement.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].strip()


def declared(member: str, *, extras: bool = True) -> set[str]:
    meta = tomllib.loads((MEMBERS[member] / "pyproject.toml").read_text())["project"]
    requirements = list(meta.get("dependencies", []))
    if extras:
        requirements += [r for group in meta.get("optional-dependencies", {}).values() for r in group]
    return {_name(r) for r in requirements}


def test_every_member_is_listed() -> None:
    assert set(MEMBERS) == set(ALLOWED)


@pytest.mark.parametrize("member", sorted(MEMBERS))
def test_member_imports_only_members_below_it(member: str) -> None:
    ours = {module_name(name): name for name in ALLOWED}
    used = {ours[m] for m in imported_modules(member) if m in ours and m != module_name(member)}
    assert used <= ALLOWED[member], f"{member} imports {used - ALLOWED[member]}"
    assert {d for d in declared(member) if d in ALLOWED} <= ALLOWED[member]


@pytest.mark.parametrize("member", sorted(MEMBERS))
def test_member_declares_every_third_party_import(member: str) -> None:
    own = module_name(member)
    third_party = {m for m in imported_modules(member) if m not in sys.stdlib_module_names and m != own}
    names = {DISTRIBUTION.get(m, m).replace("_", "-") for m in third_party}
    missing = names - declared(member)
    assert not missing, f"{member} imports {sorted(missing)} without declaring them in pyproject.toml"


def test_the_training_package_needs_no_command_line_or_image_libraries() -> None:
    """A user of the stage runners alone gets no CLI framework, console or image I/O (issue: one app toolkit)."""
    assert not declared("splat-train", extras=False) & {"tyro", "rich", "pillow", "imageio", "lpips", "torchvision"}
    assert not declared("splat-teachers", extras=False) & {"torchvision", "pillow"}


def test_test_modules_have_unique_names() -> None:
    names = Counter(
        path.name
        for top in ("packages", "apps")
        for path in (ROOT / top).glob("*/tests/*.py")
        if path.name != "conftest.py"
    )
    names.update(path.name for path in (ROOT / "tests").glob("*.py"))
    assert not [name for name, count in names.items() if count > 1]
