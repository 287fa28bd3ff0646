"""The package layering of docs/design.md: a package imports only the packages below it.

Every import is read from the source with `ast`, lazy imports inside functions included,
so a new back-edge (a cycle in waiting) fails here, naming the file, the line and the import.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Bottom to top: each package may import the ones before it. docs/design.md draws the same order.
LAYERS = ("formats", "dataset", "features", "synthetic", "models", "evaluation", "training", "reporting", "peers")
# Modules directly under pipeline/ that every layer shares: they import no package but the torch-free config leaves.
BASE = ("errors", "capacity", "artifacts", "runtime", "distributed", "checkpoint", "config")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every `pipeline` import in a file, `from pipeline import x` read as pipeline.x."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "pipeline":
                found += [(node.lineno, f"pipeline.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return [(line, module) for line, module in found if module == "pipeline" or module.startswith("pipeline.")]


def layer_of(module: str) -> str:
    """'base' for the shared modules and every package's config leaf, else the module's package."""
    parts = module.split(".")
    if len(parts) == 2 or parts[-1] == "config":
        return "base"
    return parts[1]


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def back_edges() -> list[str]:
    """Every import that goes sideways or up the layering, as 'file:line imports module (why)'."""
    found = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        importer = module_name(path)
        here = layer_of(importer) if importer != "pipeline" else "base"
        for line, module in imported_modules(path):
            there = layer_of(module)
            if here == "base":
                allowed = there == "base"
            else:
                allowed = there == "base" or there == here or LAYERS.index(there) < LAYERS.index(here)
            if module.startswith("stages"):
                allowed = False
            if not allowed:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module} ({here} may not import {there})")
    return found


def test_every_package_has_a_layer() -> None:
    packages = {path.parent.name for path in (ROOT / "pipeline").glob("*/__init__.py")}
    modules = {path.stem for path in (ROOT / "pipeline").glob("*.py")} - {"__init__"}
    assert packages == set(LAYERS), "a new package needs its place in LAYERS and in docs/design.md's diagram"
    assert modules == set(BASE), "a new module under pipeline/ needs its place in BASE or a package"


def test_packages_import_only_downward() -> None:
    assert back_edges() == []


def test_design_doc_draws_the_same_layering() -> None:
    design = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    drawn = design.split("<!-- layering -->")[1]
    positions = [drawn.index(f"{package}/") for package in reversed(LAYERS)]
    assert positions == sorted(positions), "docs/design.md lists the packages top to bottom in LAYERS' order"


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from pipeline.training.loop import train\n", ["pipeline.training.loop"]),
        ("from pipeline import distributed\n", ["pipeline.distributed"]),
        ("def f():\n    import pipeline.models.odmt\n", ["pipeline.models.odmt"]),
        ("import torch\nfrom . import x\n", []),
    ],
)
def test_imports_are_read_lazy_ones_included(tmp_path: Path, source: str, expected: list[str]) -> None:
    path = tmp_path / "module.py"
    path.write_text(source, encoding="utf-8")
    assert [module for _, module in imported_modules(path)] == expected


def test_a_back_edge_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "pipeline" / "formats"
    package.mkdir(parents=True)
    (package / "reader.py").write_text("from pipeline.models.odmt import ODMT\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert back_edges() == ["pipeline/formats/reader.py:1 imports pipeline.models.odmt (formats may not import models)"]
