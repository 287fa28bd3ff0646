import pytest
import torch

from pipeline.models.gru4rec import GRU4Rec
from pipeline.models.nextitnet import NextItNet
from pipeline.models.odmt import ODMT
from pipeline.models.sasrec import SASRec
from tests.model_fixtures import random_features, tiny

D = 8


def backbones() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {
        "sasrec": SASRec(D, layers=2, heads=2, positions=9, dropout=0.0, layer_norm_eps=1e-6),
        "gru4rec": GRU4Rec(D, layers=1, dropout=0.0),
        "nextitnet": NextItNet(D, blocks=1, kernel_size=3, dilations=(1, 4), dropout=0.0, layer_norm_eps=1e-6),
    }


@pytest.mark.parametrize("name", ["sasrec", "gru4rec", "nextitnet"])
def test_a_later_item_cannot_change_an_earlier_position(name):
    encoder = backbones()[name].eval()
    items, valid = torch.randn(2, 9, D), torch.ones(2, 9, dtype=torch.bool)
    changed = items.clone()
    changed[:, 6] = torch.randn(2, D)
    before, after = encoder(items, valid), encoder(changed, valid)
    assert torch.allclose(before[:, :6], after[:, :6], atol=1e-6)  # causal
    assert not torch.allclose(before[:, 6:], after[:, 6:], atol=1e-4)  # ... but the item does matter


@pytest.mark.parametrize("name", ["gru4rec", "nextitnet"])
def test_left_padding_cannot_change_the_output(name):
    encoder = backbones()[name].eval()
    real = torch.randn(1, 5, D)
    short = encoder(torch.cat([torch.zeros(1, 2, D), real], dim=1), torch.tensor([[False] * 2 + [True] * 5]))
    padded_items = torch.cat([torch.randn(1, 4, D), real], dim=1)  # padding slots hold arbitrary vectors
    long = encoder(padded_items, torch.tensor([[False] * 4 + [True] * 5]))
    assert torch.allclose(short[:, -5:], long[:, -5:], atol=1e-5)
    assert torch.allclose(encoder(real, torch.ones(1, 5, dtype=torch.bool)), long[:, -5:], atol=1e-5)


@pytest.mark.parametrize("name", ["gru4rec", "nextitnet"])
def test_odmt_trains_with_each_backbone(name):
    torch.manual_seed(0)
    model = ODMT(tiny(user_encoder=name), random_features(10))
    assert all(type(encoder).__name__.lower() == name for encoder in model.user_encoders.values())
    sequences = torch.tensor([[0, 0, 1, 2, 3, 1, 4], [5, 2, 6, 1, 7, 8, 2]])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        loss, _ = model(sequences, epoch=1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    items = model.eval().all_item_embeddings()
    assert model.user_embeddings(sequences[:, :-1], items)["id"].shape == (2, model.config.hidden_size)


@pytest.mark.parametrize("positions_from", ["latest", "oldest"])
def test_sasrec_positions_decide_whether_a_pass_computes_each_prefix_alone(positions_from):
    torch.manual_seed(0)
    encoder = SASRec(D, layers=2, heads=2, positions=6, dropout=0.0, layer_norm_eps=1e-6, positions_from=positions_from).eval()
    items = torch.randn(1, 6, D)
    whole = encoder(items, torch.ones(1, 6, dtype=torch.bool))  # one pass: position p reads the prefix items[:p + 1]
    prefix = torch.cat([torch.zeros(1, 3, D), items[:, :3]], dim=1)  # items[:3] alone, left-padded as ranking has it
    alone = encoder(prefix, torch.tensor([[False] * 3 + [True] * 3]))[:, -1]
    # oldest (RecBole's): the pass's position 2 is that prefix alone; latest (the authors'): it sits elsewhere
    assert torch.allclose(whole[:, 2], alone, atol=1e-5) == (positions_from == "oldest")
