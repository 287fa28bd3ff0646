"""Which group goes in which of the paper's tables, read from how its config differs from the reference ODMT:
no run needs a naming convention."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pipeline.models.config import DISPLAY_NAMES, ModelConfig
from pipeline.reporting.runs import Group, Run

IMT_VARIANTS = {2: "w/o IMT (1)", 1: "w/o IMT (2)"}  # separate per-modality Transformers of 2 or 1 layers
BACKBONES = ("sasrec", "gru4rec", "nextitnet")  # Figure 5: ODMT's user encoder against the same ID-only model
ABLATIONS = {f"model.{key}" for key in ("id_mask", "imt", "imt_layers", "distillation", "id_init", "use_id")}
SWEPT = {"model.temperature": "T", "model.alpha": "alpha"}  # Table 4
NO_DISTILLATION = {"model.distillation": False}  # Table 4's "None": distillation weight 0


def reference_config(groups: list[Group]) -> dict[str, Any]:
    """Per parameter, the value most groups share, ties going to the dataclass default: the ODMT the rest vary."""
    defaults = Run("", {}, {}, {}, [], []).config
    reference = {}
    for key in groups[0].config:
        counts = Counter(json.dumps(group.config[key]) for group in groups)
        top = max(counts.values())
        tied = [json.loads(value) for value, count in counts.items() if count == top]
        reference[key] = defaults[key] if defaults[key] in tied else tied[0]
    return reference


def changes(group: Group, reference: dict[str, Any]) -> dict[str, Any]:
    """The parameters where `group` departs from the reference, with its values."""
    return {key: value for key, value in group.config.items() if value != reference[key]}


def ablation_name(model: dict[str, Any]) -> str | None:
    """The Table 3 variant a run's model config is, None for the full ODMT: runs need no naming convention."""
    m = dataclasses.asdict(ModelConfig()) | model
    names = []
    if not m["id_mask"]:
        names.append("w/o ID mask")
    if not m["imt"]:
        names.append(IMT_VARIANTS.get(m["imt_layers"], f"w/o IMT ({m['imt_layers']} layers)"))
    if not m["distillation"]:
        names.append("w/o online distillation")
    if m["id_init"] != "mean":
        names.append(f"ID init {m['id_init']}")
    if not m["use_id"]:
        names.append("ID-free")
    return " + ".join(names) or None


@dataclass(frozen=True)
class Layout:
    """Which group goes in which of the paper's tables, read from how each config differs from the reference."""

    groups: list[Group]

    @cached_property
    def reference(self) -> dict[str, Any]:
        return reference_config(self.groups)

    def where(self, name: str, allowed: set[str]) -> list[Group]:
        """The groups of model `name` that change nothing but `allowed` parameters."""
        return [g for g in self.groups if g.model_name == name and set(changes(g, self.reference)) - {"model.name"} <= allowed]

    @cached_property
    def odmt(self) -> Group | None:
        return next(iter(self.where("odmt", set())), None) if self.reference["model.name"] == "odmt" else None

    @cached_property
    def backbones(self) -> dict[str, Group]:
        """Figure 5: each backbone ID-only and as ODMT's user encoder, when some ODMT runs another backbone."""
        odmts = {g.config["model.user_encoder"]: g for g in self.where("odmt", {"model.user_encoder"})}
        if set(odmts) <= {self.reference["model.user_encoder"]}:
            return {}
        rows = {}
        for backbone in BACKBONES:
            for group in self.where(backbone, set()):
                rows[DISPLAY_NAMES[backbone]] = group
            if backbone in odmts:
                rows[f"ODMT ({DISPLAY_NAMES[backbone]})"] = odmts[backbone]
        return rows

    @cached_property
    def ablations(self) -> dict[str, Group]:
        """Table 3: the full ODMT and each switch, when there are both."""
        variants = [g for g in self.where("odmt", ABLATIONS) if g is not self.odmt]
        if self.odmt is None or not variants:
            return {}
        return {f"{ablation_name(g.runs[0].model) or 'ODMT'} ({g.name})": g for g in [self.odmt, *variants]}

    def sweep(self, key: str) -> dict[str, Group]:
        """Table 4: ODMT at each value of `key`, others at the reference, and "None" (no distillation)."""
        swept = [g for g in self.where("odmt", {key}) if g.config[key] != self.reference[key]]
        if self.odmt is None or not swept:
            return {}
        no_distillation = next((g for g in self.groups if changes(g, self.reference) == NO_DISTILLATION), None)
        rows = {"None": no_distillation} if no_distillation is not None else {}
        for group in sorted([self.odmt, *swept], key=lambda g: g.config[key]):
            rows[f"{SWEPT[key]} = {group.config[key]:g}"] = group
        return rows

    @cached_property
    def overall(self) -> list[Group]:
        """Table 2: ODMT, the baselines and every group no other table holds, in the paper's order."""
        elsewhere = {id(g) for rows in (self.backbones, self.ablations, *map(self.sweep, SWEPT)) for g in rows.values()}
        shown = [g for g in self.groups if set(changes(g, self.reference)) <= {"model.name"} or id(g) not in elsewhere]
        order = list(DISPLAY_NAMES)
        return sorted(shown, key=lambda g: order.index(g.model_name) if g.model_name in order else len(order))
