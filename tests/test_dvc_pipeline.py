"""`dvc repro` on a copy of the checkout: runs the stages, reproduces the committed dvc.lock, then does nothing."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def run(args: list[str], cwd: Path) -> str:
    # Stages call `odmt`: the test interpreter's environment comes first on PATH.
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def checkout_copy(tmp_path: Path) -> Path:
    if not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to know which files belong to the project")
    files = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], REPO).splitlines()
    copy = tmp_path / "checkout"
    for name in files:
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    run(["git", "init", "-q"], copy)
    return copy


def test_repro_reproduces_the_lock_and_then_is_up_to_date(checkout_copy):
    dvc = [sys.executable, "-m", "dvc"]
    run([*dvc, "repro"], checkout_copy)
    reproduced = yaml.safe_load((checkout_copy / "dvc.lock").read_text())["stages"]
    committed = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]
    assert reproduced.keys() == committed.keys()
    # Training logs seconds, and its numbers follow the CPU (bf16 where it has AMX): its outputs and those
    # computed from them are checked by their own tests. Every other output is reproduced byte for byte.
    run_dependent = ("train", "evaluate", "report")
    run_outputs = {out["path"] for name in run_dependent for out in committed[name].get("outs", [])}
    for name, stage in committed.items():
        # Every input hash must match: a stale dvc.lock means `make run` was not re-run before committing.
        inputs = [[dep for dep in lock[name]["deps"] if dep["path"] not in run_outputs] for lock in (reproduced, committed)]
        assert inputs[0] == inputs[1] and reproduced[name].get("params") == stage.get("params"), name
        if name not in run_dependent:
            assert reproduced[name]["outs"] == stage["outs"], name
    second = run([*dvc, "repro"], checkout_copy)
    assert "Data and pipelines are up to date." in second
    assert "Running stage" not in second
