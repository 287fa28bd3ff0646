import math

import pytest
import torch

from pipeline.models.objective import (
    MASKED_LOGIT,
    Objective,
    candidate_logits,
    candidates,
    cross_entropy,
    in_batch_candidates,
    target_positions,
)
from pipeline.models.odmt import distillation_kl, distillation_terms, rampup_weight


def test_two_user_batch_by_hand():
    # user 0: [pad, 1, 2] -> one target (2); user 1: [2, 3, 4] -> targets 3 and 4. The target column of
    # padding (user 0's first position) does not exist: it has no input before it.
    sequences = torch.tensor([[0, 1, 2], [2, 3, 4]])
    popularity = torch.tensor([1, 1, 2, 3, 1])
    candidates = in_batch_candidates(sequences, popularity)
    assert candidates.rows.tolist() == [[False, True], [True, True]]
    # columns: items 2, 3, 4. Row 1 (user 1 -> 3) may not score against 2 or 4, which user 1 bought;
    # row 2 (user 1 -> 4) likewise against 2 and 3; row 0 (user 0) sees all three.
    assert candidates.masked.tolist() == [[False, False, False], [True, False, True], [True, True, False]]

    users = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    items = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, 3.0]])
    logits = candidate_logits(users, items, candidates)
    log_pop = [math.log(2), math.log(3), math.log(1)]
    row0 = [2 - log_pop[0], 1 - log_pop[1], 0 - log_pop[2]]
    assert logits[0].tolist() == pytest.approx(row0)
    assert logits[1].tolist() == pytest.approx([MASKED_LOGIT, 1 - log_pop[1], MASKED_LOGIT])
    expected = (-(row0[0] - math.log(sum(math.exp(x) for x in row0))) + 0.0 + 0.0) / 3
    assert cross_entropy(logits, candidates).item() == pytest.approx(expected, rel=1e-5)


def test_kl_terms_match_a_direct_computation():
    torch.manual_seed(0)
    teacher, student, t = torch.randn(4, 6), torch.randn(4, 6), 0.5
    p, q = torch.softmax(teacher / t, -1), torch.softmax(student / t, -1)
    direct = t**2 * (p * (p.log() - q.log())).sum(-1).mean()
    assert distillation_kl(teacher, student, t, detach_teacher=False).item() == pytest.approx(direct.item(), rel=1e-5)

    logits = {"image": torch.randn(4, 6), "text": torch.randn(4, 6), "id": torch.randn(4, 6)}
    terms = distillation_terms(logits, t, detach_teacher=False)
    ensemble = (logits["image"] + logits["text"] + logits["id"]) / 3
    assert terms["image"].item() == pytest.approx(distillation_kl(logits["id"], logits["image"], t, False).item())
    assert terms["text"].item() == pytest.approx(distillation_kl(logits["id"], logits["text"], t, False).item())
    assert terms["id"].item() == pytest.approx(distillation_kl(ensemble, logits["id"], t, False).item())
    no_id = distillation_terms({"image": logits["image"], "text": logits["text"]}, t, False)
    assert set(no_id) == {"image", "text"}


def test_detached_teacher_gets_no_gradient():
    teacher, student = torch.randn(3, 5, requires_grad=True), torch.randn(3, 5, requires_grad=True)
    distillation_kl(teacher, student, 0.5, detach_teacher=True).backward()
    assert teacher.grad is None and student.grad is not None
    teacher2 = teacher.detach().clone().requires_grad_()
    distillation_kl(teacher2, student, 0.5, detach_teacher=False).backward()
    assert teacher2.grad is not None and teacher2.grad.abs().sum() > 0


def test_masked_columns_contribute_nothing_to_kl():
    teacher, student = torch.randn(2, 4), torch.randn(2, 4)
    masked_t, masked_s = teacher.clone(), student.clone()
    masked_t[:, 3] = masked_s[:, 3] = MASKED_LOGIT
    direct = distillation_kl(teacher[:, :3], student[:, :3], 0.3, False)
    assert distillation_kl(masked_t, masked_s, 0.3, False).item() == pytest.approx(direct.item(), rel=1e-5)


@pytest.mark.parametrize(
    ("epoch", "alpha", "expected"),
    [(60, 60, 1.0), (120, 60, 1.0), (0, 60, math.exp(-5)), (30, 60, math.exp(-5 * 0.25)), (3, 0.5, 0.5)],
)
def test_rampup_weight(epoch, alpha, expected):
    assert rampup_weight(epoch, alpha) == pytest.approx(expected)


def test_without_the_popularity_correction_scores_are_plain_dot_products():
    sequences, popularity = torch.tensor([[0, 1, 2], [2, 3, 4]]), torch.tensor([1, 1, 2, 3, 1])
    scored = in_batch_candidates(sequences, popularity, Objective(popularity_correction=False))
    users, items = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, 3.0]])
    assert candidate_logits(users, items, scored)[0].tolist() == [2.0, 1.0, 0.0]  # row 0 masks nothing


def test_full_softmax_scores_every_item_and_targets_the_next_item():
    # user 0: [pad, 1, 2] -> target 2; user 1: [2, 3, 4] -> targets 3 and 4; a catalogue of 4 items
    sequences, popularity = torch.tensor([[0, 1, 2], [2, 3, 4]]), torch.tensor([1, 1, 2, 3, 1])
    scored = candidates(sequences, popularity, Objective(loss="full_softmax"))
    assert scored.targets.tolist() == [1, 2, 3]  # column j - 1 is item j
    assert scored.correction is None and scored.masked is None  # no sampling to correct, nothing masked
    users = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    catalogue = torch.tensor([[1.0, 1.0], [2.0, 0.0], [1.0, 1.0], [0.0, 3.0]])  # items 1..4
    logits = candidate_logits(users, catalogue, scored)
    assert logits.tolist() == [[1, 2, 1, 0], [1, 0, 1, 3], [2, 2, 2, 3]]
    by_hand = [-(row[t] - math.log(sum(math.exp(x) for x in row))) for row, t in zip(logits.tolist(), [1, 2, 3])]
    assert cross_entropy(logits, scored).item() == pytest.approx(sum(by_hand) / 3, rel=1e-6)


def test_prefix_instances_train_only_each_rows_last_position():
    sequences, popularity = torch.tensor([[0, 1, 2, 3], [0, 0, 4, 5]]), torch.tensor([1, 1, 2, 3, 1, 1])
    assert target_positions(sequences).tolist() == [[False, True, True], [False, False, True]]
    last = target_positions(sequences, last_position_only=True)
    assert last.tolist() == [[False, False, True], [False, False, True]]
    for loss in ("in_batch", "full_softmax"):
        scored = candidates(sequences, popularity, Objective(loss=loss, last_position_only=True))
        assert torch.equal(scored.rows, last) and len(scored.targets) == 2
