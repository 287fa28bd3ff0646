"""Each DVC stage's code deps are exactly the project files its `odmt` command imports: a change to any of them
re-runs the stage (no outputs of old code), and a change to any other file does not (no needless re-runs)."""

from __future__ import annotations

import ast
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from stages.cli import app
from tests.conftest import REPO

CODE_ROOTS = ("pipeline", "stages")
DVC_FILES = ("dvc.yaml", "experiments/dvc.yaml")
# Every command starts here, so it is code of every stage. What it imports for the other commands is not: it imports
# every command module only to register its commands, and no command calls into another's.
ENTRY_POINT = "stages/cli.py"
TYPE_CHECKING_TESTS = ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def with_packages(module: str) -> set[str]:
    """`a.b.c` -> {a, a.b, a.b.c}: importing a module runs the __init__.py of every package above it."""
    parts = module.split(".")
    return {".".join(parts[:end]) for end in range(1, len(parts) + 1)}


def module_file(root: Path, module: str) -> Path | None:
    """The project file defining `module` (a module, or a package's __init__.py); None outside the project."""
    if module.split(".")[0] not in CODE_ROOTS:
        return None
    base = root.joinpath(*module.split("."))
    return next((path for path in (base.with_suffix(".py"), base / "__init__.py") if path.is_file()), None)


def runtime_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """ast.walk, less the bodies of `if TYPE_CHECKING:`, whose imports never run."""
    yield node
    skipped = isinstance(node, ast.If) and ast.unparse(node.test) in TYPE_CHECKING_TESTS
    for child in node.orelse if skipped else ast.iter_child_nodes(node):
        yield from runtime_nodes(child)


def imported_modules(path: Path, module: str) -> set[str]:
    """Every module an import in `path` may load, at module level or inside a function (the lazy imports of torch
    stages); `from a.b import c` loads a, a.b and, where c is a submodule rather than a name, a.b.c."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            names.update([base, *(f"{base}.{alias.name}" for alias in node.names)])
    return set().union(*map(with_packages, names))


def import_closure(root: Path, module: str) -> set[str]:
    """The project files (paths relative to `root`) that importing `module` and running its code may load."""
    files: set[str] = set()
    pending = list(with_packages(module))
    while pending:
        name = pending.pop()
        path = module_file(root, name)
        if path is not None and path.relative_to(root).as_posix() not in files:
            files.add(path.relative_to(root).as_posix())
            pending.extend(imported_modules(path, name))
    return files


def listed_code(root: Path, code_deps: list[str]) -> set[str]:
    """The .py files a stage's code deps name: each file itself, each folder with every .py file under it."""
    listed: set[str] = set()
    for dep in code_deps:
        path = root / dep
        listed |= {file.relative_to(root).as_posix() for file in path.rglob("*.py")} if path.is_dir() else {dep}
    return listed


def command_modules() -> dict[str, set[str]]:
    """`odmt <command>` -> the modules defining it; a group's are its subcommands' (`odmt ingest hm`: stages.ingest)."""
    modules = {info.name: {info.callback.__module__} for info in app.registered_commands}
    for group in app.registered_groups:
        modules[group.name] = {info.callback.__module__ for info in group.typer_instance.registered_commands}
    return modules


def dvc_stages() -> Iterator[pytest.param]:
    """(stage, cmd, code deps) of every stage of both dvc.yaml files, read from their templates: a foreach or matrix stage
    repeats one `cmd` and one list of code deps, which name no `${item}`. Code deps are made relative to the repo."""
    for dvc_file in DVC_FILES:
        path = REPO / dvc_file
        for name, stage in yaml.safe_load(path.read_text(encoding="utf-8"))["stages"].items():
            definition = stage.get("do", stage)  # foreach's template is its `do`; matrix's is the stage itself
            wdir = path.parent / definition.get("wdir", ".")
            deps = [os.path.relpath(os.path.normpath(wdir / dep), REPO) for dep in definition.get("deps", [])]
            code_deps = [Path(dep).as_posix() for dep in deps if Path(dep).parts[0] in CODE_ROOTS]
            yield pytest.param(f"{dvc_file}:{name}", definition["cmd"], code_deps, id=f"{dvc_file}:{name}")


def write_files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.mark.parametrize(("stage", "cmd", "code_deps"), list(dvc_stages()))
def test_code_deps_are_exactly_the_files_the_command_imports(stage: str, cmd: str, code_deps: list[str]):
    command = cmd.split()[:2]
    assert command[0] == "odmt", f"{stage} runs `{cmd}`, not an `odmt` command: this test cannot see its code"
    modules = command_modules().get(command[1])
    assert modules, f"{stage} runs `odmt {command[1]}`, which {ENTRY_POINT} does not register"
    closure = {ENTRY_POINT}.union(*(import_closure(REPO, module) for module in modules))
    listed = listed_code(REPO, code_deps)
    missing, needless = sorted(closure - listed), sorted(listed - closure)
    assert not missing and not needless, f"{stage}: deps to add: {missing}; deps to remove (or folders to narrow): {needless}"


def test_import_closure_follows_lazy_relative_and_submodule_imports_but_not_type_checking(tmp_path):
    write_files(
        tmp_path,
        {
            "stages/__init__.py": "",
            "stages/run.py": "import json\nfrom pipeline import model\n\n\ndef run():\n    from pipeline.sub import loop\n",
            "pipeline/__init__.py": "",
            "pipeline/model.py": "from typing import TYPE_CHECKING\n\nfrom .errors import InputError\n\n"
            "if TYPE_CHECKING:\n    from pipeline import hidden\nelse:\n    import pipeline.shown\n",
            "pipeline/errors.py": "class InputError(ValueError): ...\n",
            "pipeline/hidden.py": "",
            "pipeline/shown.py": "",
            "pipeline/unused.py": "",
            "pipeline/sub/__init__.py": "",
            "pipeline/sub/loop.py": "from ..errors import InputError\n",
        },
    )

    assert import_closure(tmp_path, "stages.run") == {
        "stages/__init__.py",
        "stages/run.py",
        "pipeline/__init__.py",
        "pipeline/model.py",
        "pipeline/errors.py",
        "pipeline/shown.py",
        "pipeline/sub/__init__.py",
        "pipeline/sub/loop.py",
    }


def test_listed_code_expands_folders_to_their_python_files(tmp_path):
    write_files(tmp_path, {"pipeline/sub/a.py": "", "pipeline/sub/deep/b.py": "", "pipeline/sub/notes.txt": ""})

    assert listed_code(tmp_path, ["pipeline/sub", "stages/x.py"]) == {
        "pipeline/sub/a.py",
        "pipeline/sub/deep/b.py",
        "stages/x.py",
    }


def test_command_modules_map_commands_and_groups_to_the_stage_modules():
    modules = command_modules()

    assert modules["train"] == {"stages.train"}
    assert modules["ingest"] == {"stages.ingest"}
