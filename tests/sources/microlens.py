"""A small raw folder in the MicroLens layout, with the files of a real release.

MicroLens-50k_pairs.csv (header user,item,timestamp; epoch milliseconds; rows sorted by
item, so not in time order), MicroLens-50k_pairs.tsv (the same views, one line per user,
oldest first), MicroLens-50k_titles.csv (item,title with a header), MicroLens-50k_covers/
<item>.jpg and MicroLens-50k_likes_and_views.txt, holding:
- 8 users of 7 views each over 14 items (1..14), every one with a title and a cover;
- awkward cases: Chinese titles, titles with a comma (quoted), an item viewed by user 1
  without a title line (NO_TITLE), an item viewed by user 2 without a cover (NO_COVER),
  and two views of user 3 within one second, 500 ms apart.
The 100k release is written with `release="100k"`: MicroLens-100k_* names, and the titles
in MicroLens-100k_title_en.csv without a header line.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Literal

from tests.conftest import jpeg_bytes

PAIRS_CSV = "MicroLens-50k_pairs.csv"
PAIRS_TSV = "MicroLens-50k_pairs.tsv"
TITLES = "MicroLens-50k_titles.csv"
COVERS = "MicroLens-50k_covers"
TITLES_100K = "MicroLens-100k_title_en.csv"

ITEMS = [str(i) for i in range(1, 15)]
NO_TITLE, NO_COVER = "901", "902"
SEQUENCES = {str(u): [ITEMS[(3 * u + 2 * k) % len(ITEMS)] for k in range(7)] for u in range(1, 9)}
SEQUENCES["1"].insert(3, NO_TITLE)
SEQUENCES["2"].insert(5, NO_COVER)

TITLES_BY_ITEM = {item: f"家常菜教程 第{i}集" if i % 2 else f"Street dance tutorial, part {i}" for i, item in enumerate(ITEMS, start=1)}
TITLES_BY_ITEM |= {"3": "上海夜景, 延时摄影", "4": "猫咪的一天", NO_COVER: "Morning run without a cover"}

FIRST_VIEW_MS = 1_583_020_800_000
HOUR_MS, DAY_MS = 3_600_000, 86_400_000
SAME_SECOND_USER = "3"


def view_times(user: str) -> list[int]:
    """Epoch milliseconds of `user`'s views, an hour apart, except two of user 3 within one second."""
    times = [FIRST_VIEW_MS + int(user) * DAY_MS + k * HOUR_MS + 100 for k in range(len(SEQUENCES[user]))]
    if user == SAME_SECOND_USER:
        times[3] = times[2] + 500
    return times


def views() -> list[tuple[str, str, int]]:
    """(user, item, milliseconds) of every view, in the CSV's row order: by item, then user."""
    rows = [(user, item, ms) for user, sequence in SEQUENCES.items() for item, ms in zip(sequence, view_times(user))]
    return sorted(rows, key=lambda row: (int(row[1]), int(row[0])))


def write_raw(folder: Path, release: Literal["50k", "100k"] = "50k") -> Path:
    prefix = f"MicroLens-{release}"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{prefix}_pairs.csv").open("w", encoding="utf-8", newline="") as file:
        csv.writer(file, lineterminator="\n").writerows([("user", "item", "timestamp"), *views()])
    tsv = "".join(f"{user}\t{' '.join(sequence)}\n" for user, sequence in SEQUENCES.items())
    (folder / f"{prefix}_pairs.tsv").write_text(tsv, encoding="utf-8")
    titles = list(TITLES_BY_ITEM.items())
    titles_name = f"{prefix}_title_en.csv" if release == "100k" else f"{prefix}_titles.csv"
    with (folder / titles_name).open("w", encoding="utf-8", newline="") as file:
        csv.writer(file, lineterminator="\n").writerows(titles if release == "100k" else [("item", "title"), *titles])
    covers = folder / f"{prefix}_covers"
    covers.mkdir(exist_ok=True)
    for number, item in enumerate([*ITEMS, NO_TITLE], start=1):
        (covers / f"{item}.jpg").write_bytes(jpeg_bytes((32, 32), (17 * number % 256, 255 - 13 * number, 40)))
    likes_and_views = "".join(f"{item}\t{3 * int(item)}\t{50 * int(item)}\n" for item in [*ITEMS, NO_TITLE, NO_COVER])
    (folder / f"{prefix}_likes_and_views.txt").write_text(likes_and_views, encoding="utf-8")
    return folder
