"""`ingest.<source>` in params.yaml: kept apart from the readers so loading params never imports pyarrow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pipeline.errors import Count, Range, check_ranges

# Bytes of CSV parsed at a time: pyarrow's reader needs room for a whole line, and smaller blocks only cost time.
BlockBytes = Annotated[int, Range(1 << 16)]


@dataclass(frozen=True)
class HMConfig:
    """`ingest.hm` in params.yaml (pipeline/formats/hm.py)."""

    # The paper's item text: these articles.csv columns, joined in this order.
    text_columns: tuple[str, ...] = (
        "prod_name",
        "product_type_name",
        "product_group_name",
        "graphical_appearance_name",
        "colour_group_name",
    )
    text_separator: str = " "
    # One purchase of two units is two identical rows (same customer, article, day).
    collapse_duplicates: bool = True
    # Bytes of CSV parsed at a time: bounds memory on the 31.8M-row file.
    block_size_bytes: BlockBytes = 1 << 24

    def __post_init__(self) -> None:
        check_ranges(self)
        if not self.text_columns:
            raise ValueError("text_columns must name at least one articles.csv column")


@dataclass(frozen=True)
class AmazonConfig:
    """`ingest.amazon` in params.yaml (pipeline/formats/amazon.py)."""

    # Reviews file in the raw folder (Arts_Crafts_and_Sewing.json.gz); None: the meta file's partner.
    reviews: str | None = None
    # Meta file in the raw folder (meta_Arts_Crafts_and_Sewing.json.gz); None: the only meta_*.json[.gz].
    meta: str | None = None
    # The paper's item text: these meta fields, joined in this order (list entries joined too).
    text_fields: tuple[str, ...] = ("title", "brand", "category", "description")
    text_separator: str = " "
    # Pictures the user downloaded, at <images>/<image_name> under the raw folder ({asin} is replaced).
    images: str = "images"
    image_name: str = "{asin}.jpg"
    # The dumps repeat some reviews verbatim (same reviewer, product and time): keep the first.
    collapse_duplicates: bool = True
    # Lines parsed into one pyarrow table at a time: bounds memory on files of millions of lines.
    batch_rows: Count = 65536

    def __post_init__(self) -> None:
        check_ranges(self)
        if not self.text_fields:
            raise ValueError("text_fields must name at least one meta field, such as title")
        try:
            named = self.image_name.format(asin="ASIN")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"image_name {self.image_name!r} may use only the field {{asin}}: {error}") from None
        if named == self.image_name:
            raise ValueError(f"image_name {self.image_name!r} must contain {{asin}}, e.g. {{asin}}.jpg")


@dataclass(frozen=True)
class MicroLensConfig:
    """`ingest.microlens` in params.yaml (pipeline/formats/microlens.py)."""

    # Interactions file in the raw folder (*_pairs.csv or *_pairs.tsv); None: the only *_pairs.csv, else *_pairs.tsv.
    pairs: str | None = None
    # Titles file in the raw folder; None: the only *_titles.csv, else *_title_en.csv (100k release).
    titles: str | None = None
    # Whether the titles file starts with a header line; None: guess from line 1 (the 100k release ships both).
    titles_header: bool | None = None
    # Covers folder in the raw folder; None: the only *_covers folder.
    covers: str | None = None
    # File name of an item's cover inside the covers folder.
    cover_name: str = "{item}.jpg"
    # Bytes of the pairs CSV parsed at a time: bounds memory on big releases.
    block_size_bytes: BlockBytes = 1 << 24
    # Lines of the pairs TSV turned into one pyarrow batch at a time: bounds memory likewise.
    batch_lines: Count = 65536

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.pairs is not None and not self.pairs.endswith((".csv", ".tsv")):
            raise ValueError("pairs must name a .csv (user,item,timestamp) or .tsv (user<TAB>items) file, or be null")
        if "{item}" not in self.cover_name:
            raise ValueError("cover_name must hold {item}, e.g. {item}.jpg")


@dataclass(frozen=True)
class RecBoleConfig:
    """`ingest.recbole` in params.yaml (pipeline/formats/recbole.py)."""

    # Dataset name, the stem of <name>.inter and <name>.item; None: the only *.inter in the raw folder.
    name: str | None = None
    # RecBole's USER_ID_FIELD, ITEM_ID_FIELD and TIME_FIELD, at RecBole's defaults; the time field may be absent.
    user_field: str = "user_id"
    item_field: str = "item_id"
    time_field: str = "timestamp"
    # .item fields forming the item text, joined in this order; empty: every token and token_seq field
    # but the item id, in header order.
    text_fields: tuple[str, ...] = ()
    text_separator: str = " "
    # Pictures at <images>/<item_id>.<extension> under the raw folder, extensions tried in this order.
    images: str = "images"
    image_extensions: tuple[str, ...] = ("jpg", "jpeg", "png")
    # Lines turned into one pyarrow batch at a time: bounds memory on big files.
    batch_lines: Count = 65536

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.name is not None and not self.name.strip():
            raise ValueError("name must be null or a dataset name such as ml-1m")
        for field in ("user_field", "item_field", "time_field"):
            if not getattr(self, field):
                raise ValueError(f"{field} must name a field of the atomic files")
        if not self.image_extensions:
            raise ValueError("image_extensions must list at least one extension, such as jpg")


@dataclass(frozen=True)
class OdmtTsvConfig:
    """`ingest.odmt_tsv` in params.yaml (pipeline/formats/odmt_tsv.py)."""

    # Prefix of the three files (Arts for Arts_user_behaviours.tsv); None: the only one in the raw folder.
    tag: str | None = None
    # Lines of a TSV file turned into one pyarrow batch at a time: bounds memory on big files.
    batch_lines: Count = 65536

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.tag is not None and not self.tag.strip():
            raise ValueError("tag must be null or a file prefix such as Arts")
