"""Training, scoring and drift data: gold features joined to labels, read-only, split by time.

The warehouse is read through core.warehouse, never written (dbt is its only writer): the same
portable query runs on the local DuckDB file, a Spark session or a Databricks SQL warehouse.
The split is by time with a purge gap as long as the longest feature window, so that no
validation or test row has features computed from the same trades as a training row.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.datahome import (
    SCORES_FILES,
    DataHome,
    LocalDataHome,
    as_data_home,
    remove_stale_temp_files,
)
from core.schema import (
    CATEGORY_LEVELS,
    FEATURE_COLUMNS,
    FEATURES_TABLE,
    ID_COLUMNS,
    LABEL_COLUMN,
    LABEL_SOURCES,
    LABELS_TABLE,
    TRUSTED_LABEL_SOURCES,
    WEAK_LABEL_SOURCE,
)
from core.warehouse import (
    DuckDBWarehouse,
    MissingTableOrColumn,
    Warehouse,
    as_warehouse,
    identifier,
    sql_literal,
)

log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """The training or scoring data cannot be read or is unfit for use."""


class MissingColumns(DatasetError):
    """A gold table lacks a column the models need."""


class InsufficientData(DatasetError):
    """Too few rows (or labels) to split into train, validation and test."""


class TooFewTrustedLabels(InsufficientData):
    """The window's trusted labels (analyst, answer key) fall below the minimums: no training.

    Carries the counts so that the caller can say what it has and what it needs.
    """

    def __init__(self, message: str, *, labels: int, positives: int, min_labels: int,
                 min_positives: int, untrusted_rows: int) -> None:
        super().__init__(message)
        self.labels = labels
        self.positives = positives
        self.min_labels = min_labels
        self.min_positives = min_positives
        self.untrusted_rows = untrusted_rows


# --------------------------------------------------------------------------- queries


def _time_filter(column: str, start_ms: int | None, end_ms: int | None) -> str:
    conditions = []
    if start_ms is not None:
        conditions.append(f"{column} >= {int(start_ms)}")
    if end_ms is not None:
        conditions.append(f"{column} < {int(end_ms)}")
    return ("where " + " and ".join(conditions)) if conditions else ""


def training_query(
    warehouse: Warehouse,
    features: Sequence[str] = FEATURE_COLUMNS,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> str:
    """SELECT of gold features left-joined to labels, oldest trade first (portable SQL)."""
    columns = ",\n    ".join(
        [f"f.{identifier(c)}" for c in (*ID_COLUMNS, *features)]
        + ["l.is_anomaly", "l.label_source", "l.anomaly_kind"]
    )
    return (
        f"select\n    {columns}\n"
        f"from {warehouse.table(FEATURES_TABLE)} as f\n"
        f"left join {warehouse.table(LABELS_TABLE)} as l on l.trade_id = f.trade_id\n"
        f"{_time_filter('f.trade_ts_ms', start_ms, end_ms)}\n"
        "order by f.trade_ts_ms, f.trade_id"
    )


def scoring_query(
    warehouse: Warehouse,
    features: Sequence[str] = FEATURE_COLUMNS,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    exclude_scored_glob: str | None = None,
    model_version: str | None = None,
) -> str:
    """SELECT of gold features to score; `exclude_scored_glob` anti-joins scores parquet files.

    With `model_version`, only the scores of that version count as done (a new or restored
    champion scores what it has not scored yet), and a `never_scored` column says which rows
    have no score from any version (the trades that are new to the platform).
    """
    columns = [f"f.{identifier(c)}" for c in (*ID_COLUMNS, *features)]
    conditions = [
        part
        for part in (
            f"f.trade_ts_ms >= {int(start_ms)}" if start_ms is not None else "",
            f"f.trade_ts_ms < {int(end_ms)}" if end_ms is not None else "",
        )
        if part
    ]
    if exclude_scored_glob is not None:
        quoted = exclude_scored_glob.replace("'", "''")
        scored = (
            "select trade_id from "
            f"read_parquet('{quoted}', union_by_name = true, hive_partitioning = false)"
        )
        if model_version is None:
            conditions.append(f"f.trade_id not in ({scored})")
        else:
            version = str(model_version).replace("'", "''")
            conditions.append(f"f.trade_id not in ({scored} where model_version = '{version}')")
            columns.append(f"f.trade_id not in ({scored}) as never_scored")
    elif model_version is not None:
        columns.append("true as never_scored")
    where = ("where " + " and ".join(conditions)) if conditions else ""
    select = ",\n    ".join(columns)
    return (
        f"select\n    {select}\nfrom {warehouse.table(FEATURES_TABLE)} as f\n{where}\n"
        "order by f.trade_ts_ms, f.trade_id"
    )


def _check_columns(warehouse: Warehouse, table: str, required: Iterable[str]) -> None:
    present = warehouse.table_columns(table)
    if present is None:
        raise MissingTableOrColumn(
            f"{table} is not in the warehouse: run `tradewatch transform` to build it"
        )
    missing = [c for c in required if c not in present]
    if missing:
        raise MissingColumns(
            f"{table} lacks column(s) {', '.join(missing)}: rebuild the warehouse with "
            "`tradewatch transform` or pass the features it has"
        )


def normalise_features(frame: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    """Canonical types: numeric features float64, categoricals str (None when missing),
    trade_ts a UTC timestamp derived from trade_ts_ms (the integer is the reference)."""
    out = frame.copy()
    if "trade_ts_ms" in out.columns:
        out["trade_ts_ms"] = out["trade_ts_ms"].astype("int64")
        out["trade_ts"] = pd.to_datetime(out["trade_ts_ms"], unit="ms", utc=True)
    dtypes = dict(zip(out.columns, out.dtypes, strict=True))
    for column in features:
        if column in CATEGORY_LEVELS:
            out[column] = _as_text(out[column])
        elif dtypes[column] != np.float64:
            # A float64 column is left as it is (the copy above is already its own): a
            # conversion per column per call is most of the time of a one-row scoring.
            out[column] = pd.to_numeric(out[column], errors="coerce").astype("float64")
    return out


def _as_text(values: pd.Series) -> np.ndarray:
    """Each value as str, None where missing (None, NaN, pd.NA, NaT), as an object array.

    Text that is already str (what the warehouse returns) is kept without a per-value call.
    """
    text = values.to_numpy(dtype=object, copy=True)
    missing = pd.isna(text)
    text[missing] = None
    present = ~missing
    if not all(type(value) is str for value in text[present]):
        text[present] = [str(value) for value in text[present]]
    return text


# --------------------------------------------------------------------------- labels


@dataclass(frozen=True)
class LabelSummary:
    """Which label sources the rows carry; `weak` when only the rule heuristic speaks."""

    mix: dict[str, int]
    positives: int
    rows: int

    @property
    def weak(self) -> bool:
        present = {source for source, count in self.mix.items() if count > 0}
        return present == {WEAK_LABEL_SOURCE}

    @property
    def positive_share(self) -> float:
        return self.positives / self.rows if self.rows else 0.0

    def as_tags(self) -> dict[str, str]:
        """MLflow tags that record the label policy of a run."""
        return {
            "label_source_mix": json.dumps(self.mix, sort_keys=True),
            "weak_labels": str(self.weak).lower(),
        }

    @classmethod
    def of(cls, frame: pd.DataFrame) -> LabelSummary:
        counts = frame["label_source"].value_counts().to_dict() if len(frame) else {}
        unknown = sorted(set(counts) - set(LABEL_SOURCES))
        if unknown:
            raise DatasetError(
                f"unknown label_source value(s) {unknown}: expected one of {list(LABEL_SOURCES)}"
            )
        mix = {source: int(counts.get(source, 0)) for source in LABEL_SOURCES}
        return cls(mix=mix, positives=int(frame[LABEL_COLUMN].sum()), rows=len(frame))


@dataclass(frozen=True)
class TrainingFrame:
    """Labelled gold rows, oldest first, with the label policy that produced them."""

    frame: pd.DataFrame
    features: tuple[str, ...]
    labels: LabelSummary
    unlabelled_rows: int = 0
    #: Rows dropped because only an untrusted source (the rule heuristic) labelled them.
    untrusted_rows: int = 0


def load_training_frame(
    source: Warehouse | Path | str,
    *,
    features: Sequence[str] = FEATURE_COLUMNS,
    start: datetime | None = None,
    end: datetime | None = None,
) -> TrainingFrame:
    """Read gold_trade_features joined to gold_anomaly_labels, read-only.

    Trades without a label row are dropped and counted (`unlabelled_rows`); the label-source
    mix is recorded, and a frame labelled only by the rule heuristic is flagged weak.
    """
    with as_warehouse(source) as warehouse:
        _check_columns(warehouse, FEATURES_TABLE, (*ID_COLUMNS, *features))
        _check_columns(warehouse, LABELS_TABLE, ("trade_id", LABEL_COLUMN, "label_source"))
        raw = warehouse.query(
            training_query(warehouse, features, start_ms=_ms(start), end_ms=_ms(end))
        )
    return training_frame_from(raw, features)


def training_frame_from(
    raw: pd.DataFrame, features: Sequence[str] = FEATURE_COLUMNS
) -> TrainingFrame:
    """Build a TrainingFrame from rows shaped like `training_query`'s output."""
    missing = [c for c in (*ID_COLUMNS, *features, LABEL_COLUMN, "label_source") if c not in raw]
    if missing:
        raise MissingColumns(f"training rows lack column(s) {', '.join(missing)}")
    labelled = raw[LABEL_COLUMN].notna() & raw["label_source"].notna()
    frame = normalise_features(raw.loc[labelled], features)
    frame[LABEL_COLUMN] = frame[LABEL_COLUMN].astype(bool)
    if "anomaly_kind" not in frame:
        frame["anomaly_kind"] = None
    frame = frame.sort_values(["trade_ts_ms", "trade_id"], kind="stable").reset_index(drop=True)
    return TrainingFrame(
        frame=frame,
        features=tuple(features),
        labels=LabelSummary.of(frame),
        unlabelled_rows=int((~labelled).sum()),
    )


def trusted_training_frame(
    data: TrainingFrame, *, min_labels: int = 1, min_positives: int = 1
) -> TrainingFrame:
    """Only the rows a trusted source labelled (TRUSTED_LABEL_SOURCES: analyst, ground truth).

    The rule heuristic is a function of the models' own input features: training on it would
    teach the models the rule (circular labelling), so its rows are dropped and counted in
    `untrusted_rows`. Raises TooFewTrustedLabels when fewer than `min_labels` trusted rows, or
    fewer than `min_positives` trusted anomalous rows, remain.
    """
    frame = data.frame
    trusted = frame["label_source"].isin(TRUSTED_LABEL_SOURCES).to_numpy()
    kept = frame.loc[trusted].reset_index(drop=True)
    labels, positives = len(kept), int(kept[LABEL_COLUMN].sum())
    untrusted = int((~trusted).sum())
    if labels < min_labels or positives < min_positives:
        raise TooFewTrustedLabels(
            f"the training window has {labels:,} trusted labels ({positives:,} anomalous); "
            f"training needs at least {min_labels:,} ({min_positives:,} anomalous). Rule "
            f"labels ({untrusted:,} trades) are never trained on: review flags "
            "(`tradewatch review`) or import analyst labels",
            labels=labels, positives=positives, min_labels=min_labels,
            min_positives=min_positives, untrusted_rows=untrusted,
        )
    return TrainingFrame(
        frame=kept,
        features=data.features,
        labels=LabelSummary.of(kept),
        unlabelled_rows=data.unlabelled_rows,
        untrusted_rows=data.untrusted_rows + untrusted,
    )


class ScoresUnreadable(RuntimeError):
    """An existing scores file cannot be read: scoring stops rather than score twice."""


def score_files(scores_dir: Path | str) -> list[Path]:
    """Completed scores files (temporary dot-files excluded), oldest partition first."""
    return sorted(Path(scores_dir).glob(SCORES_FILES.pattern))


#: The columns of a scores file that say what has been scored (what the cache keeps).
SCORED_COLUMNS = ("trade_id", "model_version")


def _scored_pairs(source: Any, name: str) -> pa.Table:
    """The (trade_id, model_version) columns of one scores file; ScoresUnreadable if damaged."""
    try:
        return pq.read_table(source, columns=list(SCORED_COLUMNS))
    except (OSError, pa.ArrowException) as exc:
        raise ScoresUnreadable(
            f"scores file {name} is unreadable ({exc}); move it aside and re-run scoring"
        ) from exc


def _cached_scored_pairs(home: DataHome, names: Sequence[str],
                         cache_dir: Path | str) -> Iterator[pa.Table]:
    """The scored pairs of each remote scores file in `names`, from the local cache at
    `cache_dir` when it has them, else downloaded once and cached.

    Scores files are immutable (a run writes new names, never rewrites one), so a cache entry
    keyed by the file's path stays true for as long as the file exists. Each entry is written
    whole or not at all (core.datahome.write_atomic); an entry that cannot be read is logged and
    downloaded again, never trusted; entries whose remote file is gone are deleted.
    """
    cache = LocalDataHome(cache_dir)
    remove_stale_temp_files(cache.root)  # left by a writer that was killed mid-write
    for name in names:
        if cache.exists(name):
            try:
                yield pq.read_table(cache.path(name), columns=list(SCORED_COLUMNS))
                continue
            except (OSError, pa.ArrowException) as exc:
                log.warning("scored-trades cache entry %s is unreadable (%s): downloading %s again",
                            cache.path(name), " ".join(str(exc).split())[:200], name)
        table = _scored_pairs(io.BytesIO(home.read(name)), name)
        remember_scored(cache_dir, name, table)
        yield table
    listed = set(names)
    for name in cache.list("", SCORES_FILES.pattern):
        if name not in listed:
            cache.remove(name)
            with contextlib.suppress(OSError):  # only once empty
                cache.path(name).parent.rmdir()


def remember_scored(scores_cache: Path | str, name: str, scores: pa.Table) -> None:
    """Keep the scored pairs of the scores file `name` (relative to its scores folder) in the
    cache folder `scores_cache`, whole or not at all: the writer of a file already has what
    a download would bring. A cache that cannot be written is logged, never an error."""
    sink = pa.BufferOutputStream()
    pq.write_table(scores.select(list(SCORED_COLUMNS)), sink)
    cache = LocalDataHome(scores_cache)
    try:
        cache.write_atomic(name, memoryview(sink.getvalue()))
    except OSError as exc:  # the cache only saves downloads: scoring goes on without it
        log.warning("cannot cache the scored trades of %s in %s (%s): it will be downloaded "
                    "again next time", name, cache.root, exc)


def scored_by_version(scores_dir: DataHome | Path | str, *,
                      scores_cache: Path | str | None = None) -> dict[str, set[str]]:
    """The trade_ids each model version has scored under `scores_dir` (a folder or a data
    home): what a warehouse without DuckDB's parquet anti-join leaves to Python.

    A local folder is read in place. A remote data home (a Unity Catalog volume) is listed,
    and each scores file downloaded; with `scores_cache` (a local folder) only the files not
    downloaded before are, and what each holds is kept there for the next call.
    """
    home = as_data_home(scores_dir)
    tables: Iterable[pa.Table]
    if isinstance(home, LocalDataHome):
        tables = (_scored_pairs(path, str(path)) for path in score_files(home.root))
    else:
        names = home.list("", SCORES_FILES.pattern)
        if scores_cache is not None:
            tables = _cached_scored_pairs(home, names, scores_cache)
        else:
            tables = (_scored_pairs(io.BytesIO(home.read(name)), name) for name in names)
    scored: dict[str, set[str]] = {}
    for table in tables:
        # never null: score_new_trades writes both
        for trade_id, version in zip(table.column("trade_id").to_pylist(),
                                     table.column("model_version").to_pylist(), strict=True):
            scored.setdefault(str(version), set()).add(str(trade_id))
    return scored


def scored_trade_ids(scores_dir: DataHome | Path | str, *,
                     scores_cache: Path | str | None = None) -> set[str]:
    """Every trade_id that already has a score under `scores_dir` (a folder or a data home);
    `scores_cache` as for `scored_by_version`."""
    return set().union(*scored_by_version(scores_dir, scores_cache=scores_cache).values())


def drop_scored(frame: pd.DataFrame, scores_dir: DataHome | Path | str,
                model_version: str, *, scores_cache: Path | str | None = None) -> pd.DataFrame:
    """The rows of `frame` that `model_version` has not scored, with `never_scored` (no score
    from any version): the warehouse's anti-join, done here for Spark and Databricks.
    `scores_cache` as for `scored_by_version`."""
    scored = scored_by_version(scores_dir, scores_cache=scores_cache)
    anyone = set().union(*scored.values())
    kept = frame.loc[~frame["trade_id"].isin(scored.get(str(model_version), set()))].copy()
    kept["never_scored"] = ~kept["trade_id"].isin(anyone)
    return kept.reset_index(drop=True)


def load_scoring_frame(
    source: Warehouse | Path | str,
    *,
    features: Sequence[str] = FEATURE_COLUMNS,
    scores_dir: DataHome | Path | str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    model_version: str | None = None,
    scores_cache: Path | str | None = None,
) -> pd.DataFrame:
    """Gold feature rows, oldest first; with `scores_dir` (a folder or a data home), only the
    rows not scored yet.

    With `model_version`, "unscored" means "not scored by that version", and the frame has a
    boolean `never_scored` column (no score from any version yet). On DuckDB with a local
    `scores_dir` the anti-join runs in the query, so that a long history is not pulled into
    memory only to be dropped; elsewhere (Spark, Databricks, a volume) the scored trade ids are
    read from the files and dropped here (`drop_scored`); from a volume, `scores_cache` (a
    local folder) keeps what each scores file holds, so that each is downloaded once
    (`scored_by_version`). Scoring filters again on trade_id.
    """
    warehouse = as_warehouse(source)
    _check_columns(warehouse, FEATURES_TABLE, (*ID_COLUMNS, *features))
    scores = as_data_home(scores_dir) if scores_dir is not None else None
    in_query = isinstance(warehouse, DuckDBWarehouse) and isinstance(scores, LocalDataHome)
    exclude = None
    if isinstance(scores, LocalDataHome) and in_query and score_files(scores.root):
        exclude = str(scores.root.resolve() / SCORES_FILES.pattern)
    raw = warehouse.query(
        scoring_query(
            warehouse,
            features,
            start_ms=_ms(start),
            end_ms=_ms(end),
            exclude_scored_glob=exclude,
            model_version=model_version,
        )
    )
    if "never_scored" in raw.columns:
        raw["never_scored"] = raw["never_scored"].astype(bool)
    if scores is not None and not in_query:
        if model_version is not None:
            raw = drop_scored(raw, scores, model_version, scores_cache=scores_cache)
        else:
            done = scored_trade_ids(scores, scores_cache=scores_cache)
            raw = raw.loc[~raw["trade_id"].isin(done)]
    return normalise_features(raw, features).reset_index(drop=True)


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else _epoch_ms(moment)


def _epoch_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise DatasetError(f"{moment.isoformat()} has no UTC offset; pass an aware datetime")
    return int(moment.timestamp() * 1000)


# --------------------------------------------------------------------------- drift windows

#: Seed of the sample of a drift window too large to hold: the same rows on every run.
DRIFT_SAMPLE_SEED = 20240308


@dataclass(frozen=True)
class WindowRows:
    """The gold rows of one time window (or a seeded uniform sample of them), and how many
    trades the window holds."""

    frame: pd.DataFrame
    total: int

    @property
    def sampled(self) -> bool:
        """Whether `frame` is a sample rather than every row."""
        return len(self.frame) < self.total


def newest_trade_ms(source: Warehouse | Path | str) -> int | None:
    """trade_ts_ms of the newest trade in gold_trade_features; None when it holds no trade."""
    warehouse = as_warehouse(source)
    newest = warehouse.query(
        f"select max(trade_ts_ms) as newest from {warehouse.table(FEATURES_TABLE)}"
    )["newest"].iloc[0]
    return None if pd.isna(newest) else int(newest)


def window_query(
    warehouse: Warehouse,
    start_ms: int,
    end_ms: int,
    *,
    features: Sequence[str] = FEATURE_COLUMNS,
    extra_columns: Sequence[str] = (),
    labels: bool = True,
    sample_rows: int | None = None,
    seed: int = DRIFT_SAMPLE_SEED,
) -> str:
    """SELECT of the gold rows with start_ms <= trade_ts_ms < end_ms, with their labels.

    `sample_rows` keeps a seeded reservoir sample of that many rows (DuckDB's sample clause:
    the drift check reads the local warehouse today).
    """
    columns = [
        f"f.{identifier(c)}"
        for c in dict.fromkeys(("trade_id", "symbol", "trade_ts_ms", *features, *extra_columns))
    ]
    join = ""
    if labels:
        columns += ["l.is_anomaly", "l.label_source"]
        join = f"left join {warehouse.table(LABELS_TABLE)} as l on l.trade_id = f.trade_id\n"
    select = ",\n    ".join(columns)
    sql = (
        f"select\n    {select}\nfrom {warehouse.table(FEATURES_TABLE)} as f\n{join}"
        f"{_time_filter('f.trade_ts_ms', start_ms, end_ms)}"
    )
    if sample_rows is not None:
        sql = (
            f"select * from ({sql}) using sample reservoir({int(sample_rows)} rows) "
            f"repeatable ({int(seed)})"
        )
    return sql


def load_window_rows(
    source: Warehouse | Path | str,
    start: datetime,
    end: datetime,
    *,
    features: Sequence[str] = FEATURE_COLUMNS,
    extra_columns: Sequence[str] = (),
    labels: bool = True,
    max_rows: int | None = None,
    seed: int = DRIFT_SAMPLE_SEED,
) -> WindowRows:
    """Gold rows with start <= trade_ts < end, normalised, with `is_anomaly`/`label_source`
    (None throughout when `labels` is false: the labels table is not built).

    Beyond `max_rows` trades a seeded uniform sample of `max_rows` rows is read instead.
    """
    warehouse = as_warehouse(source)
    start_ms, end_ms = _epoch_ms(start), _epoch_ms(end)
    total = int(
        warehouse.query(
            f"select count(*) as n from {warehouse.table(FEATURES_TABLE)} as f "
            f"{_time_filter('f.trade_ts_ms', start_ms, end_ms)}"
        )["n"].iloc[0]
    )
    sample = max_rows if max_rows is not None and total > max_rows else None
    rows = warehouse.query(
        window_query(
            warehouse, start_ms, end_ms, features=features, extra_columns=extra_columns,
            labels=labels, sample_rows=sample, seed=seed,
        )
    )
    if not labels:
        rows["is_anomaly"] = None
        rows["label_source"] = None
    return WindowRows(normalise_features(rows, features), total)


def trusted_labels(rows: pd.DataFrame) -> np.ndarray:
    """is_anomaly where a trusted source (analyst, ground truth) gave it, None elsewhere.

    The rule heuristic is a function of the features: agreement with it says nothing about
    finding anomalies, so performance is judged on trusted labels only.
    """
    trusted = rows["label_source"].isin(TRUSTED_LABEL_SOURCES) & rows["is_anomaly"].notna()
    labels = rows["is_anomaly"].astype(object).to_numpy(copy=True)
    labels[~trusted.to_numpy()] = None
    return labels


def count_new_analyst_decisions(
    source: Warehouse | Path | str, *, decided_after: datetime | None,
    trades_until: datetime | None,
) -> int:
    """Trades an analyst decided (label store or seed) after `decided_after`, among the trades
    up to `trades_until` (newer trades are counted by count_trusted_labelled already): a
    decision on an old trade is new evidence too. Every decision when `decided_after` is None;
    0 where int_analyst_labels is not built."""
    warehouse = as_warehouse(source)
    if warehouse.table_columns("int_analyst_labels") is None:
        return 0
    conditions = ["l.labelled_at is not null"]
    if decided_after is not None:
        stamp = decided_after.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        conditions.append(f"l.labelled_at > cast({sql_literal(stamp)} as timestamp)")
    if trades_until is not None:
        conditions.append(f"f.trade_ts_ms <= {_epoch_ms(trades_until)}")
    return int(
        warehouse.query(
            f"select count(*) as n from {warehouse.table('int_analyst_labels')} as l "
            f"join {warehouse.table(FEATURES_TABLE)} as f on f.trade_id = l.trade_id "
            f"where {' and '.join(conditions)}"
        )["n"].iloc[0]
    )


def count_trusted_labelled(source: Warehouse | Path | str, *, after: datetime | None) -> int:
    """Trades with a trusted label (analyst, ground truth), only those after `after` if given."""
    warehouse = as_warehouse(source)
    sources = ", ".join(sql_literal(s) for s in TRUSTED_LABEL_SOURCES)
    where = f"l.label_source in ({sources})"
    if after is not None:
        where += f" and f.trade_ts_ms > {_epoch_ms(after)}"
    return int(
        warehouse.query(
            f"select count(*) as n from {warehouse.table(LABELS_TABLE)} as l "
            f"join {warehouse.table(FEATURES_TABLE)} as f on f.trade_id = l.trade_id "
            f"where {where}"
        )["n"].iloc[0]
    )


# --------------------------------------------------------------------------- ground truth


EVENT_COLUMNS = ("trade_id", "event_id", "kind", "symbol", "trade_ts_ms")


def load_ground_truth_events(ground_truth_dir: Path | str) -> pd.DataFrame:
    """The simulator's answer key, one row per anomalous trade: trade_id, event_id, kind,
    symbol, trade_ts_ms, from ground_truth/trades.ndjson (ml.events.events_from_answer_key
    turns it into events).

    The file is appended as trades are sent, so a torn last line (the simulator stopped
    mid-write) is skipped; damage anywhere else is an error.
    """
    path = Path(ground_truth_dir) / "trades.ndjson"
    if not path.exists():
        raise DatasetError(
            f"{path} does not exist: event recall needs the simulator's ground truth"
        )
    rows: list[dict[str, Any]] = []
    lines = path.read_text().split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            row: dict[str, Any] = {column: str(record[column]) for column in EVENT_COLUMNS[:-1]}
            row["trade_ts_ms"] = int(record["trade_ts_ms"])
            rows.append(row)
        except (ValueError, KeyError, TypeError) as exc:
            if number == len(lines):
                continue
            raise DatasetError(f"{path} line {number} is damaged: {exc}") from exc
    return pd.DataFrame(rows, columns=list(EVENT_COLUMNS)).drop_duplicates("trade_id")


# --------------------------------------------------------------------------- time split


@dataclass(frozen=True)
class Window:
    """One segment of a time split."""

    name: str
    start: datetime | None
    end: datetime | None
    rows: int
    positives: int

    def as_dict(self) -> dict[str, Any]:
        return {
            f"{self.name}_start": self.start.isoformat() if self.start else None,
            f"{self.name}_end": self.end.isoformat() if self.end else None,
            f"{self.name}_rows": self.rows,
            f"{self.name}_positives": self.positives,
        }


def _window(name: str, frame: pd.DataFrame) -> Window:
    if frame.empty:
        return Window(name, None, None, 0, 0)
    return Window(
        name,
        datetime.fromtimestamp(int(frame["trade_ts_ms"].iloc[0]) / 1000, UTC),
        datetime.fromtimestamp(int(frame["trade_ts_ms"].iloc[-1]) / 1000, UTC),
        len(frame),
        int(frame[LABEL_COLUMN].sum()),
    )


@dataclass(frozen=True)
class TimeSplit:
    """Train, validation and test, in that order in time, separated by purge gaps."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    features: tuple[str, ...]
    labels: LabelSummary
    purge_seconds: int
    purged_rows: dict[str, int] = field(default_factory=dict)

    @property
    def windows(self) -> dict[str, Window]:
        return {
            "train": _window("train", self.train),
            "validation": _window("validation", self.validation),
            "test": _window("test", self.test),
        }

    def summary(self) -> dict[str, Any]:
        """Row counts, windows and purge figures, flat, for run parameters and audit payloads."""
        out: dict[str, Any] = {"purge_seconds": self.purge_seconds}
        for window in self.windows.values():
            out.update(window.as_dict())
        out["purged_rows"] = sum(self.purged_rows.values())
        out.update({f"purged_{k}_rows": v for k, v in self.purged_rows.items()})
        return out


def split_by_time(
    data: TrainingFrame,
    *,
    validation_share: float = 0.15,
    test_share: float = 0.15,
    purge_seconds: int = 3600,
) -> TimeSplit:
    """Split labelled rows by time, never at random.

    Boundaries fall between distinct timestamps, so that equal-time trades never straddle two
    segments. Trades in the last `purge_seconds` before validation starts are dropped from
    train, and likewise from validation before test starts: each later segment keeps all its
    rows (the test window stays the newest complete window) and the dropped rows are counted.
    """
    if not (0 < validation_share < 1 and 0 < test_share < 1 and validation_share + test_share < 1):
        raise InsufficientData(
            f"validation_share={validation_share} and test_share={test_share} must be in (0, 1) "
            "and leave rows for training"
        )
    if purge_seconds < 0:
        raise InsufficientData(f"purge_seconds={purge_seconds} must be ≥ 0")
    frame = data.frame
    ts = frame["trade_ts_ms"].to_numpy()
    if len(frame) < 3 or len(np.unique(ts)) < 3:
        raise InsufficientData(
            f"{len(frame)} labelled trades cannot be split into train, validation and test"
        )
    if np.any(np.diff(ts) < 0):
        frame = frame.sort_values(["trade_ts_ms", "trade_id"], kind="stable").reset_index(drop=True)
        ts = frame["trade_ts_ms"].to_numpy()
    n = len(frame)
    validation_start = ts[int(n * (1 - validation_share - test_share))]
    test_start = ts[int(n * (1 - test_share))]
    purge_ms = purge_seconds * 1000

    in_train = ts < validation_start
    in_validation = (ts >= validation_start) & (ts < test_start)
    in_test = ts >= test_start
    keep_train = in_train & (ts <= validation_start - purge_ms)
    keep_validation = in_validation & (ts <= test_start - purge_ms)

    split = TimeSplit(
        train=frame.loc[keep_train].reset_index(drop=True),
        validation=frame.loc[keep_validation].reset_index(drop=True),
        test=frame.loc[in_test].reset_index(drop=True),
        features=data.features,
        labels=data.labels,
        purge_seconds=purge_seconds,
        purged_rows={
            "train": int(in_train.sum() - keep_train.sum()),
            "validation": int(in_validation.sum() - keep_validation.sum()),
        },
    )
    span_hours = (ts[-1] - ts[0]) / 3_600_000
    for name, segment in (
        ("train", split.train),
        ("validation", split.validation),
        ("test", split.test),
    ):
        if segment.empty:
            raise InsufficientData(
                f"the {name} window is empty after a {purge_seconds} s purge gap over "
                f"{span_hours:.1f} h of trades: collect more history or lower purge_seconds"
            )
    for name, segment in (("train", split.train), ("validation", split.validation)):
        if not segment[LABEL_COLUMN].any():
            raise InsufficientData(
                f"the {name} window has no anomalous trade: the models cannot learn or choose a "
                "threshold; collect more labelled history"
            )
    return split


def window_bounds(frame: pd.DataFrame) -> tuple[str | None, str | None]:
    """ISO start and end (UTC) of a frame's trades, for audit payloads."""
    if frame.empty:
        return None, None
    ts = frame["trade_ts_ms"]
    return (
        datetime.fromtimestamp(int(ts.min()) / 1000, UTC).isoformat(),
        datetime.fromtimestamp(int(ts.max()) / 1000, UTC).isoformat(),
    )


def symbols_missing(frame: pd.DataFrame, symbols: Iterable[str]) -> list[str]:
    """Configured symbols that have no trade in `frame`."""
    present = set(frame["symbol"].unique()) if len(frame) else set()
    return sorted(set(symbols) - present)


def label_mix_of(frames: Mapping[str, pd.DataFrame]) -> dict[str, dict[str, int]]:
    """Label-source counts per named frame (e.g. per split segment)."""
    return {name: LabelSummary.of(frame).mix for name, frame in frames.items()}
