"""Benchmark sizes a machine cannot hold are refused before any work, with the estimate and the option to lower."""

import shutil
from collections import namedtuple

import pytest

from pipeline import capacity
from pipeline.errors import InputError
from pipeline.evaluation.benchmark import benchmark_evaluate
from pipeline.evaluation.config import EvaluateConfig
from pipeline.synthetic.dataset import FeatureShapes, write_synthetic
from tests.model_fixtures import tiny

Usage = namedtuple("Usage", "total used free")


def test_a_paper_sized_synthetic_store_is_refused_on_a_disk_too_small_for_it(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(2**40, 2**40 - 2**30, 2**30))  # 1 GiB free
    with pytest.raises(InputError, match=r"about 3\.5 GiB.*1\.0 GiB free.*Lower --items"):
        write_synthetic(tmp_path / "paper", users=10, items=61042, shapes=FeatureShapes(50, 30, 384))
    assert not (tmp_path / "paper").exists()  # refused before anything was written
    write_synthetic(tmp_path / "small", users=10, items=40, length=5)  # a small set fits the same disk


def test_an_evaluation_benchmark_larger_than_free_memory_is_refused_up_front(monkeypatch):
    monkeypatch.setattr(capacity, "free_memory", lambda: 2**30)
    with pytest.raises(InputError, match=r"bench evaluate at 100000 items needs about 6\.\d GiB.*Lower --items"):
        benchmark_evaluate(tiny(), EvaluateConfig(device="cpu"), [1_000, 100_000], users=8)
