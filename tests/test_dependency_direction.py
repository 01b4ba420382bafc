"""Dependencies point down only (DESIGN.md): apps -> splat-train -> {splat-teachers, splat-diffusion} -> splat-render,
and every package imports only what its pyproject.toml declares."""

import ast
import pathlib
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.name for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file())
ALLOWED = {
    "splat-render": set(),
    "splat-diffusion": set(),
    "splat-teachers": {"splat-render"},
    "splat-train": {"splat-render", "splat-diffusion", "splat-teachers"},
}
# import name -> distribution name, where they differ
DISTRIBUTION = {"PIL": "pillow", "yaml": "pyyaml"}


def imported_modules(package: str) -> set[str]:
    names = set()
    for path in (ROOT / "packages" / package / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def declared(package: str) -> set[str]:
    meta = tomllib.loads((ROOT / "packages" / package / "pyproject.toml").read_text())
    deps = meta["project"].get("dependencies", [])
    return {dep.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].strip() for dep in deps}


def test_every_package_is_listed() -> None:
    assert set(PACKAGES) == set(ALLOWED)


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_only_packages_below_it(package: str) -> None:
    ours = {name.replace("-", "_"): name for name in ALLOWED}
    module = package.replace("-", "_")
    used = {ours[m] for m in imported_modules(package) if m in ours and m != module}
    assert used <= ALLOWED[package], f"{package} imports {used - ALLOWED[package]}"
    assert {d for d in declared(package) if d in ALLOWED} <= ALLOWED[package]


@pytest.mark.parametrize("package", PACKAGES)
def test_package_declares_every_third_party_import(package: str) -> None:
    module = package.replace("-", "_")
    third_party = {m for m in imported_modules(package) if m not in sys.stdlib_module_names and m != module}
    names = {DISTRIBUTION.get(m, m).replace("_", "-") for m in third_party}
    missing = names - declared(package)
    assert not missing, f"{package} imports {sorted(missing)} without declaring them in pyproject.toml"
