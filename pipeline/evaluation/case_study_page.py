"""The case study as one self-contained HTML page: plain HTML and inline CSS, photos embedded.

Thumbnails are small JPEGs inside the page as base64 data URIs, so the page works when it is
moved or mailed; there is no script and no external URL. Titles and ids are data: every one
goes through `html.escape`. The page is a function of its inputs (no date, no path of this
machine), so it can be a DVC output like any other.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from PIL import Image

from pipeline.artifacts import atomic_path
from pipeline.evaluation.case_study import CaseStudy, ShownItem, UserCase, photo
from pipeline.evaluation.config import CaseStudyConfig
from pipeline.features.images import load_rgb

TARGET_MARK = '<span class="mark">target</span>'  # on the target's card, in every list that holds it
LEGEND_MARK = '<span class="mark inline">target</span>'  # the same badge in the text above the users, not a card's mark

STYLE = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 16px; background: #fafafa; }
h1 { font-size: 22px; margin: 0 0 6px; }
p.about { max-width: 1100px; color: #444; margin: 0 0 18px; }
section.user { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 10px 14px; margin: 0 0 22px; }
section.user h2 { font-size: 17px; margin: 0 0 4px; overflow-wrap: anywhere; }
p.ranks { margin: 0 0 8px; color: #333; }
p.ranks b.hit { color: #b00020; }
.row { display: flex; gap: 10px; align-items: flex-start; border-top: 1px solid #eee; padding: 8px 0; }
.label { flex: 0 0 118px; font-weight: 600; }
.label small { display: block; font-weight: 400; color: #666; }
.cards { display: flex; flex-wrap: wrap; gap: 6px; }
figure.card { position: relative; margin: 0; padding: 3px; border: 2px solid #e4e4e4; border-radius: 4px; background: #fff; }
figure.card .photo { display: flex; align-items: center; justify-content: center; }
figure.card figcaption { font-size: 11px; line-height: 1.25; margin-top: 3px; }
figure.card figcaption code { font-size: 10px; color: #666; display: block; }
figure.card figcaption span { display: -webkit-box; -webkit-line-clamp: 3; -webkit-box-orient: vertical; overflow: hidden;
  height: 3.75em; overflow-wrap: anywhere; }
figure.card .pos { position: absolute; top: 2px; left: 2px; background: #333; color: #fff; font-size: 10px; padding: 0 4px;
  border-radius: 3px; }
figure.card.target { border-color: #b00020; background: #fff0f2; box-shadow: 0 0 0 2px #b00020; }
figure.card.unread { opacity: 0.45; }
span.mark { position: absolute; top: 2px; right: 2px; background: #b00020; color: #fff; font-size: 10px; font-weight: 700;
  text-transform: uppercase; padding: 0 4px; border-radius: 3px; }
span.mark.inline { position: static; }
""".strip()


def sized(thumbnail_px: int) -> str:
    """The rules that follow the thumbnail size: every card as wide as the largest photo, so cards line up."""
    return (
        f"figure.card {{ width: {thumbnail_px}px; }}\n"
        f"figure.card .photo {{ height: {thumbnail_px}px; }}\n"
        f"figure.card img {{ max-width: {thumbnail_px}px; max-height: {thumbnail_px}px; }}"
    )


def thumbnail(raw: Path, item: ShownItem, config: CaseStudyConfig) -> str:
    """An <img> of the item's photo, shrunk to `thumbnail_px` on its longest side, as an embedded JPEG."""
    image = load_rgb(photo(raw, item), item.item_id)
    image.thumbnail((config.thumbnail_px, config.thumbnail_px), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=config.jpeg_quality)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/jpeg;base64,{data}" width="{image.width}" height="{image.height}" alt="{html.escape(item.title)}">'


def card(item: ShownItem, image: str, position: int | None, target: bool, unread: bool = False) -> str:
    """One item: its photo, id and title, its place in the list (if any), the target's mark where it is the target."""
    classes = " ".join(["card", *(["target"] if target else []), *(["unread"] if unread else [])])
    place = "" if position is None else f'<span class="pos">{position}</span>'
    title = html.escape(item.title)
    caption = f'<figcaption title="{title}"><code>{html.escape(item.item_id)}</code><span>{title}</span></figcaption>'
    return f'<figure class="{classes}">{place}{TARGET_MARK if target else ""}<div class="photo">{image}</div>{caption}</figure>'


def rank_note(case: UserCase, name: str, study: CaseStudy) -> str:
    """What a scorer did with the target, in words."""
    rank = case.target_rank[name]
    if case.target_in_history and study.exclude_history:
        return f"target in the history: excluded (rank {rank} of {study.items})"
    return f"target rank {rank} of {study.items}"


def user_section(case: UserCase, study: CaseStudy, images: dict[int, str]) -> str:
    target = case.target.item_idx
    unread = len(case.history) - case.read  # the oldest ones: past the encoder's window
    ranks = " · ".join(
        f'{html.escape(name)} <b class="hit">{rank}</b>' if rank <= study.k else f"{html.escape(name)} {rank}"
        for name, rank in case.target_rank.items()
    )
    history_note = f"oldest first; {len(case.history)} items"
    if unread > 0:
        history_note += f", the model reads the latest {case.read} (faded: not read)"
    history = "".join(
        card(item, images[item.item_idx], i, item.item_idx == target, unread=i <= unread) for i, item in enumerate(case.history, start=1)
    )
    rows = [
        f'<div class="row"><div class="label">history<small>{history_note}</small></div><div class="cards">{history}</div></div>',
        f'<div class="row"><div class="label">test item<small>what came next, held out</small></div>'
        f'<div class="cards">{card(case.target, images[target], None, True)}</div></div>',
    ]
    for name, top in case.top.items():
        cards = "".join(card(item, images[item.item_idx], i, item.item_idx == target) for i, item in enumerate(top, start=1))
        rows.append(
            f'<div class="row"><div class="label">{html.escape(name)}<small>{rank_note(case, name, study)}</small></div>'
            f'<div class="cards">{cards}</div></div>'
        )
    return (
        f'<section class="user"><h2>User {html.escape(case.user_id)} <small>(user_idx {case.user_idx})</small></h2>'
        f'<p class="ranks">Target rank per scorer (of {study.items}; in red when in the top {study.k}): {ranks}</p>'
        + "".join(rows)
        + "</section>"
    )


def render_page(study: CaseStudy, config: CaseStudyConfig) -> str:
    """The whole page as one string: every photo read once, thumbnails embedded."""
    images = {idx: thumbnail(study.raw, item, config) for idx, item in sorted(study.shown().items())}
    excluded = "excluded from every list" if study.exclude_history else "not excluded (evaluate.exclude_history: false)"
    about = (
        f"{len(study.cases)} of the {study.users} test users, drawn at random with seed {study.seed}, ranked against all "
        f"{study.items} items exactly as <code>odmt evaluate</code> ranks the test split: the input is the training part and "
        f"the valid item (the history below), its items {excluded}; each list is a scorer's top {study.k}, "
        f"<i>ensemble</i> being ODMT's prediction (the mean of the branch scores) and each other one branch alone. "
        f"A target's rank counts ties against it, as in ranks.parquet. {LEGEND_MARK} marks the held-out test item."
    )
    sections = "".join(user_section(case, study, images) for case in study.cases)
    name = html.escape(study.run.name)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Case study: {name}</title><style>{STYLE}\n{sized(config.thumbnail_px)}</style></head>\n<body>"
        f'<h1>What each modality ranks first: run {name}</h1><p class="about">{about}</p>\n{sections}\n</body></html>\n'
    )


def write_page(study: CaseStudy, out: Path, config: CaseStudyConfig) -> int:
    """Write the page to `out` atomically; its size in bytes."""
    page = render_page(study, config).encode("utf-8")
    with atomic_path(out) as tmp:
        tmp.write_bytes(page)
    return len(page)
