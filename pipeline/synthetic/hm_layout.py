"""A generated raw H&M folder of the full Kaggle download's size, in its exact layout.

Why: `odmt ingest hm` and `odmt prepare` must hold the paper's scale (31,788,324
transactions, 105,542 articles, 1,371,980 customers) on one machine, and whether they do
is a question of memory and time, not of the data's meaning. This writes a folder of that
size that `pipeline/formats/hm.py` reads like the real one, without the 30 GB download
and its terms, so anyone can measure both stages on it:

- `transactions_train.csv`: t_dat,customer_id,article_id,price,sales_channel_id in time
  order over 2018-09-20..2020-09-22; customer ids of 64 hex characters; article ids
  WITHOUT their leading zero, as the full download stores them. Rows come in baskets
  (one customer, one day, one channel, contiguous rows); a basket row repeats the row
  before it with a small chance (one purchase of two units is two rows). Customers' and
  articles' activity is heavy-tailed (log-normal weights), so that, as in real
  purchases, a few buy a lot and most customers have at least five rows.
- `articles.csv`: the 25 columns of the real header, ids with their leading zero (a
  product code and a colour variant), text columns drawn from small vocabularies of H&M's
  own category names; fields holding commas quoted as the real file quotes them.
- `images/<first 3 digits>/<article_id>.jpg`: one tiny real JPEG, encoded once and written
  for every article but a few (the real download lacks about 0.4% of its photos).

Everything is vectorised (numpy, pyarrow) and written in chunks of rows, so memory stays
far below the size of the file; the same seed writes byte-identical files.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from PIL import Image

from pipeline.artifacts import atomic_path
from pipeline.capacity import require_disk
from pipeline.errors import InputError
from pipeline.formats.hm import ARTICLES, TRANSACTIONS, image_path

FIRST_DAY = np.datetime64("2018-09-20", "D")
LAST_DAY = np.datetime64("2020-09-22", "D")
CHUNK_ROWS = 1 << 20  # transaction rows generated and written at a time: bounds memory

BASKET_ROWS = 2.5  # mean rows of one customer's basket (one day, one channel)
SECOND_UNIT = 0.08  # chance that a basket row repeats the row before it (a second unit)
ONLINE = 0.7  # share of baskets bought online (sales_channel_id 2); the rest in stores (1)
CUSTOMER_SIGMA = 1.2  # log-normal spread of customers' activity: heavy-tailed purchase counts
ARTICLE_SIGMA = 1.5  # log-normal spread of articles' popularity
VARIANTS = 2.2  # mean colour variants (articles) per product code, as in the real catalogue
PRODUCT_CODES = (108775, 959461)  # the real download's range: article ids 0108775001..0959461xxx
WITHOUT_PHOTO = 0.004  # share of articles without a photo (the real download: 442 of 105,542)
PHOTO_SIZE = (24, 36)  # width, height of the placeholder JPEG (the real photos' 2:3)

# Upper bounds of bytes written per row, for the disk-space check before anything is written.
TRANSACTION_ROW_BYTES = 112  # 10 + 64 + 9 + at most 20 (price) + 1 + 4 commas + newline, rounded up
ARTICLE_ROW_BYTES = 400
FILE_BLOCK_BYTES = 4096  # a photo takes at least one block of disk

ARTICLES_HEADER = (
    "article_id",
    "product_code",
    "prod_name",
    "product_type_no",
    "product_type_name",
    "product_group_name",
    "graphical_appearance_no",
    "graphical_appearance_name",
    "colour_group_code",
    "colour_group_name",
    "perceived_colour_value_id",
    "perceived_colour_value_name",
    "perceived_colour_master_id",
    "perceived_colour_master_name",
    "department_no",
    "department_name",
    "index_code",
    "index_name",
    "index_group_no",
    "index_group_name",
    "section_no",
    "section_name",
    "garment_group_no",
    "garment_group_name",
    "detail_desc",
)
TRANSACTIONS_HEADER = ("t_dat", "customer_id", "article_id", "price", "sales_channel_id")

# Vocabularies of H&M's catalogue: each tuple is one value of a group of articles.csv columns.
PRODUCT_TYPES = (  # product_type_no, product_type_name, product_group_name
    (272, "Trousers", "Garment Lower body"),
    (255, "T-shirt", "Garment Upper body"),
    (253, "Vest top", "Garment Upper body"),
    (252, "Sweater", "Garment Upper body"),
    (265, "Dress", "Garment Full body"),
    (254, "Top", "Garment Upper body"),
    (274, "Skirt", "Garment Lower body"),
    (259, "Shorts", "Garment Lower body"),
    (273, "Leggings/Tights", "Garment Lower body"),
    (306, "Bra", "Underwear"),
    (286, "Underwear bottom", "Underwear"),
    (302, "Socks", "Socks & Tights"),
    (304, "Underwear Tights", "Socks & Tights"),
    (245, "Shirt", "Garment Upper body"),
    (262, "Blouse", "Garment Upper body"),
    (257, "Hoodie", "Garment Upper body"),
    (264, "Jacket", "Garment Upper body"),
    (267, "Pyjama set", "Nightwear"),
    (59, "Swimwear bottom", "Swimwear"),
    (60, "Bikini top", "Swimwear"),
    (87, "Boots", "Shoes"),
    (67, "Bag", "Accessories"),
    (72, "Earring", "Accessories"),
    (66, "Hat/beanie", "Accessories"),
)
APPEARANCES = (  # graphical_appearance_no, graphical_appearance_name
    (1010016, "Solid"),
    (1010001, "All over pattern"),
    (1010010, "Melange"),
    (1010017, "Stripe"),
    (1010014, "Check"),
    (1010004, "Denim"),
    (1010008, "Front print"),
    (1010021, "Lace"),
    (1010023, "Placement print"),
    (1010026, "Other structure"),
)
COLOURS = (  # colour_group_code, colour_group_name, perceived colour value id, name, master id, name
    (9, "Black", 4, "Dark", 5, "Black"),
    (10, "White", 3, "Light", 9, "White"),
    (73, "Dark Blue", 4, "Dark", 2, "Blue"),
    (7, "Grey", 2, "Medium Dusty", 12, "Grey"),
    (12, "Light Beige", 1, "Dusty Light", 11, "Beige"),
    (71, "Light Blue", 3, "Light", 2, "Blue"),
    (51, "Light Pink", 1, "Dusty Light", 4, "Pink"),
    (42, "Red", 5, "Bright", 18, "Red"),
    (13, "Beige", 2, "Medium Dusty", 11, "Beige"),
    (72, "Blue", 7, "Medium", 2, "Blue"),
    (93, "Dark Green", 4, "Dark", 19, "Green"),
    (11, "Off White", 3, "Light", 9, "White"),
    (43, "Dark Red", 4, "Dark", 18, "Red"),
    (19, "Greenish Khaki", 2, "Medium Dusty", 20, "Khaki green"),
    (52, "Pink", 2, "Medium Dusty", 4, "Pink"),
    (8, "Dark Grey", 4, "Dark", 12, "Grey"),
)
DEPARTMENTS = (  # department_no, department_name
    (1676, "Jersey"),
    (1339, "Clean Lingerie"),
    (1636, "Basic 1"),
    (3608, "Tights basic"),
    (1626, "Swimwear"),
    (1322, "Shirt"),
    (7389, "Trousers"),
    (5883, "Knitwear"),
    (4242, "Dresses"),
    (8716, "Outdoor/Blazers DS"),
)
INDEXES = (  # index_code, index_name, index_group_no, index_group_name
    ("A", "Ladieswear", 1, "Ladieswear"),
    ("B", "Lingeries/Tights", 1, "Ladieswear"),
    ("D", "Divided", 2, "Divided"),
    ("F", "Menswear", 3, "Menswear"),
    ("G", "Baby Sizes 50-98", 4, "Baby/Children"),
    ("H", "Children Sizes 92-140", 4, "Baby/Children"),
    ("S", "Sport", 26, "Sport"),
)
SECTIONS = (  # section_no, section_name
    (16, "Womens Everyday Collection"),
    (62, "Womens Nightwear, Socks & Tigh"),
    (53, "Divided Collection"),
    (21, "Contemporary Casual"),
    (44, "Baby Essentials & Complements"),
    (57, "Womens Lingerie"),
    (8, "Mens Outerwear"),
    (5, "Kids Sports"),
    (66, "Womens Casual"),
    (15, "Womens Everyday Basics"),
)
GARMENT_GROUPS = (  # garment_group_no, garment_group_name
    (1002, "Jersey Basic"),
    (1005, "Jersey Fancy"),
    (1009, "Trousers"),
    (1013, "Dresses Ladies"),
    (1003, "Knitwear"),
    (1017, "Under-, Nightwear"),
    (1021, "Socks and Tights"),
    (1019, "Accessories"),
    (1010, "Blouses"),
    (1016, "Trousers Denim"),
    (1018, "Swimwear"),
    (1011, "Shirts"),
)
NAMES = (  # a prod_name is one of these, one of STYLES and the product type
    "Luna",
    "Tilly",
    "Jade",
    "Mona",
    "Perrie",
    "Haven",
    "Lima",
    "Dolly",
    "Ringo",
    "Timeless",
    "Basic",
    "Cosy",
    "Skinny",
    "Wide",
    "Relaxed",
    "Slim",
    "Ellie",
    "Marcus",
    "Sam",
    "Nora",
    "Rio",
    "Pluto",
    "Kim",
    "Vera",
)
STYLES = ("HW", "LW", "2-pack", "Denim", "Knit", "Linen", "Rib", "Oversized", "Padded", "Frill", "Lace", "Fitted")
FABRICS = (
    "Soft cotton jersey",
    "Fine-knit",
    "Woven",
    "Stretch denim",
    "Ribbed",
    "Airy linen-blend",
    "Recycled polyester",
    "Lyocell twill",
    "Soft, brushed fleece",
    "Thick, warm knit",
)
FEATURES = (
    "a wide, reinforced trim at the top.",
    "long sleeves and a round neckline.",
    "an elasticated waist, side pockets and tapered legs.",
    "a V-neck and narrow, adjustable shoulder straps.",
    "a zip at the front and a lined hood.",
    "a concealed button placket and a yoke at the back.",
    'a "relaxed" fit and dropped shoulders.',
    "covered elastication at the waist and wide legs.",
)


def estimated_bytes(transactions: int, articles: int) -> int:
    """An upper bound of the folder's size on disk (the photo a JPEG of under one block)."""
    return transactions * TRANSACTION_ROW_BYTES + articles * (ARTICLE_ROW_BYTES + FILE_BLOCK_BYTES)


def write_hm_layout(out: Path, transactions: int, articles: int, customers: int, seed: int) -> dict[str, int]:
    """Write the folder to `out` (see the module docstring); return what it holds.

    Refuses up front, before writing anything, when the disk under `out` has less free
    space than `estimated_bytes`.
    """
    for name, value in (("transactions", transactions), ("articles", articles), ("customers", customers)):
        if value < 1:
            raise InputError(f"--{name} must be at least 1, got {value}.")
    low, high = PRODUCT_CODES
    if articles > high - low + 1:
        raise InputError(f"--articles must be at most {high - low + 1} (one product code each), got {articles}.")
    require_disk(
        out,
        estimated_bytes(transactions, articles),
        f"{out}: the generated folder",
        f"--transactions (each row takes about {TRANSACTION_ROW_BYTES} bytes)",
    )
    rng = np.random.default_rng(seed)
    article_ids, prices = write_articles(out, articles, rng)
    customer_ids = hex_ids(customers, rng)
    baskets = draw_baskets(transactions, customers, rng)
    popularity = np.cumsum(rng.lognormal(0.0, ARTICLE_SIGMA, articles))
    write_transactions(out / TRANSACTIONS, baskets, customer_ids, article_ids, prices, popularity, rng)
    photos = write_photos(out, article_ids, rng)
    return {
        "transactions": transactions,
        "customers_with_transactions": len(np.unique(baskets.customer)),
        "articles": articles,
        "photos": photos,
        "csv_mib": round(sum(path.stat().st_size for path in (out / TRANSACTIONS, out / ARTICLES)) / 2**20),
    }


def write_articles(out: Path, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """articles.csv of `count` articles in id order; their ids as numbers and their prices."""
    low, high = PRODUCT_CODES
    variants = rng.geometric(1 / VARIANTS, size=count)  # per product; more products than needed, cut below
    product = np.repeat(np.arange(count), variants)[:count]  # each article's product, in order
    products = int(product[-1]) + 1
    codes = np.sort(rng.choice(high - low + 1, size=products, replace=False)) + low
    variant = 1 + np.arange(count) - np.searchsorted(product, product)  # 1, 2, ... within a product
    article_ids = codes[product] * 1000 + variant

    def per_product(vocabulary: tuple) -> np.ndarray:
        return rng.integers(len(vocabulary), size=products)[product]

    def column(vocabulary: tuple, field: int, drawn: np.ndarray) -> pa.Array:
        return pa.array([entry[field] for entry in vocabulary]).take(pa.array(drawn))

    def words(vocabulary: tuple[str, ...], drawn: np.ndarray) -> pa.Array:
        return pa.array(vocabulary).take(pa.array(drawn))

    kind, name, style = per_product(PRODUCT_TYPES), per_product(NAMES), per_product(STYLES)
    fabric, feature = per_product(FABRICS), per_product(FEATURES)
    department, index, section, garment = (per_product(v) for v in (DEPARTMENTS, INDEXES, SECTIONS, GARMENT_GROUPS))
    appearance, colour = rng.integers(len(APPEARANCES), size=count), rng.integers(len(COLOURS), size=count)
    type_name = column(PRODUCT_TYPES, 1, kind)
    kind_words = pc.utf8_lower(type_name)
    table = pa.table(
        {
            "article_id": pc.utf8_lpad(pa.array(article_ids).cast(pa.string()), width=10, padding="0"),
            "product_code": pa.array(codes[product]),
            "prod_name": pc.binary_join_element_wise(words(NAMES, name), words(STYLES, style), kind_words, " "),
            "product_type_no": column(PRODUCT_TYPES, 0, kind),
            "product_type_name": type_name,
            "product_group_name": column(PRODUCT_TYPES, 2, kind),
            "graphical_appearance_no": column(APPEARANCES, 0, appearance),
            "graphical_appearance_name": column(APPEARANCES, 1, appearance),
            **{header: column(COLOURS, field, colour) for field, header in enumerate(ARTICLES_HEADER[8:14])},
            "department_no": column(DEPARTMENTS, 0, department),
            "department_name": column(DEPARTMENTS, 1, department),
            **{header: column(INDEXES, field, index) for field, header in enumerate(ARTICLES_HEADER[16:20])},
            "section_no": column(SECTIONS, 0, section),
            "section_name": column(SECTIONS, 1, section),
            "garment_group_no": column(GARMENT_GROUPS, 0, garment),
            "garment_group_name": column(GARMENT_GROUPS, 1, garment),
            "detail_desc": pc.binary_join_element_wise(words(FABRICS, fabric), kind_words, "with", words(FEATURES, feature), " "),
        }
    )
    with atomic_path(out / ARTICLES) as tmp, tmp.open("wb") as file:
        file.write((",".join(ARTICLES_HEADER) + "\n").encode())
        file.write(csv_text([table[header] for header in ARTICLES_HEADER]))
    # SEK price tags (x9.99) scaled by 1/590, as the download's prices are; one per product.
    tags = 10 * np.ceil(rng.lognormal(np.log(25), 0.6, products) / 10) - 0.01
    return article_ids, (tags / 590)[product]


def csv_text(columns: list[pa.ChunkedArray]) -> bytes:
    """The CSV lines of `columns`, a field quoted only when it holds a comma, quote or newline (as the real files)."""
    fields = []
    for column in columns:
        text = column.cast(pa.string())
        quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
        fields.append(pc.if_else(pc.match_substring_regex(text, '[,"\n]'), quoted, text))
    fields[-1] = pc.binary_join_element_wise(fields[-1], "\n", "")
    lines = pc.binary_join_element_wise(*fields, ",").combine_chunks()
    offsets = np.frombuffer(lines.buffers()[1], np.int32)[lines.offset : lines.offset + len(lines) + 1]
    return lines.buffers()[2][offsets[0] : offsets[-1]].to_pybytes()


@dataclass(frozen=True)
class Baskets:
    """Customers' baskets in time order: each one customer's consecutive rows on one day in one channel."""

    day: np.ndarray  # (baskets,) int16, days after FIRST_DAY
    customer: np.ndarray  # (baskets,) int32, index of the customer's id
    rows: np.ndarray  # (baskets,) int32, at least 1
    channel: np.ndarray  # (baskets,) int8, sales_channel_id


def draw_baskets(transactions: int, customers: int, rng: np.random.Generator) -> Baskets:
    """Baskets of `transactions` rows in all: each customer's first, then by activity; uniform days, sorted by day."""
    rows = rng.geometric(1 / BASKET_ROWS, size=int(transactions / BASKET_ROWS) + 1)
    while rows.sum() < transactions:
        rows = np.r_[rows, rng.geometric(1 / BASKET_ROWS, size=len(rows) // 10 + 1)]
    ends = np.cumsum(rows)
    last = int(np.searchsorted(ends, transactions))  # the basket holding the last row: cut to fit
    rows = rows[: last + 1].astype(np.int32)
    rows[last] -= int(ends[last]) - transactions
    # Every customer buys once (99.3% of the download's customers did), the other baskets go by activity.
    once = min(customers, len(rows))
    activity = rng.lognormal(0.0, CUSTOMER_SIGMA, customers)
    again = rng.choice(customers, size=len(rows) - once, p=activity / activity.sum())
    customer = np.r_[np.arange(once), again].astype(np.int32)
    days = int((LAST_DAY - FIRST_DAY).astype(int)) + 1
    day = rng.integers(days, size=len(rows), dtype=np.int16)
    channel = np.where(rng.random(len(rows)) < ONLINE, 2, 1).astype(np.int8)
    order = np.argsort(day, kind="stable")
    return Baskets(day[order], customer[order], rows[order], channel[order])


def write_transactions(
    path: Path,
    baskets: Baskets,
    customer_ids: pa.Array,
    article_ids: np.ndarray,
    prices: np.ndarray,
    popularity: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """transactions_train.csv, CHUNK_ROWS rows at a time (a chunk ends with a whole basket).

    A row's article is drawn by `popularity`, the articles' cumulative weights, unless it is a second unit.
    """
    ends = np.cumsum(baskets.rows, dtype=np.int64)
    first_day = FIRST_DAY.astype(int)
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    schema = pa.schema(
        [
            ("t_dat", pa.date32()),
            ("customer_id", pa.large_string()),
            ("article_id", pa.int64()),
            ("price", pa.float64()),
            ("sales_channel_id", pa.int8()),
        ]
    )
    with atomic_path(path) as tmp, tmp.open("wb") as file:
        file.write((",".join(TRANSACTIONS_HEADER) + "\n").encode())
        with pacsv.CSVWriter(file, schema, write_options=options) as writer:
            start = 0
            while start < len(ends):
                stop = int(np.searchsorted(ends, ends[start] - baskets.rows[start] + CHUNK_ROWS, side="right"))
                stop = max(stop, start + 1)
                sizes = baskets.rows[start:stop]
                basket = np.repeat(np.arange(start, stop), sizes)
                article = np.searchsorted(popularity, rng.random(len(basket)) * popularity[-1], side="right")
                opens = np.r_[0, np.cumsum(sizes)[:-1]]
                second_unit = rng.random(len(basket)) < SECOND_UNIT
                second_unit[opens] = False  # a basket's first row repeats nothing
                source = np.maximum.accumulate(np.where(second_unit, 0, np.arange(len(basket))))
                article = article[source]
                writer.write_table(
                    pa.table(
                        {
                            "t_dat": pa.array((first_day + baskets.day[basket]).astype(np.int32)).cast(pa.date32()),
                            "customer_id": customer_ids.take(pa.array(baskets.customer[basket])),
                            "article_id": pa.array(article_ids[article]),
                            "price": pa.array(prices[article]),
                            "sales_channel_id": pa.array(baskets.channel[basket]),
                        },
                        schema=schema,
                    )
                )
                start = stop


def hex_ids(count: int, rng: np.random.Generator) -> pa.Array:
    """`count` random customer ids of 64 lower-case hex characters (the download's are SHA-256 hashes)."""
    digits = np.frombuffer(b"0123456789abcdef", np.uint8)
    random_bytes = rng.integers(256, size=(count, 32), dtype=np.uint8)
    text = np.empty((count, 64), np.uint8)
    text[:, 0::2], text[:, 1::2] = digits[random_bytes >> 4], digits[random_bytes & 15]
    offsets = np.arange(0, 64 * (count + 1), 64, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(text))


def write_photos(out: Path, article_ids: np.ndarray, rng: np.random.Generator) -> int:
    """One placeholder JPEG per article but WITHOUT_PHOTO of them; how many were written."""
    buffer = io.BytesIO()
    Image.new("RGB", PHOTO_SIZE, (200, 196, 188)).save(buffer, format="JPEG", quality=75)
    photo = buffer.getvalue()
    with_photo = [f"{a:010d}" for a in article_ids[rng.random(len(article_ids)) >= WITHOUT_PHOTO]]
    for folder in sorted({a[:3] for a in with_photo}):
        (out / "images" / folder).mkdir(parents=True, exist_ok=True)
    for article in with_photo:
        (out / image_path(article)).write_bytes(photo)
    return len(with_photo)
