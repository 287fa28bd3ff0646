import torch

from pipeline import runtime
from pipeline.runtime import autocast, resolve_precision

CPU = torch.device("cpu")


def test_auto_precision_uses_bf16_on_cpu_only_for_callers_that_opt_in_and_native_bf16(monkeypatch):
    monkeypatch.setattr(runtime, "native_cpu_bf16", lambda: True)
    assert resolve_precision(CPU, "auto") == "fp32"  # extraction: features stay fp32 on CPU
    assert resolve_precision(CPU, "auto", bf16_on_cpu=True) == "bf16"  # training
    monkeypatch.setattr(runtime, "native_cpu_bf16", lambda: False)
    assert resolve_precision(CPU, "auto", bf16_on_cpu=True) == "fp32"  # emulated bf16 would be slower
    assert resolve_precision(CPU, "bf16") == "bf16"  # an explicit choice always wins


def test_autocast_really_changes_the_matmul_dtype(monkeypatch):
    monkeypatch.setattr(runtime, "native_cpu_bf16", lambda: True)
    a = torch.randn(4, 4)
    with autocast(CPU, "auto", bf16_on_cpu=True):
        assert (a @ a).dtype == torch.bfloat16
    with autocast(CPU, "auto"):
        assert (a @ a).dtype == torch.float32
