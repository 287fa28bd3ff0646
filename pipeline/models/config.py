"""`model` in params.yaml: kept apart from the model code so loading params never imports torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pipeline.errors import Count, Positive, Probability, Range, check_ranges

PositionsFrom = Literal["latest", "oldest"]  # model.positions_from: SASRec's position 0 (see pipeline/models/sasrec.py)
Attention = Literal["auto", "sdpa", "explicit"]  # model.attention: how every attention layer computes (same result)
Backbone = Literal["sasrec", "gru4rec", "nextitnet"]  # model.user_encoder, and the ID-only baselines' model.name
# model.name: ODMT; an ID-only baseline of that backbone; FDSA; UniSRec; or SASRec+LF / SASRec+EF (late / early fusion)
ModelName = Literal["odmt", "sasrec", "gru4rec", "nextitnet", "fdsa", "unisrec", "sasrec_lf", "sasrec_ef"]
# model.name -> the paper's name, in Table 2's column order (reports print these; pipeline/models/registry.py builds them)
DISPLAY_NAMES: dict[str, str] = {
    "gru4rec": "GRU4Rec",
    "sasrec": "SASRec",
    "nextitnet": "NextItNet",
    "fdsa": "FDSA",
    "unisrec": "UniSRec",
    "sasrec_ef": "SASRec+EF",
    "sasrec_lf": "SASRec+LF",
    "odmt": "ODMT",
}


@dataclass(frozen=True)
class ModelConfig:
    """Which model, and its architecture and loss. Each model reads the fields it needs
    (RecBole-style); every Table 3 ablation of ODMT is one switch here."""

    name: ModelName = "odmt"
    hidden_size: Count = 384  # d: every modality is projected to it (W^m E^m + b^m)
    imt: bool = True  # False: separate Transformers per modality ("w/o IMT")
    imt_layers: Count = 2  # IMT layers; with imt off, layers of each per-modality Transformer
    imt_heads: Count = 2
    imt_norm: Literal["post", "pre"] = "post"  # the IMT's LayerNorm after each residual (authors') or before
    id_mask: bool = True  # image and text queries cannot attend to the ID key
    use_id: bool = True  # False: ID-free ODMT, image and text branches only
    standardize_features: bool = True  # ODMT: centre and scale every feature dimension over the catalogue first
    id_init: Literal["mean", "text", "image", "random"] = "mean"  # ID table from the CLS features (standardised when standardize_features)
    user_encoder: Backbone = "sasrec"  # ODMT: each branch's backbone (Figure 5)
    user_layers: Count = 2  # SASRec: Transformer layers; GRU4Rec: GRU layers; NextItNet: repeats of user_dilations
    user_heads: Count = 2  # SASRec only
    user_kernel_size: Count = 3  # NextItNet only (RecBole's default)
    user_dilations: tuple[Count, ...] = (1, 4)  # NextItNet only: each residual block convolves at r, then 2r
    adaptor_experts: Count = 8  # UniSRec only: whitening experts of its MoE adaptor (UniSRec's default)
    unisrec_temperature: Positive = 0.07  # UniSRec only: scores are cosine / this (UniSRec's default)
    positions: Count = 12  # user-encoder input length (the authors' max_seq_len)
    positions_from: PositionsFrom = "latest"  # SASRec: position 0 the first slot (authors') or the oldest item (RecBole)
    dropout: Probability = 0.1
    layer_norm_eps: Positive = 1e-6
    initializer_range: Positive = 0.02  # std of the normal init of learned ID tables and SASRec's positions (RecBole's)
    distillation: bool = True  # online distillation (eq. 7-9); False: late fusion, CE on averaged logits
    temperature: Positive = 0.5  # T of eq. 9 (paper: 0.5 on H&M)
    alpha: Positive = 60.0  # ramp-up of the distillation weight (paper: 60 on H&M)
    detach_teacher: bool = False  # the authors' code lets gradients flow into the teacher
    deduplicate_items: bool = True  # encode each distinct item of a batch once (same result, faster)
    # training: the IMT's activations recomputed in backward, this many items at a time (0: kept)
    recompute_items: Annotated[int, Range(0)] = 0
    attention: Attention = "auto"  # explicit | sdpa (scaled_dot_product_attention) | auto: explicit only when training on CPU

    def __post_init__(self) -> None:
        check_ranges(self)
        for heads in ("imt_heads", "user_heads"):  # attention splits d into equal parts, one per head
            if self.hidden_size % getattr(self, heads):
                raise ValueError(
                    f"hidden_size = {self.hidden_size} is not a multiple of {heads} = {getattr(self, heads)}; change one of them"
                )
