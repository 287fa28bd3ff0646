"""A synthetic Amazon category, to measure how fast the Amazon reader gets through one and whether its memory stays bounded.

`write_category` writes a 2018-edition category: a gzipped reviews file of
`lines` JSON lines shaped like the real dump (review texts of a few hundred characters,
about five reviews per reviewer and twenty per product) and one meta line per product;
`benchmark_ingest` writes one in a temporary folder and times `ingest_amazon` on it.
The files are written line by line, so making them does not raise the process's peak
memory; the peak before ingest is reported beside the peak after it.
"""

from __future__ import annotations

import gzip
import json
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from pipeline.formats.amazon import AmazonConfig, ingest_amazon

CATEGORY = "Synthetic_Category"
REVIEWS_PER_USER = 5
REVIEWS_PER_ITEM = 20
START = 1262304000  # 2010-01-01: ten years of review days from here
DAYS = 3650
WORDS = "great paint brush colour canvas works well fine thread yarn needle quality price arrived broke".split()
TEXTS = 1000  # distinct review texts drawn from (making each line's text anew would dominate the run)


def benchmark_ingest(lines: int, config: AmazonConfig, seed: int = 0) -> dict[str, Any]:
    """Rows/s of ingest_amazon on a synthetic `lines`-review category, and the process's peak memory."""
    with tempfile.TemporaryDirectory() as scratch:
        raw, interim = Path(scratch) / "raw", Path(scratch) / "interim"
        reviews = write_category(raw, lines, seed)
        peak_before = peak_rss_mib()
        start = time.perf_counter()
        report = ingest_amazon(raw, interim, config)
        seconds = time.perf_counter() - start
        counts = report["files"][reviews.name]
        return {
            "lines": lines,
            "kept": counts["records_kept"],
            "reviews_file_mib": round(reviews.stat().st_size / 2**20, 1),
            "batch_rows": config.batch_rows,
            "seconds": round(seconds, 1),
            "rows_per_s": round(lines / seconds),
            "peak_rss_before_mib": peak_before,
            "peak_rss_mib": peak_rss_mib(),
            "interim_mib": round(sum(path.stat().st_size for path in interim.iterdir()) / 2**20, 1),
        }


def write_category(raw: Path, lines: int, seed: int) -> Path:
    """`<CATEGORY>.json.gz` with `lines` reviews and `meta_<CATEGORY>.json` with each product; the reviews' path."""
    rng = random.Random(seed)
    users, items = max(1, lines // REVIEWS_PER_USER), max(1, lines // REVIEWS_PER_ITEM)
    texts = [" ".join(rng.choices(WORDS, k=rng.randint(10, 100))) for _ in range(TEXTS)]
    raw.mkdir(parents=True)
    reviews = raw / f"{CATEGORY}.json.gz"
    with gzip.open(reviews, "wt", encoding="utf-8", compresslevel=1) as file:
        for _ in range(lines):
            when = START + rng.randrange(DAYS) * 86400
            record = {
                "overall": float(rng.randint(1, 5)),
                "verified": True,
                "reviewTime": time.strftime("%m %d, %Y", time.gmtime(when)),
                "reviewerID": f"A{rng.randrange(users):012X}",
                "asin": f"B{rng.randrange(items):09d}",
                "reviewerName": "Reviewer",
                "reviewText": rng.choice(texts),
                "summary": "Five Stars",
                "unixReviewTime": when,
            }
            file.write(json.dumps(record) + "\n")
    with (raw / f"meta_{CATEGORY}.json").open("w", encoding="utf-8") as file:
        for item in range(items):
            product = {
                "asin": f"B{item:09d}",
                "title": f"Product {item} &amp; case",
                "brand": "Brand",
                "category": ["Arts, Crafts &amp; Sewing", "Painting"],
                "description": [rng.choice(texts), "<b>Made in USA</b>"],
                "imageURLHighRes": [f"https://images.example/{item}.jpg"],
            }
            file.write(json.dumps(product) + "\n")
    return reviews


def peak_rss_mib() -> int:
    """The process's peak resident memory so far (ru_maxrss is in KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
