import pytest
import torch

from pipeline.features.items import ItemFeatures, Standardized
from pipeline.models.odmt import ODMT, initial_id_table
from tests.model_fixtures import random_features, tiny


def item_outputs(model: ODMT, items: torch.Tensor) -> dict[str, torch.Tensor]:
    model.eval()
    with torch.no_grad():
        return model.encode_items(items)


def test_id_mask_really_blocks_the_id_key():
    items = torch.arange(1, 9)
    for id_mask, unchanged in ((True, True), (False, False)):
        torch.manual_seed(0)
        model = ODMT(tiny(id_mask=id_mask), random_features(10))
        before = item_outputs(model, items)
        with torch.no_grad():
            model.id_embeddings.weight.add_(torch.randn_like(model.id_embeddings.weight))
        after = item_outputs(model, items)
        assert not torch.allclose(before["id"], after["id"])  # the ID output always follows its embedding
        for branch in ("image", "text"):
            assert torch.allclose(before[branch], after[branch], atol=1e-6) is unchanged


def test_imt_mixes_modalities_and_separate_transformers_do_not():
    items = torch.arange(1, 9)
    for imt, text_reaches_image in ((True, True), (False, False)):
        torch.manual_seed(0)
        features = random_features(10)
        model = ODMT(tiny(imt=imt), features)
        before = item_outputs(model, items)
        features.text.add_(1.0)  # the raw tokens the model reads (standardised as they are read)
        assert torch.allclose(before["image"], item_outputs(model, items)["image"], atol=1e-6) is not text_reaches_image


def test_imt_layers_and_use_id_switches():
    assert len(ODMT(tiny(imt=False, imt_layers=1), random_features(4)).item_encoder.transformers["image"].layers) == 1
    assert len(ODMT(tiny(imt_layers=2), random_features(4)).item_encoder.transformer.layers) == 2
    id_free = ODMT(tiny(use_id=False), random_features(4))
    assert id_free.branches == ("image", "text") and not hasattr(id_free, "id_embeddings")
    assert set(item_outputs(id_free, torch.arange(1, 4))) == {"image", "text"}


def test_id_table_initialisation():
    features = random_features(6)
    image_cls, text_cls = features.image[:, 0].float(), features.text[:, 0].float()
    assert torch.allclose(initial_id_table(features, "mean")[1:], ((image_cls + text_cls) / 2)[1:])
    assert torch.allclose(initial_id_table(features, "text")[1:], text_cls[1:])
    assert torch.allclose(initial_id_table(features, "image")[1:], image_cls[1:])
    random = initial_id_table(features, "random")
    assert not torch.allclose(random[1:], text_cls[1:]) and random[0].abs().sum() == 0
    wider = random_features(6)
    wider.image = torch.randn(7, 5, 12).half()  # d_v != d_t: the paper falls back to one modality
    assert torch.allclose(initial_id_table(wider, "mean")[1:], wider.text[1:, 0].float())


def test_standardised_features_have_unit_statistics_over_real_tokens_in_any_chunking():
    features = random_features(30, width=6)
    features.text = (features.text.float() * 3 + 5).half() * features.text_mask.unsqueeze(2)
    every_item = torch.arange(31)
    whole = Standardized(features.text, features.text_mask)[every_item]
    assert torch.equal(whole, Standardized(features.text, features.text_mask, chunk=7)[every_item])
    real = whole[1:][features.text_mask[1:]].float()
    assert real.mean(dim=0).abs().max() < 1e-2 and (real.std(dim=0, unbiased=False) - 1).abs().max() < 1e-2
    assert (whole[~features.text_mask] == 0).all() and (whole[0] == 0).all()


def test_a_mean_every_item_shares_does_not_reach_the_model_unless_standardisation_is_off():
    """The shared part of frozen features is what diverged training (docs/training.md): standardised, ODMT never sees it."""
    items = torch.arange(1, 9)
    for standardize, unchanged in ((True, True), (False, False)):
        outputs = []
        for offset in (0.0, 4.0):
            features = random_features(10)
            features.image[1:] += offset * torch.linspace(-1, 1, features.image.shape[2]).half()
            torch.manual_seed(0)
            outputs.append(item_outputs(ODMT(tiny(standardize_features=standardize), features), items))
        assert all(torch.allclose(outputs[0][b], outputs[1][b], atol=2e-3) for b in outputs[0]) is unchanged


def test_deduplicated_and_naive_encoding_give_identical_losses():
    sequences = torch.tensor([[0, 0, 1, 2, 3, 1, 4], [5, 2, 6, 1, 7, 8, 2], [0, 0, 0, 0, 9, 3, 1]])
    losses = []
    for deduplicate in (True, False):
        torch.manual_seed(0)
        model = ODMT(tiny(deduplicate_items=deduplicate), random_features(10)).eval()
        losses.append(model(sequences, epoch=3))
    (dedup_loss, dedup_parts), (naive_loss, naive_parts) = losses
    assert dedup_loss.item() == pytest.approx(naive_loss.item(), rel=1e-6)
    assert {k: v.item() for k, v in dedup_parts.items()} == pytest.approx({k: v.item() for k, v in naive_parts.items()}, rel=1e-6)


def test_distillation_switch_changes_the_loss_parts():
    sequences = torch.tensor([[0, 1, 2, 3, 4, 5, 6]])
    torch.manual_seed(0)
    _, online = ODMT(tiny(), random_features(8))(sequences, epoch=1)
    assert {"ce_image", "ce_text", "ce_id", "kl_image", "kl_text", "kl_id", "distillation_weight"} <= set(online)
    _, late = ODMT(tiny(distillation=False), random_features(8))(sequences, epoch=1)
    assert set(late) == {"ce_ensemble", "total"}


def test_item_embeddings_in_chunks_and_user_embeddings_at_the_last_position():
    torch.manual_seed(0)
    model = ODMT(tiny(), random_features(8)).eval()
    histories = torch.tensor([[0, 0, 0, 1, 2, 3], [4, 5, 6, 7, 8, 1]])
    whole = model.all_item_embeddings()
    model.item_chunk = 3
    items = model.all_item_embeddings()
    assert items["id"].shape == (9, 16) and items["id"][0].abs().sum() == 0
    assert all(torch.allclose(items[b], whole[b], atol=1e-6) for b in model.branches)
    users = model.user_embeddings(histories, items)
    with torch.no_grad():
        for b in model.branches:
            assert torch.allclose(users[b], model.user_encoders[b](items[b][histories], histories != 0)[:, -1])
    changed = histories.clone()
    changed[0, 3] = 5  # an earlier item of user 0 changes user 0 only
    after = model.user_embeddings(changed, items)
    assert not torch.allclose(after["id"][0], users["id"][0]) and torch.allclose(after["id"][1], users["id"][1])


def test_trailing_text_padding_does_not_change_item_outputs():
    torch.manual_seed(0)
    features = random_features(10)
    model = ODMT(tiny(), features)
    items = torch.tensor([1, 2, 5])
    before = item_outputs(model, items)
    wider = ItemFeatures(
        features.image,
        torch.cat([features.text, torch.randn(len(features.text), 4, features.text.shape[2]).half()], dim=1),
        torch.cat([features.text_mask, torch.zeros(len(features.text), 4, dtype=torch.bool)], dim=1),
        features.popularity,
    )
    torch.manual_seed(0)  # the same weights; the padding columns leave the standardisation's statistics alone
    after = item_outputs(ODMT(tiny(), wider), items)
    assert all(torch.allclose(before[b], after[b], atol=1e-6) for b in before)


def test_full_softmax_is_the_cross_entropy_over_every_item_and_trains_the_imt():
    from pipeline.models.objective import Objective

    torch.manual_seed(0)
    model = ODMT(tiny(dropout=0.0, distillation=False), random_features(10)).eval()
    sequences = torch.tensor([[0, 0, 1, 2, 3, 1, 4], [5, 2, 6, 1, 7, 8, 2]])
    loss, _ = model(sequences, epoch=1, objective=Objective(loss="full_softmax"))
    catalogue = model.item_catalogue()  # by hand: each branch's users against all 10 items, logits averaged
    rows = (sequences[:, :-1] != 0) & (sequences[:, 1:] != 0)
    logits = torch.stack(
        [model.user_encoders[b](catalogue[b][sequences[:, :-1]], sequences[:, :-1] != 0)[rows] @ catalogue[b][1:].T for b in model.branches]
    ).mean(dim=0)
    assert logits.shape == (int(rows.sum()), 10)
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(logits, sequences[:, 1:][rows] - 1), atol=1e-6)
    loss.backward()
    assert model.item_encoder.projections["image"].weight.grad.abs().sum() > 0  # the catalogue is encoded with grad


def test_recomputing_the_imt_in_groups_of_items_gives_the_same_loss_and_gradients():
    sequences = torch.tensor([[0, 0, 1, 2, 3, 1, 4], [5, 2, 6, 1, 7, 8, 2], [0, 0, 0, 0, 9, 3, 1]])
    results = []
    for group in (0, 4):
        torch.manual_seed(0)
        model = ODMT(tiny(recompute_items=group, dropout=0.0), random_features(10))
        loss, _ = model(sequences, epoch=3)
        loss.backward()
        results.append((loss.item(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}))
    (kept_loss, kept), (recomputed_loss, recomputed) = results
    assert recomputed_loss == pytest.approx(kept_loss, rel=1e-6) and kept.keys() == recomputed.keys()
    assert all(torch.allclose(kept[name], recomputed[name], atol=1e-6) for name in kept)
