"""Batch scoring: contract-shaped parquet files, written atomically, idempotent."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pyarrow.parquet as pq
import pytest

from core.warehouse import QueryFailed
from ml.datasets import ScoresUnreadable, drop_scored, load_scoring_frame
from ml.registry import CHAMPION
from ml.scoring import SCORES_SCHEMA, score_new_trades, scored_trade_ids


@pytest.fixture
def champion(registry, register_model, fitted_models, tmp_path):
    from ml.audit import AuditLog

    version = register_model(fitted_models["xgboost"])
    registry.promote(version, audit_log=AuditLog(tmp_path / "audit"), reason="test champion")
    return registry.load_alias(CHAMPION)


def read_scores(scores_dir):
    con = duckdb.connect()
    return con.execute(
        f"select * from read_parquet('{scores_dir}/*/*.parquet', hive_partitioning = false)"
    ).df()


def test_scores_follow_the_contract_and_rerunning_adds_no_rows(champion, split, tmp_path):
    scores_dir = tmp_path / "scores"
    now = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)

    first = score_new_trades(
        split.test,
        model=champion.model,
        model_name=champion.name,
        model_version=champion.version,
        scores_dir=scores_dir,
        now=now,
    )
    second = score_new_trades(
        split.test,
        model=champion.model,
        model_name=champion.name,
        model_version=champion.version,
        scores_dir=scores_dir,
    )

    assert first.rows_scored == len(split.test)
    assert second.rows_scored == 0 and second.files == ()
    assert second.rows_already_scored == len(split.test)
    scores = read_scores(scores_dir)
    assert len(scores) == len(split.test)
    assert scores["trade_id"].is_unique
    for path in first.files:
        assert pq.read_schema(path).remove_metadata() == SCORES_SCHEMA
        day = path.parent.name.removeprefix("date=")
        assert (pq.read_table(path).to_pandas()["trade_ts"].dt.strftime("%Y-%m-%d") == day).all()
    assert not list(scores_dir.rglob(".*"))  # no temporary file left behind
    assert scores["score"].between(0, 1).all()
    assert set(scores["risk_level"]) <= {"critical", "high", "medium", "low"}
    assert (scores["model_name"] == "tradewatch_anomaly").all()
    assert (scores["model_version"] == champion.version).all()
    threshold = champion.model.metadata.metadata["threshold"]
    assert (scores["flag"] == (scores["score"] >= threshold)).all()
    assert first.flagged == int(scores["flag"].sum())
    assert (scores["scored_at"].dt.tz_convert("UTC") == now).all()


def test_only_new_trades_are_scored(champion, split, tmp_path):
    scores_dir = tmp_path / "scores"
    older, newer = split.test.iloc[:1000], split.test.iloc[1000:]
    kwargs = dict(
        model=champion.model,
        model_name=champion.name,
        model_version=champion.version,
        scores_dir=scores_dir,
    )
    score_new_trades(older, **kwargs)

    result = score_new_trades(split.test, **kwargs)

    assert result.rows_scored == len(newer)
    assert result.rows_already_scored == len(older)
    assert scored_trade_ids(scores_dir) == set(split.test["trade_id"])


def test_scoring_frame_from_the_warehouse_leaves_out_scored_trades(champion, split, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse))
    features = split.test.drop(columns=["is_anomaly", "label_source", "anomaly_kind"])
    con.register("features_df", features)
    con.execute("create schema gold")  # where dbt builds gold
    con.execute("create table gold.gold_trade_features as select * from features_df")
    con.close()
    scores_dir = tmp_path / "scores"
    score_new_trades(
        split.test.iloc[:700],
        model=champion.model,
        model_name=champion.name,
        model_version=champion.version,
        scores_dir=scores_dir,
    )

    pending = load_scoring_frame(warehouse, scores_dir=scores_dir)

    assert len(pending) == len(split.test) - 700
    assert set(pending["trade_id"]).isdisjoint(scored_trade_ids(scores_dir))
    next(scores_dir.glob("date=*")).joinpath("scores-broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(QueryFailed, match="query on warehouse"):
        load_scoring_frame(warehouse, scores_dir=scores_dir)


def test_without_the_duckdb_anti_join_the_scored_trades_are_left_out_in_python(
    champion, split, tmp_path,
):
    # Spark and Databricks: what this version scored is dropped, what another version scored
    # is scored again (after a promotion), and never_scored marks the trades new to all.
    scores_dir = tmp_path / "scores"
    kwargs = dict(model=champion.model, model_name=champion.name, scores_dir=scores_dir)
    score_new_trades(split.test.iloc[:300], model_version=champion.version, **kwargs)
    score_new_trades(split.test.iloc[300:500], model_version="previous", **kwargs)

    pending = drop_scored(split.test, scores_dir, champion.version)

    assert list(pending["trade_id"]) == list(split.test["trade_id"].iloc[300:])
    assert pending["never_scored"].tolist() == [False] * 200 + [True] * (len(split.test) - 500)


def test_a_damaged_scores_file_stops_scoring(champion, split, tmp_path):
    scores_dir = tmp_path / "scores"
    bad = scores_dir / "date=2024-03-05" / "scores-broken.parquet"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not parquet")

    with pytest.raises(ScoresUnreadable, match="scores-broken.parquet"):
        score_new_trades(
            split.test,
            model=champion.model,
            model_name=champion.name,
            model_version=champion.version,
            scores_dir=scores_dir,
        )
    assert [p.name for p in scores_dir.rglob("*.parquet")] == ["scores-broken.parquet"]


def test_scores_land_in_a_unity_catalog_volume_and_a_rerun_reads_them_back(
    champion, split, tmp_path,
):
    """Through the Files API (the real databricks-sdk client, a loopback fake server)."""
    import io

    from core.datahome import within
    from core.volume import VolumeDataHome
    from ml.scoring import write_scoring_run
    from tests.support.files_api import FakeFilesApi

    volume = "/Volumes/surveillance/prod/tradewatch"
    with FakeFilesApi(token="dapi-fake-scoring", volumes=[volume]) as api:
        home = VolumeDataHome(volume, host=api.url,
                              environ={"DATABRICKS_TOKEN": "dapi-fake-scoring"})
        kwargs = dict(model=champion.model, model_name=champion.name,
                      model_version=champion.version, scores_dir=within(home, "scores"))

        first = score_new_trades(split.test, **kwargs)
        record = write_scoring_run(within(home, "monitoring/scoring"), first, role="champion",
                                   model_name=champion.name)
        second = score_new_trades(split.test, **kwargs)

        assert first.rows_scored == len(split.test) and second.rows_scored == 0
        assert all(str(path).startswith(f"{volume}/scores/date=") for path in first.files)
        tables = [pq.read_table(io.BytesIO(api.files[str(path)])) for path in first.files]
        assert sum(table.num_rows for table in tables) == len(split.test)
        assert tables[0].schema.remove_metadata() == SCORES_SCHEMA
        assert str(record) in api.files

        # The scoring frame leaves out what is on the volume, though no query can read it.
        warehouse = tmp_path / "warehouse.duckdb"
        with duckdb.connect(str(warehouse)) as con:
            con.register("features_df", split.test.drop(
                columns=["is_anomaly", "label_source", "anomaly_kind"]))
            con.execute("create schema gold")
            con.execute("create table gold.gold_trade_features as select * from features_df")
        assert load_scoring_frame(warehouse, scores_dir=within(home, "scores")).empty
        pending = load_scoring_frame(warehouse, scores_dir=within(home, "scores"),
                                     model_version="a newer version")
        assert len(pending) == len(split.test) and not pending["never_scored"].any()


def test_on_a_volume_each_scores_file_is_downloaded_once_through_the_local_cache(
    champion, split, tmp_path, caplog,
):
    """Scores files are immutable: a cycle every few minutes downloads only the new ones."""
    from core.datahome import within
    from core.volume import VolumeDataHome
    from tests.support.files_api import FakeFilesApi

    volume = "/Volumes/surveillance/prod/tradewatch"
    cache = tmp_path / "state" / "scored-cache"
    test = split.test
    with FakeFilesApi(token="dapi-fake-cache", volumes=[volume]) as api:
        home = VolumeDataHome(volume, host=api.url,
                              environ={"DATABRICKS_TOKEN": "dapi-fake-cache"})
        scores = within(home, "scores")
        kwargs = dict(model=champion.model, model_name=champion.name, scores_dir=scores)
        # Two runs of two versions, written by another scorer (nothing cached yet).
        score_new_trades(test.iloc[:300], model_version=champion.version, **kwargs)
        score_new_trades(test.iloc[300:500], model_version="previous", **kwargs)
        on_volume = {path for path in api.files if path.startswith(f"{volume}/scores/")}

        def downloaded_by(call):
            before = len(api.downloads())
            result = call()
            return result, api.downloads()[before:]

        def pending(**options):
            return drop_scored(test, scores, champion.version, **options)

        expected, _ = downloaded_by(pending)  # without the cache
        first, fetched = downloaded_by(lambda: pending(scores_cache=cache))
        again, fetched_again = downloaded_by(lambda: pending(scores_cache=cache))

        assert sorted(fetched) == sorted(on_volume)
        assert fetched_again == []
        for result in (first, again):
            assert result.equals(expected)
        assert list(expected["trade_id"]) == list(test["trade_id"].iloc[300:])

        # A new file is downloaded once (here by the next scorer that looks); one this process
        # writes is cached as it is written, never downloaded.
        new = score_new_trades(test.iloc[500:700], model_version=champion.version, **kwargs)
        start = len(api.downloads())
        mine = score_new_trades(test.iloc[700:900], model_version=champion.version,
                                scores_cache=cache, **kwargs)
        with_new = pending(scores_cache=cache)
        pending(scores_cache=cache)
        fetched = api.downloads()[start:]

        assert sorted(fetched) == sorted(str(path) for path in new.files)
        assert mine.rows_scored == 200 and mine.files
        assert not set(map(str, mine.files)) & set(fetched)
        assert with_new.equals(pending())
        assert list(with_new["trade_id"]) == list(test["trade_id"].iloc[300:500]) + list(
            test["trade_id"].iloc[900:])

        # A damaged cache entry is never trusted: it is downloaded again and rewritten.
        damaged = sorted(cache.rglob("scores-*.parquet"))[0]
        damaged.write_bytes(b"not parquet")
        with caplog.at_level("WARNING", logger="ml.datasets"):
            repaired, fetched = downloaded_by(lambda: pending(scores_cache=cache))
        name = damaged.relative_to(cache).as_posix()

        assert fetched == [f"{volume}/scores/{name}"]
        assert repaired.equals(with_new)
        assert f"{damaged} is unreadable" in caplog.text
        assert pq.read_table(damaged).column_names == ["trade_id", "model_version"]

        # A file gone from the volume leaves the cache (and what it held no longer counts).
        gone = str(new.files[0])
        del api.files[gone]
        after, fetched = downloaded_by(lambda: pending(scores_cache=cache))
        cached = {path.relative_to(cache).as_posix() for path in cache.rglob("*.parquet")}
        listed = {path[len(f"{volume}/scores/"):] for path in api.files
                  if path.startswith(f"{volume}/scores/")}

        assert fetched == []
        assert cached == listed and gone[len(f"{volume}/scores/"):] not in cached
        assert after.equals(pending())
        assert len(after) > len(with_new)
        assert not list(cache.rglob(".*"))  # no temporary left behind
