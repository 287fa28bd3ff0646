import filecmp
import hashlib

from pipeline.synthetic.hm_subset import write_hm_subset
from tests.conftest import HM_MINI, jpeg_bytes, transactions_csv, write_hm_raw


def test_rule_takes_qualifying_customers_in_hash_order(tmp_path):
    ranked = sorted(["c1", "c2", "c3", "c4"], key=lambda c: hashlib.sha256(c.encode()).hexdigest())
    photos = {f"01000000{n:02d}": jpeg_bytes() for n in range(6)}
    ids = list(photos)
    rows = []
    for customer in ranked:
        articles = ids[:2] if customer == ranked[0] else ids  # the first in hash order has too few
        rows += [(f"2020-01-{d + 1:02d}", customer, a) for d, a in enumerate(articles)]
    raw = write_hm_raw(tmp_path / "source", transactions_csv(rows), photos=photos)
    counts = write_hm_subset(raw, tmp_path / "out", customers=2, rows_per_customer=5, min_interactions=5)
    assert counts == {"customers": 2, "transactions": 10, "articles": 5, "photos": 5}
    kept = (tmp_path / "out" / "transactions_train.csv").read_text().splitlines()[1:]
    assert {line.split(",")[1] for line in kept} == set(ranked[1:3])
    assert [line.split(",")[2] for line in kept[:5]] == ids[1:]  # each customer's last 5 rows, file order


def test_embedded_sample_is_reproduced_from_shared_hm_sample(tmp_path, shared_hm):
    # The command written in data/raw/hm-mini/README.md, with its defaults.
    write_hm_subset(shared_hm, tmp_path / "hm-mini", customers=72, rows_per_customer=20, min_interactions=5)
    made = sorted(p.relative_to(tmp_path / "hm-mini") for p in (tmp_path / "hm-mini").rglob("*") if p.is_file())
    committed = sorted(p.relative_to(HM_MINI) for p in HM_MINI.rglob("*") if p.is_file() and p.name != "README.md")
    assert made == committed
    assert all(filecmp.cmp(tmp_path / "hm-mini" / p, HM_MINI / p, shallow=False) for p in made)
