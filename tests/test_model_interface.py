"""The model interface of pipeline/models/base.py: every registered model is a complete Recommender, ranks through
Ranker.score, and starts no learned table at nn.Embedding's normal(0, 1)."""

import inspect
from typing import get_args

import pytest
import torch
from torch import nn

from pipeline.models.base import Ranker, Recommender
from pipeline.models.config import DISPLAY_NAMES, ModelName
from pipeline.models.registry import MODELS, build_model
from tests.model_fixtures import random_features, tiny

HISTORIES = torch.tensor([[0, 0, 0, 1, 2, 3], [4, 5, 6, 7, 8, 1], [0, 0, 0, 0, 0, 9]])


def built(name: str) -> Recommender:
    torch.manual_seed(0)
    return build_model(tiny(name=name), random_features(10)).eval()


def test_the_registry_builds_every_model_name_and_reports_name_them():
    assert list(MODELS) == list(get_args(ModelName))
    assert set(DISPLAY_NAMES) == set(MODELS)


@pytest.mark.parametrize("name", get_args(ModelName))
def test_every_model_is_a_complete_recommender_with_one_embedding_per_branch(name):
    model = built(name)
    assert isinstance(model, Recommender) and not inspect.isabstract(type(model))
    with torch.no_grad():
        items = model.all_item_embeddings()
        users = model.user_embeddings(HISTORIES, items)
    assert tuple(items) == tuple(users) == model.branches
    assert all(e.shape == (11, 16) and e[0].abs().sum() == 0 for e in items.values())  # N + 1 rows, padding zeros
    assert all(h.shape == (3, 16) and h.dtype == torch.float32 for h in users.values())
    assert model.rampup_epochs == (60 if name == "odmt" else 0)  # ODMT's distillation ramps up over alpha epochs


@pytest.mark.parametrize("name", ["odmt", "sasrec", "fdsa"])
def test_score_is_the_mean_of_the_branch_dot_products(name):
    model = built(name)
    with torch.no_grad():
        items = model.all_item_embeddings()
        users = model.user_embeddings(HISTORIES, items)
    scorers = {"ensemble": list(model.branches)} | {b: [b] for b in model.branches}
    scores = model.score(users, items, scorers)
    expected = torch.stack([users[b] @ items[b].T for b in model.branches]).mean(dim=0)
    assert torch.allclose(scores["ensemble"], expected, atol=1e-5)
    assert all(torch.equal(scores[b], users[b] @ items[b].T) for b in model.branches)
    targets = torch.tensor([4, 9, 1])
    paired = Ranker.score(users, {b: e[targets] for b, e in items.items()}, scorers, paired=True)
    assert torch.allclose(paired["ensemble"], expected[torch.arange(3), targets], atol=1e-5)


def fill_with_nan(embedding: nn.Embedding) -> None:
    nn.init.constant_(embedding.weight, float("nan"))


@pytest.mark.parametrize("name", get_args(ModelName))
def test_no_learned_table_keeps_nn_embeddings_default_initialisation(name, monkeypatch):
    """nn.Embedding draws normal(0, 1) in reset_parameters. Made to draw NaN here, any table a model does not
    initialise itself (an ID table, SASRec's positions) is left NaN: at normal(0, 1), SASRec's positions once
    drowned its 0.02-scale items and the ID-only SASRec learned little more than position (docs/model.md)."""
    monkeypatch.setattr(nn.Embedding, "reset_parameters", fill_with_nan)
    assert nn.Embedding(3, 2).weight.isnan().all()  # the check sees a table left at the default
    model = built(name)
    tables = {key: module for key, module in model.named_modules() if isinstance(module, nn.Embedding)}
    assert tables  # every model has an ID table or a position table
    for key, table in tables.items():
        assert table.weight.isfinite().all(), f"{name}: {key} keeps nn.Embedding's default initialisation"


SEQUENCES = torch.tensor([[0, 0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 1, 2], [0, 0, 0, 0, 3, 5, 7]])


@pytest.mark.parametrize("name", ["odmt", "sasrec", "fdsa", "unisrec", "sasrec_ef"])
def test_every_attention_layer_follows_model_attention_and_both_train_the_same(name):
    """model.attention reaches every layer, and explicit and SDPA give one loss and one gradient (dropout 0)."""
    results = []
    for attention in ("explicit", "sdpa"):
        torch.manual_seed(0)
        model = build_model(tiny(name=name, dropout=0.0, attention=attention), random_features(10)).train()
        layers = [m for m in model.modules() if hasattr(m, "implementation")]
        assert layers and all(m.implementation == attention for m in layers)
        loss, _ = model(SEQUENCES, epoch=3)
        loss.backward()
        results.append((loss, [p.grad for p in model.parameters() if p.grad is not None]))
    (explicit, explicit_grads), (sdpa, sdpa_grads) = results
    assert torch.allclose(explicit, sdpa, atol=1e-5)
    assert len(explicit_grads) == len(sdpa_grads) and all(torch.allclose(a, b, atol=1e-5) for a, b in zip(explicit_grads, sdpa_grads))
