"""The step profile of `odmt bench train --profile`: every operator in the part of the step it ran in, products in FLOPs."""

import pytest
import torch
from torch import nn

from pipeline.models.registry import build_model
from pipeline.training.benchmark import training_steps
from pipeline.training.config import TrainConfig
from pipeline.training.profile import MODULE_PARTS, matmul_rates, profile_steps
from tests.model_fixtures import random_features, tiny

CPU = TrainConfig(device="cpu", precision="fp32", cpu_threads=1)


def test_a_linear_layer_counts_its_two_products_and_their_flops():
    torch.manual_seed(0)
    layer = nn.Linear(64, 32)
    x = torch.randn(128, 64)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)

    def step() -> None:
        optimizer.zero_grad()
        layer(x).square().sum().backward()
        optimizer.step()

    result = profile_steps(layer, step, steps=2)
    assert result["matmul_gflop"] == 2 * 2 * 128 * 64 * 32 / 1e9  # x W^T, then the weight's gradient (x needs none)
    assert {shape[-2:] for shape in result["matmul_shapes"]} == {((128, 64), (64, 32)), ((32, 128), (128, 64))}
    assert result["parts_ms"]["backward: matrix products"] > 0
    assert sum(result["parts_ms"].values()) == pytest.approx(result["wall_ms"])  # the parts add up to the step


def test_odmt_step_time_is_put_in_the_modules_that_spent_it():
    torch.manual_seed(0)
    model = build_model(tiny(dropout=0.3), random_features(30)).train()
    step = training_steps(model, torch.device("cpu"), CPU)
    batch = torch.randint(1, 31, (8, 7))
    parts = profile_steps(model, lambda: step(batch), steps=2)["parts_ms"]
    forward = [f"forward: {part}" for part, _ in MODULE_PARTS[:-1]] + ["forward: model code (look-ups, in-batch logits, loss)"]
    assert all(parts.get(part, 0) > 0 for part in forward), parts  # ODMT's user encoders are SASRec: named apart too
    assert parts["forward: user encoders: FFN, positions"] > 0 and parts["optimiser (AdamW)"] > 0
    assert "outside the step's parts" not in parts  # training_step labels everything it runs


def test_matmul_rates_names_each_shape_and_dtype():
    # One thread, as a profiled step runs: with two, a product this small waits ~15 ms for a core another job holds.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rates = matmul_rates([((64, 32), (32, 16))], (torch.float32,), seconds=0.01)
    finally:
        torch.set_num_threads(threads)
    assert list(rates) == ["64x32 @ 32x16 float32"] and rates["64x32 @ 32x16 float32"] > 0
