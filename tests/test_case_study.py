"""`odmt case-study`: seeded users, each scorer's top k as the evaluator ranks them, a page that shows it honestly."""

import base64
import html
import io
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from pipeline.evaluation.case_study import CaseStudy, ShownItem, UserCase, case_study, choose_users
from pipeline.evaluation.case_study_page import TARGET_MARK, render_page, write_page
from pipeline.evaluation.config import CaseStudyConfig, EvaluateConfig
from pipeline.evaluation.evaluate import evaluate
from pipeline.evaluation.ranking import RankingTask, inference_model, item_embeddings, rank_task
from pipeline.evaluation.recommend import recommend
from pipeline.models.checkpoints import load_run
from stages.cli import app
from tests.conftest import HM_MINI
from tests.test_cli import PARAMS, runner

EVALUATE = EvaluateConfig(device="cpu", precision="fp32", cpu_threads=1, users_per_batch=2, items_per_batch=100)
CONFIG = CaseStudyConfig(users=4, seed=0, k=10, thumbnail_px=48, jpeg_quality=70)
DATA_URI = re.compile(r'src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def study(data, odmt_run) -> CaseStudy:
    processed, features = data
    return case_study(odmt_run, processed, features, HM_MINI, CONFIG, EVALUATE)


def test_the_same_seed_draws_the_same_users_and_another_seed_others(data, odmt_run, study):
    processed, features = data
    again = case_study(odmt_run, processed, features, HM_MINI, CONFIG, EVALUATE)
    other = case_study(odmt_run, processed, features, HM_MINI, replace(CONFIG, seed=1), EVALUATE)
    assert [case.user_id for case in again.cases] == [case.user_id for case in study.cases]
    assert [case.user_id for case in other.cases] != [case.user_id for case in study.cases]
    assert again.cases == study.cases  # the same users get the same lists
    assert len({case.user_id for case in study.cases}) == CONFIG.users
    assert choose_users(69, 69, 3, Path("s")) == list(range(69))  # every user once: a draw without replacement


def test_history_and_target_are_the_test_split_and_the_target_rank_is_evaluates(tmp_path, data, odmt_run, study):
    processed, features = data
    evaluate(odmt_run, processed, features, tmp_path, EVALUATE)
    ranks = {row["user_id"]: row for row in pq.read_table(tmp_path / "ranks.parquet").to_pylist() if row["split"] == "test"}
    sequences = {row["user_id"]: row["items"] for row in pq.read_table(processed / "sequences.parquet").to_pylist()}
    assert study.scorers == ["ensemble", "image", "text", "id"]
    for case in study.cases:
        assert [item.item_idx for item in case.history] == sequences[case.user_id][:-1]  # training part + valid item
        assert case.target.item_idx == sequences[case.user_id][-1] == ranks[case.user_id]["target"]
        assert case.target_rank == {name: ranks[case.user_id][f"rank_{name}"] for name in study.scorers}
        for name, top in case.top.items():
            listed = [item.item_idx for item in top]
            assert len(listed) == CONFIG.k and not set(listed) & {item.item_idx for item in case.history}  # history excluded
            if case.target_rank[name] <= CONFIG.k:
                assert listed[case.target_rank[name] - 1] == case.target.item_idx
            else:
                assert case.target.item_idx not in listed


def test_each_list_is_the_evaluators_ranking_and_the_ensemble_is_odmt_recommends(data, odmt_run, study):
    """Each listed item, taken as the target of the same input, gets its place as rank from the ranking module."""
    processed, features = data
    model, _ = load_run(odmt_run, processed, features, torch.device("cpu"))
    model = inference_model(model, "fp32")
    items = item_embeddings(model)
    positions = model.config.positions
    for case in study.cases:
        history = [item.item_idx for item in case.history]
        padded = torch.tensor([[0] * (positions - len(history[-positions:])) + history[-positions:]])
        for name, top in case.top.items():
            listed = [item.item_idx for item in top]
            task = RankingTask(padded.repeat(len(listed), 1), torch.tensor(listed), [sorted(set(history))] * len(listed))
            assert rank_task(model, task, items, {name: study_branches(name, model.branches)}, 4, 100)[name].tolist() == list(
                range(1, len(listed) + 1)
            )
        recommended = recommend(odmt_run, processed, features, CONFIG.k, EVALUATE, history=[item.item_id for item in case.history])
        assert recommended["item_id"].to_pylist() == [item.item_id for item in case.top["ensemble"]]


def study_branches(name: str, branches: tuple[str, ...]) -> list[str]:
    return list(branches) if name == "ensemble" else [name]


def test_the_page_shows_every_history_title_and_marks_the_target_in_every_list_that_holds_it(data, odmt_run, tmp_path):
    processed, features = data
    whole = replace(CONFIG, users=2, k=pq.read_metadata(processed / "items.parquet").num_rows)  # every candidate listed
    study = case_study(odmt_run, processed, features, HM_MINI, whole, EVALUATE)
    size = write_page(study, tmp_path / "page.html", whole)
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert len(page.encode("utf-8")) == size
    hits = sum(rank <= whole.k for case in study.cases for rank in case.target_rank.values())
    assert hits > 0  # so the marks in the lists are checked, not only the target's own card
    marks = sum(1 + sum(item == case.target for item in case.history) for case in study.cases) + hits
    assert page.count(TARGET_MARK) == marks
    for case in study.cases:
        assert all(html.escape(item.title) in page for item in case.history)
        assert f"target rank {case.target_rank['image']} of {study.items}" in page or case.target_in_history
    images = DATA_URI.findall(page)
    assert len(images) == sum(len(case.history) + 1 + sum(map(len, case.top.values())) for case in study.cases)
    with Image.open(io.BytesIO(base64.b64decode(images[0]))) as thumbnail:
        assert thumbnail.format == "JPEG" and max(thumbnail.size) == whole.thumbnail_px
    assert "<script" not in page and "http://" not in page and "https://" not in page  # self-contained: it works moved


def hand_made(raw: Path, title: str) -> CaseStudy:
    """A one-user study whose items all carry `title`, no model needed."""
    photo = next(raw.glob("images/*/*.jpg")).relative_to(raw).as_posix()
    items = [ShownItem(i, f"{i:010d}", title, photo) for i in range(1, 4)]
    case = UserCase(0, "u<0>", items[:2], 12, items[2], {"ensemble": 1}, {"ensemble": [items[2]]})
    return CaseStudy(Path("runs/odmt"), raw, 1, 3, 0, 1, True, ["ensemble"], [case])


def test_titles_and_ids_are_escaped_never_markup():
    page = render_page(hand_made(HM_MINI, "<b>x</b> & 'y'"), CONFIG)
    assert "<b>x</b>" not in page and "u<0>" not in page
    assert "&lt;b&gt;x&lt;/b&gt; &amp; &#x27;y&#x27;" in page and "u&lt;0&gt;" in page


def case_study_command(run: Path, data: tuple[Path, Path], raw: Path, out: Path, *more: str) -> list[str]:
    processed, features = data
    return [
        "case-study",
        *("--run", str(run), "--processed", str(processed), "--features", str(features), "--raw", str(raw), "--out", str(out)),
        *PARAMS,
        *("-S", "evaluate.precision=fp32", "-S", "evaluate.device=cpu"),
        *more,
    ]


def test_the_command_writes_the_page_for_the_users_and_seed_given(tmp_path, data, odmt_run):
    out = tmp_path / "pages" / "case.html"
    result = runner.invoke(app, case_study_command(odmt_run, data, HM_MINI, out, "--users", "3", "--seed", "7"))
    assert result.exit_code == 0, result.output
    expected = case_study(odmt_run, *data, HM_MINI, replace(CONFIG, users=3, seed=7), EVALUATE)
    page = out.read_text(encoding="utf-8")
    assert page.count('<section class="user">') == 3 and all(html.escape(case.user_id) in page for case in expected.cases)
    assert "3 of 69 test users (seed 7)" in result.output


def assert_refused(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert all(word in result.output for word in words), result.output


def test_an_unknown_run_is_refused(tmp_path, data):
    result = runner.invoke(app, case_study_command(tmp_path / "no-run", data, HM_MINI, tmp_path / "case.html"))
    assert_refused(result, "no-run", "odmt train")
    assert not (tmp_path / "case.html").exists()


def test_more_users_than_the_test_users_is_refused(tmp_path, data, odmt_run):
    result = runner.invoke(app, case_study_command(odmt_run, data, HM_MINI, tmp_path / "case.html", "--users", "70"))
    assert_refused(result, "case_study.users = 70", "69 test users")
    result = runner.invoke(app, case_study_command(odmt_run, data, HM_MINI, tmp_path / "case.html", "--users", "0"))
    assert_refused(result, "case_study.users", "at least 1")


def test_a_missing_photo_is_refused_naming_the_item_and_the_file(tmp_path, data, odmt_run, study):
    raw = tmp_path / "raw"
    shutil.copytree(HM_MINI / "images", raw / "images")
    target = study.cases[0].target  # the draw of CONFIG (users 4, seed 0): the first user's test item is on the page
    (raw / target.image_path).unlink()
    result = runner.invoke(app, case_study_command(odmt_run, data, raw, tmp_path / "case.html", "--users", "4", "--seed", "0"))
    assert_refused(result, f"item {target.item_id}", target.image_path.rsplit("/", 1)[-1], "missing")
    result = runner.invoke(app, case_study_command(odmt_run, data, tmp_path / "no-raw", tmp_path / "case.html"))
    assert_refused(result, "no-raw", "--raw")


def test_out_naming_a_folder_is_refused_before_any_work(tmp_path, data, odmt_run, monkeypatch):
    monkeypatch.setattr("pipeline.evaluation.case_study.case_study", lambda *args: pytest.fail("ranked before --out was checked"))
    result = runner.invoke(app, case_study_command(odmt_run, data, HM_MINI, tmp_path))
    assert_refused(result, str(tmp_path), "is a folder")


def test_a_browser_draws_the_page(tmp_path, study):
    """What a reader sees: headless Chromium's screenshot of the page is a picture, not a blank or broken page."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    write_page(study, tmp_path / "page.html", CONFIG)
    shot = tmp_path / "page.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1400,2000",
            (tmp_path / "page.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    with Image.open(shot) as picture:
        colours = picture.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200  # photos, text and the marks: a blank page has a handful
