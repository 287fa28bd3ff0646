"""A small raw folder of RecBole atomic files, laid out as RecBole's dataset converters write them.

ml-mini.inter   user_id:token item_id:token rating:float timestamp:float, rows grouped by user
ml-mini.item    item_id:token movie_title:token_seq release_year:token class:token_seq
images/<item_id>.<ext>

holding:
- 8 users (1..8) of 7 interactions each over 14 items (1..14), every item with a title and a
  32x32 picture in its own colour;
- awkward cases: titles holding a double quote inside and at the start (`12" Single`,
  `"Great Performances" Cats`), a blank release_year, a repeated item line, two
  interactions of user 2 within one second written out of time order (sub-second times),
  two of user 3 at the very same second (a tie), a timestamp in exponent notation, an
  interaction whose item has no .item line (15, user 1), an item without a picture (16,
  user 2), a .jpeg (13) and a .png (14) picture, a row that lost its rating field, a row
  whose timestamp is not a number, and a user with only 2 interactions (9).
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from tests.conftest import jpeg_bytes

NAME = "ml-mini"
INTER = f"{NAME}.inter"
ITEM = f"{NAME}.item"
INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
ITEM_HEADER = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"

ITEMS = [str(i) for i in range(1, 15)]
NO_ITEM_LINE, NO_PICTURE = "15", "16"
START = 978300000  # seconds, December 2000


def interaction_rows() -> list[str]:
    """The .inter lines after the header, in file order."""
    rows = []
    for user in range(1, 9):
        items = [ITEMS[(3 * user + 2 * k) % len(ITEMS)] for k in range(7)]
        times = [f"{START + 1000 * user + 60 * k}" for k in range(7)]
        if user == 1:
            items.insert(2, NO_ITEM_LINE)
            times.insert(2, f"{START + 1000 + 90}")
        if user == 2:
            items.append(NO_PICTURE)
            times.append(f"{START + 2000 + 500}")
            times[3], times[4] = f"{START + 2200}.75", f"{START + 2200}.25"  # one second, out of order
        if user == 3:
            times[5] = times[4]  # a tie: file order decides
        if user == 4:
            times[6] = f"{START + 4000 + 360:.8e}"  # written by a float formatter
        rows += [f"{user}\t{item}\t{1 + k % 5}.0\t{time}\n" for k, (item, time) in enumerate(zip(items, times))]
    rows.insert(10, f"5\t3\t{START + 5030}\n")  # lost its rating field
    rows.insert(20, "6\t4\t4.0\tyesterday\n")
    rows += [f"9\t1\t3.0\t{START + 9000}\n", f"9\t2\t4.0\t{START + 9060}\n"]
    return rows


TITLES = {item: f"Film number {item}" for item in ITEMS}
TITLES["3"] = '12" Single'
TITLES["4"] = '"Great Performances" Cats'
TITLES[NO_PICTURE] = "Film without a picture"
YEARS = {item: str(1980 + int(item)) for item in TITLES}
YEARS["7"] = ""
CLASSES = {item: ("Drama Comedy" if int(item) % 2 else "Animation Children's") for item in TITLES}


def item_rows() -> list[str]:
    rows = [f"{item}\t{TITLES[item]}\t{YEARS[item]}\t{CLASSES[item]}\n" for item in TITLES]
    rows.insert(5, "2\tA second line for film 2\t1999\tDrama\n")
    return rows


def colour(item: str) -> tuple[int, int, int]:
    number = int(item)
    return (number * 17 % 256, number * 53 % 256, number * 101 % 256)


def write_raw(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / INTER).write_text(INTER_HEADER + "".join(interaction_rows()), encoding="utf-8")
    (folder / ITEM).write_text(ITEM_HEADER + "".join(item_rows()), encoding="utf-8")
    images = folder / "images"
    images.mkdir(exist_ok=True)
    for item in ITEMS[:12]:
        (images / f"{item}.jpg").write_bytes(jpeg_bytes((32, 32), colour(item)))
    (images / "13.jpeg").write_bytes(jpeg_bytes((32, 32), colour("13")))
    png = io.BytesIO()
    Image.new("RGB", (32, 32), colour("14")).save(png, format="PNG")
    (images / "14.png").write_bytes(png.getvalue())
    return folder
