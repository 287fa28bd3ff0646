"""`dvc repro` on a copy of the checkout: runs the stages, reproduces the committed dvc.lock, then does nothing."""

import json
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
    # A hang stops the test, not a slow machine: the pipeline takes ~8 minutes alone on 2 cores, more beside other tests.
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=3600)
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


def is_run_output(path: str, run_outputs: set[str]) -> bool:
    """`path` is, holds or lies in an output of a training-dependent stage (report reads whole folders)."""
    return any(path == out or out.startswith(f"{path}/") or path.startswith(f"{out}/") for out in run_outputs)


def test_repro_reproduces_the_lock_and_then_is_up_to_date(checkout_copy):
    dvc = [sys.executable, "-m", "dvc"]
    run([*dvc, "repro"], checkout_copy)
    reproduced = yaml.safe_load((checkout_copy / "dvc.lock").read_text())["stages"]
    committed = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]
    assert reproduced.keys() == committed.keys()
    # Training logs seconds, and its numbers follow the CPU (bf16 where it has AMX): its outputs and those
    # computed from them are checked by their own tests. Every other output is reproduced byte for byte.
    run_dependent = [name for name in committed if name.split("@")[0] in ("train", "evaluate", "report")]
    run_outputs = {out["path"] for name in run_dependent for out in committed[name].get("outs", [])}
    for name, stage in committed.items():
        # Every input hash must match: a stale dvc.lock means `make run` was not re-run before committing.
        inputs = [[dep for dep in lock[name]["deps"] if not is_run_output(dep["path"], run_outputs)] for lock in (reproduced, committed)]
        assert inputs[0] == inputs[1] and reproduced[name].get("params") == stage.get("params"), name
        if name not in run_dependent:
            assert reproduced[name]["outs"] == stage["outs"], name
    second = run([*dvc, "repro"], checkout_copy)
    assert "Data and pipelines are up to date." in second
    assert "Running stage" not in second


def test_experiment_matrix_trains_every_run_and_seed_and_reports_them(checkout_copy):
    params = yaml.safe_load((checkout_copy / "params.yaml").read_text())
    params["train"]["epochs"] = 2
    params["experiments"] |= {"seeds": [0, 1], "runs": {"odmt": {}, "sasrec": {"model.name": "sasrec"}, "T0_1": {"model.temperature": 0.1}}}
    (checkout_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc = [sys.executable, "-m", "dvc"]
    run([*dvc, "repro", "experiments/dvc.yaml"], checkout_copy)

    experiments = checkout_copy / "data" / "hm-mini" / "experiments"
    configs = {path.parent.name: json.loads(path.read_text()) for path in (experiments / "runs").glob("*/config.json")}
    assert sorted(configs) == [f"{run}-seed{seed}" for run in ("T0_1", "odmt", "sasrec") for seed in (0, 1)]
    for name, config in configs.items():
        assert config["train"]["seed"] == int(name[-1]) and config["train"]["epochs"] == 2
        assert config["model"]["name"] == ("sasrec" if name.startswith("sasrec") else "odmt")
        assert config["model"]["temperature"] == (0.1 if name.startswith("T0_1") else 0.5)
    markdown = (experiments / "reports" / "report.md").read_text()
    assert "| metric | Pop | sasrec | odmt | Improv. |" in markdown and "±" in markdown
    assert "| T = 0.1 |" in markdown and "| T = 0.5 |" in markdown
    assert "Running stage" not in run([*dvc, "repro", "experiments/dvc.yaml"], checkout_copy)
