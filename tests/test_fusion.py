import torch

from pipeline.models.fdsa import FDSA
from pipeline.models.fusion import EarlyFusion, late_fusion
from pipeline.models.objective import Objective, cross_entropy
from pipeline.models.odmt import ODMT
from pipeline.models.unisrec import MoEAdaptor, UniSRec
from tests.model_fixtures import random_features, tiny

SEQUENCES = torch.tensor([[0, 0, 1, 2, 3, 1, 4], [5, 2, 6, 1, 7, 8, 2]])


def test_late_fusion_averages_the_logits_of_one_user_encoder_per_input():
    torch.manual_seed(0)
    model = late_fusion(tiny(), random_features(10)).eval()
    assert not model.config.imt and not model.config.distillation and set(model.user_encoders) == {"image", "text", "id"}
    loss, parts = model(SEQUENCES, epoch=1)
    logits, scored = model.training_logits(SEQUENCES, Objective())
    assert torch.allclose(loss, cross_entropy(torch.stack(list(logits.values())).mean(dim=0), scored))
    assert set(parts) == {"ce_ensemble", "total"}


def test_early_fusion_averages_the_item_embeddings_before_one_user_encoder():
    torch.manual_seed(0)
    model = EarlyFusion(tiny(), random_features(10)).eval()
    assert model.branches == ("fused",) and set(model.user_encoders) == {"fused"} and not model.config.imt
    per_input = ODMT.all_item_embeddings(model)  # the image, text and ID embeddings it averages
    assert set(per_input) == {"image", "text", "id"}
    fused = model.all_item_embeddings()["fused"]
    assert torch.allclose(fused, (per_input["image"] + per_input["text"] + per_input["id"]) / 3, atol=1e-6)
    users = model.user_embeddings(SEQUENCES[:, :-1], {"fused": fused})
    assert set(users) == {"fused"} and users["fused"].shape == (2, model.config.hidden_size)
    loss, parts = model(SEQUENCES, epoch=1)
    assert set(parts) == {"ce_fused", "total"} and loss.requires_grad


def test_fdsa_reads_ids_and_features_through_two_streams():
    torch.manual_seed(0)
    features = random_features(10)
    model = FDSA(tiny(name="fdsa"), features).eval()
    histories = SEQUENCES[:, :-1]
    items = model.all_item_embeddings()
    before = model.user_embeddings(histories, items)["id"]
    features.text[3, 0] += torch.randn(8).half()  # the text CLS of item 3, in user 0's history only
    after = model.user_embeddings(histories, items)["id"]
    assert not torch.allclose(before[0], after[0], atol=1e-5) and torch.allclose(before[1], after[1], atol=1e-6)
    with torch.no_grad():
        model.item_embeddings.weight[5] += torch.randn(16)  # item 5's ID, user 1 only (random: LayerNorm drops a constant)
    moved = model.user_embeddings(histories, items)["id"]
    assert torch.allclose(after[0], moved[0], atol=1e-6) and not torch.allclose(after[1], moved[1], atol=1e-5)


def test_unisrec_represents_items_by_their_features_alone():
    torch.manual_seed(0)
    features = random_features(10)
    features.image[7], features.text[7] = features.image[4], features.text[4]  # item 7: item 4's features
    model = UniSRec(tiny(name="unisrec", adaptor_experts=3), features).eval()
    items = model.all_item_embeddings()["item"]
    assert torch.equal(items[7], items[4]) and not torch.allclose(items[7], items[5])  # no ID: same features, same item
    assert items[0].abs().sum() == 0
    adaptor = MoEAdaptor(width=8, hidden_size=16, experts=1, dropout=0.0)
    x = torch.randn(5, 8)
    assert torch.allclose(adaptor(x), adaptor.whitening[0](x - adaptor.centres[0]), atol=1e-6)  # one expert: whitening


def test_unisrec_scores_are_cosines_over_its_temperature():
    torch.manual_seed(0)
    model = UniSRec(tiny(name="unisrec", unisrec_temperature=0.1), random_features(10)).eval()
    items = model.all_item_embeddings()
    assert torch.allclose(items["item"][1:].norm(dim=1), torch.ones(10), atol=1e-5)  # unit items
    users = model.user_embeddings(SEQUENCES[:, :-1], items)["item"]
    assert torch.allclose(users.norm(dim=1), torch.full((2,), 10.0), atol=1e-4)  # unit users over T = 0.1
    scores = users @ items["item"][1:].T
    assert scores.abs().max() <= 10.0 + 1e-4  # bounded by 1 / T, whatever the features' scale
