"""A small raw folder of Amazon reviews, laid out as the McAuley lab's dumps ship (2018 edition by default).

Arts_Crafts_and_Sewing.json.gz      reviews, one JSON object per line, gzipped, grouped by product
meta_Arts_Crafts_and_Sewing.json    products, one JSON object per line (here left uncompressed)
images/<asin>.jpg                   the pictures a user downloads from the meta's URLs

holding:
- 8 reviewers of 7 products each over 14 products, every one with text and a 32x32 picture in its own colour;
- awkward cases: `vote` as a string ("2", "1,234"), a product without brand and description (ASINS[3]),
  HTML entities and tags in a title, category and description (ASINS[0]), a review of a product
  without a meta line (NO_META, reviewer 1), a product with picture URLs but no file (NO_PICTURE,
  reviewer 2), a review line written twice (reviewer 3's first), a repeated meta line (ASINS[5]),
  and two reviews of reviewer 4 on the same day (a tie: file order decides).

`write_raw_2014` writes the 2014 edition of a smaller category instead: Python-literal lines
(single quotes), `reviews_Office_Products_5.json.gz`, `categories` (a list of lists), `imUrl`,
a description that is a plain string.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

from tests.conftest import jpeg_bytes

CATEGORY = "Arts_Crafts_and_Sewing"
REVIEWS = f"{CATEGORY}.json.gz"
META = f"meta_{CATEGORY}.json"

ASINS = [f"B00{i:02d}ARTS{i % 10}" for i in range(1, 15)]  # ten characters, as ASINs are
USERS = [f"A{u}X7QREVIEWER{u}" for u in range(1, 9)]
NO_META, NO_PICTURE = "B0NOMETA01", "B0NOPICT01"
START = 1388534400  # 2014-01-01, seconds; the dumps' times are days at midnight UTC
DAY = 86400


def reviews() -> list[dict[str, Any]]:
    """The review records, in file order (by product, as the dumps are), the repeated one included."""
    records = []
    for u, user in enumerate(USERS, start=1):
        products = [ASINS[(3 * u + 2 * k) % len(ASINS)] for k in range(7)]
        days = [10 * u + 3 * k for k in range(7)]
        if u == 1:
            products.append(NO_META)
            days.append(10 + 2)
        if u == 2:
            products.append(NO_PICTURE)
            days.append(20 + 30)
        if u == 4:
            days[3] = days[2]  # two reviews on one day
        for k, (asin, day) in enumerate(zip(products, days)):
            records.append(review(user, asin, START + day * DAY, vote=("2", "1,234", None)[k % 3]))
    records.sort(key=lambda record: record["asin"])  # stable: a reviewer's same-product reviews keep their order
    repeated = next(i for i, record in enumerate(records) if record["reviewerID"] == USERS[2])
    records.insert(repeated + 1, records[repeated])
    return records


def review(user: str, asin: str, time: int, vote: str | None) -> dict[str, Any]:
    record: dict[str, Any] = {"overall": 5.0}
    if vote is not None:
        record["vote"] = vote
    record |= {
        "verified": True,
        "reviewTime": dt.datetime.fromtimestamp(time, dt.UTC).strftime("%m %-d, %Y"),
        "reviewerID": user,
        "asin": asin,
        "style": {"Color:": " Red"},
        "reviewerName": f"Reviewer {user[1]}",
        "reviewText": "Works as described &amp; arrived quickly.",
        "summary": "Five Stars",
        "unixReviewTime": time,
    }
    return record


def products() -> list[dict[str, Any]]:
    """The meta records in file order, the repeated one included."""
    records = [product(asin, i) for i, asin in enumerate(ASINS)]
    records[0] |= {
        "title": "Acrylic Paint Set &amp; Brushes",
        "category": ["Arts, Crafts &amp; Sewing", "Painting, Drawing &amp; Art Supplies", "Painting"],
        "description": ["<p>12 <b>bright</b> colours</p>", "Non-toxic &quot;artist&quot; grade<br>Made in USA"],
    }
    del records[3]["brand"], records[3]["description"]
    records.append(product(NO_PICTURE, len(ASINS)))
    records.insert(6, records[5])
    return records


def product(asin: str, i: int) -> dict[str, Any]:
    url = f"https://images-na.ssl-images-amazon.com/images/I/{asin}"
    return {
        "category": ["Arts, Crafts & Sewing", "Sewing"],
        "tech1": "",
        "description": [f"Spool {i} of polyester thread.", "Strong and smooth."],
        "fit": "",
        "title": f"Sewing Thread No. {i}",
        "also_buy": ["B000000001"],
        "image": [],
        "tech2": "",
        "brand": "Gutermann",
        "feature": [],
        "rank": f"{1000 + i} in Arts, Crafts & Sewing (",
        "also_view": [],
        "main_cat": "Arts, Crafts & Sewing",
        "similar_item": "",
        "date": "",
        "price": "$4.99",
        "asin": asin,
        "imageURL": [f"{url}._SS40_.jpg"],
        "imageURLHighRes": [f"{url}.jpg"],
    }


def colour(i: int) -> tuple[int, int, int]:
    return (20 * i % 256, 255 - 15 * i, 60 + 13 * i)


def write_images(folder: Path, asins: list[str]) -> None:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for i, asin in enumerate(asins):
        (folder / "images" / f"{asin}.jpg").write_bytes(jpeg_bytes((32, 32), colour(i)))


def json_lines(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(record) + "\n" for record in records).encode("utf-8")


def write_raw(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / REVIEWS).write_bytes(gzip.compress(json_lines(reviews()), mtime=0))
    (folder / META).write_bytes(json_lines(products()))
    write_images(folder, ASINS)
    return folder


# The 2014 edition
CATEGORY_2014 = "Office_Products"
REVIEWS_2014 = f"reviews_{CATEGORY_2014}_5.json.gz"
META_2014 = f"meta_{CATEGORY_2014}.json.gz"
ASINS_2014 = ["0078800242", "B00004Z5S1", "B00005MDZ8"]


def reviews_2014() -> list[dict[str, Any]]:
    return [
        {
            "reviewerID": f"A2{u}OFFICE",
            "asin": asin,
            "reviewerName": "J. Doe",
            "helpful": [u, 3],
            "reviewText": "It's a stapler.",
            "overall": 4.0,
            "summary": "Fine",
            "unixReviewTime": START + (u + k) * DAY,
            "reviewTime": "01 5, 2014",
        }
        for u in range(1, 3)
        for k, asin in enumerate(ASINS_2014)
    ]


def products_2014() -> list[dict[str, Any]]:
    return [
        {
            "asin": asin,
            "description": f"Desk &amp; office item {i}.",
            "title": f"Stapler {i}",
            "price": 9.5,
            "imUrl": f"http://ecx.images-amazon.com/images/I/{asin}.jpg",
            "related": {"also_bought": ["B00006IE7J"]},
            "salesRank": {"Office Products": 1000 + i},
            "brand": "Swingline",
            "categories": [["Office Products", "Office & School Supplies"], ["Office Products", "Staplers"]],
        }
        for i, asin in enumerate(ASINS_2014)
    ]


def python_lines(records: list[dict[str, Any]]) -> bytes:
    """Each record as Python writes a dict (the 2014 dumps' format), one per line."""
    return "".join(f"{record!r}\n" for record in records).encode("utf-8")


def write_raw_2014(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / REVIEWS_2014).write_bytes(gzip.compress(python_lines(reviews_2014()), mtime=0))
    (folder / META_2014).write_bytes(gzip.compress(python_lines(products_2014()), mtime=0))
    write_images(folder, ASINS_2014)
