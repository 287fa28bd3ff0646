"""Extraction on the embedded sample with tiny random encoders saved as local folders (fast, offline)."""

import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from pipeline.dataset.prepare import PrepareConfig, prepare
from pipeline.errors import InputError
from pipeline.features import extract as extraction
from pipeline.features.config import ExtractConfig, ImageFeaturesConfig, TextFeaturesConfig
from pipeline.features.encoders import TextEncoder
from pipeline.features.images import load_rgb
from pipeline.features.store import read_shard
from pipeline.formats.hm import HMConfig, ingest_hm
from stages.cli import app
from tests.conftest import HM_MINI, REPO


@pytest.fixture(scope="module")
def processed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hm-mini")
    ingest_hm(HM_MINI, root / "interim", HMConfig())
    prepare(root / "interim", HM_MINI, root / "processed", PrepareConfig())
    return root / "processed"


def config(tiny_bert: str, tiny_dinov2: str, **changes) -> ExtractConfig:
    base = ExtractConfig(
        text=TextFeaturesConfig(encoder=tiny_bert),
        image=ImageFeaturesConfig(encoder=tiny_dinov2, loader_workers=0),
        shard_size=200,
        batch_size=64,
        device="cpu",
    )
    return replace(base, **changes)


def all_shards(folder: Path, with_mask: bool):
    parts = [read_shard(path, with_mask) for path in sorted(folder.glob("shard-*.h5"))]
    return [np.concatenate(column) if column[0] is not None else None for column in zip(*parts)]


def test_text_shards_hold_the_encoder_output_for_every_item(tmp_path, processed, tiny_bert, tiny_dinov2):
    from transformers import AutoModel, AutoTokenizer

    manifest = extraction.extract("text", processed, HM_MINI, tmp_path / "text", config(tiny_bert, tiny_dinov2))
    items = pq.read_table(processed / "items.parquet")
    assert [s["file"] for s in manifest.shards] == ["shard-00000.h5", "shard-00001.h5", "shard-00002.h5"]
    assert manifest.complete and manifest.identity.L == 30 and manifest.identity.d == 32
    item_idx, tokens, mask = all_shards(tmp_path / "text", with_mask=True)
    assert item_idx.tolist() == items["item_idx"].to_pylist()
    assert tokens.shape == (items.num_rows, 30, 32) and tokens.dtype == np.float16

    tokenizer, model = AutoTokenizer.from_pretrained(tiny_bert), AutoModel.from_pretrained(tiny_bert).eval()
    texts = items["text"].to_pylist()[:5]
    batch = tokenizer(texts, max_length=30, truncation=True, padding="max_length", return_tensors="pt")
    assert batch["input_ids"][0, 0] == tokenizer.cls_token_id  # CLS first
    assert texts[0] != texts[0].lower()  # H&M names are capitalised; the uncased tokenizer lower-cases them
    assert tokenizer(texts[0])["input_ids"] == tokenizer(texts[0].lower())["input_ids"]
    with torch.inference_mode():
        expected = model(**batch).last_hidden_state.numpy()
    assert np.array_equal(mask[:5], batch["attention_mask"].bool().numpy())
    assert np.allclose(tokens[:5], expected, atol=2e-3)


def test_an_encoder_output_that_is_not_finite_is_never_written(tmp_path, processed, tiny_bert, tiny_dinov2):
    class Overflowing(TextEncoder):
        def __call__(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            hidden, mask = super().__call__(inputs)
            hidden[2, 0, 0] = 1e6  # the third item of every batch: beyond float16's range, infinite as stored
            return hidden, mask

    settings = config(tiny_bert, tiny_dinov2)
    encoder = Overflowing(tiny_bert, settings.text.max_tokens, torch.device("cpu"))
    item_id = pq.read_table(processed / "items.parquet")["item_id"][2].as_py()
    refused = (
        rf"{re.escape(tiny_bert)}: encoded item_idx 3 \(item_id {item_id}\) to NaN or infinite values, "
        r"so .*shard-00000.h5 is not written; run with -S extract.precision=fp32"
    )
    with pytest.raises(InputError, match=refused):
        extraction.extract("text", processed, HM_MINI, tmp_path / "text", settings, encoder=encoder)
    assert list((tmp_path / "text").glob("*.h5")) == []


def test_interrupted_run_resumes_to_the_same_bytes(tmp_path, processed, tiny_bert, tiny_dinov2, monkeypatch):
    settings = config(tiny_bert, tiny_dinov2)
    extraction.extract("text", processed, HM_MINI, tmp_path / "full", settings)

    written = []
    real_write = extraction.write_shard

    def write_then_die(path, *args):
        if len(written) == 1:
            raise KeyboardInterrupt  # Ctrl-C while the second shard is being written
        written.append(path.name)
        real_write(path, *args)

    monkeypatch.setattr(extraction, "write_shard", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        extraction.extract("text", processed, HM_MINI, tmp_path / "resumed", settings)
    assert sorted(p.name for p in (tmp_path / "resumed").glob("shard-*")) == ["shard-00000.h5"]
    (tmp_path / "resumed" / ".shard-00001.h5.tmp-4242").write_bytes(b"half")  # what kill -9 leaves behind

    written.clear()
    monkeypatch.setattr(extraction, "write_shard", lambda path, *args: (written.append(path.name), real_write(path, *args)))
    extraction.extract("text", processed, HM_MINI, tmp_path / "resumed", settings)
    assert written == ["shard-00001.h5", "shard-00002.h5"]  # the finished shard was kept
    assert sorted(p.name for p in (tmp_path / "resumed").iterdir()) == sorted(p.name for p in (tmp_path / "full").iterdir())
    for full, resumed in zip(sorted((tmp_path / "full").glob("*.h5")), sorted((tmp_path / "resumed").glob("*.h5"))):
        assert full.read_bytes() == resumed.read_bytes()  # the same files, checksums included: DVC hashes them


def test_changed_encoder_or_items_are_refused_unless_forced(tmp_path, processed, tiny_bert, tiny_dinov2):
    settings = config(tiny_bert, tiny_dinov2)
    out = tmp_path / "text"
    extraction.extract("text", processed, HM_MINI, out, settings)
    shorter = replace(settings, text=replace(settings.text, max_tokens=12))
    with pytest.raises(InputError, match=r"L: 30 -> 12.*max_tokens.*--force"):
        extraction.extract("text", processed, HM_MINI, out, shorter)
    assert extraction.extract("text", processed, HM_MINI, out, shorter, force=True).identity.L == 12
    assert all_shards(out, True)[1].shape[1] == 12

    changed = tmp_path / "processed"
    shutil.copytree(processed, changed)
    items = pq.read_table(changed / "items.parquet")
    texts = items["text"].to_pylist()
    texts[0] = "a different text"
    pq.write_table(items.set_column(2, "text", [texts]), changed / "items.parquet")
    with pytest.raises(InputError, match="items_fingerprint"):
        extraction.extract("text", changed, HM_MINI, out, shorter)


def test_image_tokens_pooled_to_the_grid_and_workers_change_nothing(tmp_path, processed, tiny_bert, tiny_dinov2):
    settings = config(tiny_bert, tiny_dinov2, shard_size=64)
    small = processed.parent / "processed-small"
    if not small.exists():
        shutil.copytree(processed, small)
        items = pq.read_table(processed / "items.parquet")
        pq.write_table(items.slice(0, 70), small / "items.parquet")
    pooled = extraction.extract("image", small, HM_MINI, tmp_path / "pooled", settings)
    assert pooled.identity.L == 50 and pooled.identity.pooling.endswith("7x7")
    with_workers = replace(settings, image=replace(settings.image, loader_workers=2))
    extraction.extract("image", small, HM_MINI, tmp_path / "workers", with_workers)
    assert all_shards(tmp_path / "pooled", False)[1].tobytes() == all_shards(tmp_path / "workers", False)[1].tobytes()

    every_patch = replace(settings, image=replace(settings.image, pool_grid=None))
    assert extraction.extract("image", small, HM_MINI, tmp_path / "all", every_patch).identity.L == 1 + 16 * 16
    processor = replace(settings, image=replace(settings.image, size=None))
    manifest = extraction.extract("image", small, HM_MINI, tmp_path / "processor", processor)
    assert manifest.identity.preprocessing["resize"].startswith("BitImageProcessor")


def test_unknown_encoder_says_how_to_get_it(tmp_path, processed, tiny_bert, tiny_dinov2, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1 does; no network wait
    settings = config(tiny_bert, tiny_dinov2)
    settings = replace(settings, text=replace(settings.text, encoder="no-such-org/no-such-model"))
    with pytest.raises(InputError, match="no-such-org/no-such-model.*HF_HUB_OFFLINE"):
        extraction.extract("text", processed, HM_MINI, tmp_path / "text", settings)


def test_extract_command_writes_both_modalities(tmp_path, processed, tiny_bert, tiny_dinov2):
    small = tmp_path / "processed"
    shutil.copytree(processed, small)
    pq.write_table(pq.read_table(processed / "items.parquet").slice(0, 10), small / "items.parquet")
    result = CliRunner().invoke(
        app,
        [
            "extract",
            "--processed",
            str(small),
            "--raw",
            str(HM_MINI),
            "--out",
            str(tmp_path / "features"),
            "--params",
            str(REPO / "params.yaml"),
            "-S",
            f"extract.text.encoder={tiny_bert}",
            "-S",
            f"extract.image.encoder={tiny_dinov2}",
            "-S",
            "extract.image.loader_workers=0",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "text: 10 items x 30 tokens x 32 dims" in result.output
    assert "image: 10 items x 50 tokens x 32 dims" in result.output


def test_clip_yields_its_last_layer_before_the_post_layernorm(tmp_path, processed):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPVisionModel

    folder = tmp_path / "tiny-clip"
    torch.manual_seed(0)
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 224,
        "patch_size": 32,
    }
    text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    CLIPModel(CLIPConfig(vision_config=vision, text_config=text, projection_dim=16)).save_pretrained(folder)
    CLIPImageProcessor().save_pretrained(folder)
    small = tmp_path / "processed"
    shutil.copytree(processed, small)
    items = pq.read_table(processed / "items.parquet").slice(0, 3)
    pq.write_table(items, small / "items.parquet")

    settings = ExtractConfig(image=ImageFeaturesConfig(encoder=str(folder), loader_workers=0), device="cpu")
    manifest = extraction.extract("image", small, HM_MINI, tmp_path / "image", settings)
    assert manifest.identity.L == 50  # 7x7 patches of 32 px + CLS: nothing to pool
    tokens = all_shards(tmp_path / "image", False)[1]

    model = CLIPVisionModel.from_pretrained(folder).eval()
    encoder = extraction.load_encoder("image", settings)
    pixels = torch.stack([encoder.preprocess(load_rgb(HM_MINI / path, "item")) for path in items["image_path"].to_pylist()])
    with torch.inference_mode():
        output = model(pixel_values=pixels)
    assert np.allclose(tokens, output.last_hidden_state.numpy(), atol=2e-3)
    assert not np.allclose(tokens[:, 0], output.pooler_output.numpy(), atol=1e-2)  # pooler = post-layernorm CLS
