from dataclasses import replace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import InputError
from pipeline.evaluation.config import EvaluateConfig
from pipeline.evaluation.recommend import COLD_USER, RECOMMENDATIONS, recommend
from stages.cli import app
from tests.conftest import run_options
from tests.test_cli import PARAMS, runner

CONFIG = EvaluateConfig(device="cpu", precision="fp32", cpu_threads=1, users_per_batch=7)


def test_recommendations_are_k_distinct_unseen_items_per_user(data, odmt_run):
    processed, features = data
    sequences = pq.read_table(processed / "sequences.parquet").to_pylist()
    item_ids = pq.read_table(processed / "items.parquet")["item_id"].to_pylist()
    table = recommend(odmt_run, processed, features, 5, CONFIG).to_pylist()
    assert len(table) == 5 * len(sequences)
    for user in sequences:
        mine = [row for row in table if row["user_id"] == user["user_id"]]
        assert [row["rank"] for row in mine] == [1, 2, 3, 4, 5]
        assert len({row["item_id"] for row in mine}) == 5
        assert not {row["item_id"] for row in mine} & {item_ids[i - 1] for i in user["items"]}  # history excluded
        assert [row["score"] for row in mine] == sorted((row["score"] for row in mine), reverse=True)
    one = recommend(odmt_run, processed, features, 5, CONFIG, user_ids=[sequences[3]["user_id"]]).to_pylist()
    same_user = [row for row in table if row["user_id"] == sequences[3]["user_id"]]
    assert [row["item_id"] for row in one] == [row["item_id"] for row in same_user]  # blocks do not matter
    assert [row["score"] for row in one] == pytest.approx([row["score"] for row in same_user], rel=1e-5)
    with_history = recommend(
        odmt_run, processed, features, 5, replace(CONFIG, exclude_history=False), user_ids=[sequences[3]["user_id"]]
    ).to_pylist()
    assert [row["score"] for row in with_history][0] >= one[0]["score"]


def test_a_cold_user_gets_recommendations_from_item_ids(data, odmt_run):
    processed, features = data
    sequences = pq.read_table(processed / "sequences.parquet").to_pylist()
    item_ids = pq.read_table(processed / "items.parquet")["item_id"].to_pylist()
    known = sequences[3]
    cold = recommend(odmt_run, processed, features, 5, CONFIG, history=[item_ids[i - 1] for i in known["items"]]).to_pylist()
    warm = recommend(odmt_run, processed, features, 5, CONFIG, user_ids=[known["user_id"]]).to_pylist()
    assert {row["user_id"] for row in cold} == {COLD_USER}
    assert [row["item_id"] for row in cold] == [row["item_id"] for row in warm]  # same history, same items


def test_unknown_users_items_and_bad_k_are_clear_errors(data, odmt_run):
    processed, features = data
    with pytest.raises(InputError, match="--history"):
        recommend(odmt_run, processed, features, 5, CONFIG, user_ids=["no-such-user"])
    with pytest.raises(InputError, match="not in the processed items"):
        recommend(odmt_run, processed, features, 5, CONFIG, history=["no-such-item"])
    with pytest.raises(InputError, match="--k"):
        recommend(odmt_run, processed, features, 10**6, CONFIG)


def test_recommend_command_prints_a_table(data, odmt_run):
    processed, features = data
    user = pq.read_table(processed / "sequences.parquet")["user_id"][0].as_py()
    result = runner.invoke(
        app,
        [
            "recommend",
            *run_options(odmt_run, processed, features),
            "--user",
            user,
            "--k",
            "3",
            *PARAMS,
            "-S",
            "evaluate.precision=fp32",
        ],
    )
    assert result.exit_code == 0, result.output
    expected = recommend(odmt_run, processed, features, 3, CONFIG, user_ids=[user])["item_id"].to_pylist()
    assert all(item in result.output for item in expected)


def test_recommend_prints_titles_as_text_not_markup(data, odmt_run, monkeypatch):
    processed, features = data
    titles = ["[b]bold[/b] tee", "socks [/red]"]
    shown = pa.table(
        {"user_id": ["u1", "u1"], "rank": [1, 2], "item_id": ["i1", "i2"], "score": [0.9, 0.8], "text": titles}, schema=RECOMMENDATIONS
    )
    monkeypatch.setattr("pipeline.evaluation.recommend.recommend", lambda *args: shown)
    result = runner.invoke(app, ["recommend", "--run", str(odmt_run), "--processed", str(processed), "--features", str(features), *PARAMS])
    assert result.exit_code == 0, result.output
    assert all(title in result.output for title in titles)


def test_recommend_refuses_a_user_together_with_a_history(data, odmt_run):
    processed, features = data
    user = pq.read_table(processed / "sequences.parquet")["user_id"][0].as_py()
    item = pq.read_table(processed / "items.parquet")["item_id"][0].as_py()
    result = runner.invoke(
        app,
        [
            "recommend",
            *run_options(odmt_run, processed, features),
            "--user",
            user,
            "--history",
            item,
            *PARAMS,
        ],
    )
    assert result.exit_code == 2
    assert "--user" in result.output and "--history" in result.output and "not both" in result.output
    assert "Traceback" not in result.output
