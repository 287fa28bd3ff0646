"""Where a training step's time goes (`odmt bench train --profile`).

torch.profiler records the self time of every operator over a few steps; each is put in
the innermost part of the step it ran in. In the forward pass that is the module that
called it (dropout, a layer norm, an attention layer, the rest of the IMT, a user
encoder) or the model's own code (embedding look-ups, the in-batch logits and the loss);
in the backward pass, the optimiser and the clipping, it is the kind of operator. Matrix
products are also counted in FLOPs, so their rate in the step can be set against the
rate this machine reaches on the same shapes alone (`matmul_rates`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.autograd.profiler import record_function
from torch.profiler import ProfilerActivity, profile

from pipeline.models.gru4rec import GRU4Rec
from pipeline.models.nextitnet import NextItNet
from pipeline.models.odmt import IMT
from pipeline.models.sasrec import SASRec
from pipeline.models.transformer import Dropout, MultiHeadAttention
from pipeline.training.loop import BACKWARD, CLIPPING, FORWARD

SCOPE = "scope: "
# Forward parts, by the module type that runs them; a module inside another is its own part.
MODULE_PARTS: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("dropout", Dropout),
    ("layer norm", nn.LayerNorm),
    ("attention (q, k, v, softmax, output)", MultiHeadAttention),
    ("IMT: projections, FFN, item heads", IMT),
    ("user encoders: FFN, positions", (SASRec, GRU4Rec, NextItNet)),
)
MATMUL = frozenset({"aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm"})
KINDS = {
    **dict.fromkeys(MATMUL, "matrix products"),
    "aten::_softmax_backward_data": "softmax",
    "aten::_log_softmax_backward_data": "softmax",
    "aten::native_layer_norm_backward": "layer norm",
}


@contextmanager
def module_scopes(model: nn.Module) -> Iterator[None]:
    """Label every forward call of the MODULE_PARTS modules of `model` for the profiler."""
    handles = []
    for module in model.modules():
        named = [name for name, kind in MODULE_PARTS if isinstance(module, kind)]
        if not named:
            continue
        part, opened = named[0], list[Any]()

        def enter(_module: nn.Module, _inputs: Any, part: str = part, opened: list[Any] = opened) -> None:
            opened.append(record_function(SCOPE + part).__enter__())

        def leave(_module: nn.Module, _inputs: Any, _output: Any, opened: list[Any] = opened) -> None:
            opened.pop().__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def part_of(event: Any) -> str:
    """The part of the step an operator event belongs to: its innermost labelled ancestor."""
    parent = event.cpu_parent
    while parent is not None:
        name = parent.name
        if name.startswith(SCOPE):
            return "forward: " + name[len(SCOPE) :]
        if name.startswith("autograd::engine::evaluate_function") or name == BACKWARD:
            return f"backward: {KINDS.get(event.name, event.name.removeprefix('aten::'))}"
        if name.startswith("Optimizer.step"):
            return "optimiser (AdamW)"
        if name == CLIPPING:
            return "gradient clipping"
        if name == FORWARD:
            return "forward: model code (look-ups, in-batch logits, loss)"
        parent = parent.cpu_parent
    return "outside the step's parts"


def profile_steps(model: nn.Module, step: Callable[[], Any], steps: int) -> dict[str, Any]:
    """Self milliseconds per step of each part, the step's wall time, and its matrix products' FLOPs and shapes."""
    step()  # warm-up: first-call allocations and kernel choices are not the steady state
    with module_scopes(model), profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True) as profiler:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        wall = time.perf_counter() - start
    parts: Counter[str] = Counter()
    shapes: Counter[tuple[tuple[int, ...], ...]] = Counter()
    flops, matmul_us = 0, 0.0
    for event in profiler.events():
        if not event.name.startswith("aten::") or event.self_cpu_time_total <= 0:
            continue
        parts[part_of(event)] += event.self_cpu_time_total
        if event.name in MATMUL:
            flops += event.flops or 0
            matmul_us += event.self_cpu_time_total
            shapes[tuple(tuple(s) for s in event.input_shapes if s)] += event.self_cpu_time_total
    wall_ms = wall * 1000 / steps
    ms = {part: us / 1000 / steps for part, us in parts.most_common()}
    ms["Python and dispatch (no operator)"] = wall_ms - sum(ms.values())
    return {
        "parts_ms": ms,
        "wall_ms": wall_ms,
        "matmul_gflop": flops / 1e9 / steps,
        "matmul_ms": matmul_us / 1000 / steps,
        "matmul_shapes": [shape for shape, _ in shapes.most_common(4)],
    }


def matmul_rates(shapes: list[tuple[tuple[int, ...], ...]], dtypes: tuple[torch.dtype, ...], seconds: float = 0.3) -> dict[str, float]:
    """GFLOP/s this machine reaches on each (A, B) product shape alone, per dtype: the ceiling for the step's products."""
    rates = {}
    for shape in shapes:
        a_shape, b_shape = shape[-2], shape[-1]  # mm/bmm (A, B); addmm/baddbmm (input, A, B)
        for dtype in dtypes:
            a, b = torch.randn(a_shape, dtype=dtype), torch.randn(b_shape, dtype=dtype)
            product = torch.bmm if a.ndim == 3 else torch.mm
            product(a, b)
            runs, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                product(a, b)
                runs += 1
            flop = 2 * a.numel() * b.shape[-1]
            rates[f"{'x'.join(map(str, a_shape))} @ {'x'.join(map(str, b_shape))} {str(dtype).removeprefix('torch.')}"] = round(
                flop * runs / (time.perf_counter() - start) / 1e9, 1
            )
    return rates
