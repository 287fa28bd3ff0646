"""Cut a small, real, deterministic subset out of an H&M folder in the raw Kaggle layout.

The rule (so anyone can re-derive data/raw/hm-mini from the same source):
customers are taken in order of the SHA-256 of their id; a customer qualifies when at
least `min_interactions` of their transactions name an article that has a row in
articles.csv and a photo. The first `customers` who qualify are kept with their last
`rows_per_customer` transaction rows (in file order), and the articles.csv rows,
photos and customers.csv rows they need. Kept rows and photos are the source's own.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
from collections import defaultdict
from pathlib import Path

from pipeline.errors import InputError
from pipeline.formats.hm import ARTICLE_ID_DIGITS, ARTICLES, TRANSACTIONS, image_path

CUSTOMERS = "customers.csv"


def write_hm_subset(source: Path, out: Path, customers: int, rows_per_customer: int, min_interactions: int) -> dict[str, int]:
    """Write the subset to `out`; return how many customers, rows, articles and photos it holds."""
    if not (source / TRANSACTIONS).is_file() or not (source / ARTICLES).is_file():
        raise InputError(f"{source}: expected {TRANSACTIONS} and {ARTICLES} of the Kaggle layout.")
    with (source / ARTICLES).open(encoding="utf-8", newline="") as file:
        reader = csv.reader(file)
        article_header = next(reader)
        articles = {row[0]: row for row in reader}
    with_photo = {a for a in articles if (source / image_path(a)).is_file()}

    with (source / TRANSACTIONS).open(encoding="utf-8") as file:
        transaction_header = file.readline()
        rows_by_customer: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for number, line in enumerate(file):
            rows_by_customer[line.split(",", 2)[1]].append((number, line))

    def usable(row: tuple[int, str]) -> bool:
        return article_of(row[1]) in with_photo

    ranked = sorted(rows_by_customer, key=lambda c: hashlib.sha256(c.encode()).hexdigest())
    chosen = [c for c in ranked if sum(map(usable, rows_by_customer[c])) >= min_interactions][:customers]
    kept = {c: rows_by_customer[c][-rows_per_customer:] for c in chosen}
    lines = [line for _, line in sorted(row for rows in kept.values() for row in rows)]
    needed = sorted({article_of(line) for line in lines} & set(articles))

    out.mkdir(parents=True, exist_ok=True)
    (out / TRANSACTIONS).write_text(transaction_header + "".join(lines), encoding="utf-8")
    with (out / ARTICLES).open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(article_header)
        writer.writerows(articles[a] for a in needed)
    photos = [a for a in needed if a in with_photo]
    for article in photos:
        (out / image_path(article)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / image_path(article), out / image_path(article))
    if (source / CUSTOMERS).is_file():
        with (source / CUSTOMERS).open(encoding="utf-8") as file:
            header = file.readline()
            rows = [line for line in file if line.split(",", 1)[0] in kept]
        (out / CUSTOMERS).write_text(header + "".join(rows), encoding="utf-8")
    return {"customers": len(chosen), "transactions": len(lines), "articles": len(needed), "photos": len(photos)}


def article_of(transaction_line: str) -> str:
    """The ten-digit article id of one transactions_train.csv line."""
    return transaction_line.split(",", 3)[2].zfill(ARTICLE_ID_DIGITS)
