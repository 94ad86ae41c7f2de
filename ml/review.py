"""Analyst review of flagged trades: decisions, the label store, clusters and score drivers.

An analyst confirms a flagged trade as an anomaly of some kind, or dismisses it, always with a
reason. Each call writes one NDJSON file of decisions (core.datahome.LABEL_DECISIONS) into the
label store `<data home>/labels/decisions/`, whole or not at all (`write_atomic`); dbt reads
the store as a source and keeps the latest decision per trade. The store is any
core.datahome.DataHome (a local folder, or a folder of a Unity Catalog volume). Nothing here
knows of settings, Prefect or the warehouse: flows.review reads the warehouse, checks the trade
ids against it and calls these functions.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from core.datahome import LABEL_DECISIONS, DataHome, as_data_home
from core.schema import ANOMALY_KINDS, CATEGORY_LEVELS
from core.volume import VolumeError

#: Kinds an analyst may confirm: the simulator's kinds, and `other` for anything else.
REVIEW_KINDS: tuple[str, ...] = (*ANOMALY_KINDS, "other")
CONFIRM, DISMISS = "confirm", "dismiss"
#: The environment variable naming the reviewer when no name is given.
REVIEWER_ENV = "TRADEWATCH_REVIEWER"
#: The audit-log kind of one review decision.
AUDIT_KIND = "review_decision"


class ReviewError(ValueError):
    """A review decision was refused (one line saying why); nothing was written."""


# --------------------------------------------------------------------------- decisions


def reviewer_name(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The reviewer: `explicit`, else $TRADEWATCH_REVIEWER, else the login name."""
    env = os.environ if environ is None else environ
    for candidate in (explicit, env.get(REVIEWER_ENV)):
        if candidate and candidate.strip():
            return candidate.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def check_decision(
    trade_ids: Iterable[str],
    *,
    confirm: bool,
    kind: str | None,
    reason: str,
    known: Iterable[str],
    flagged: Iterable[str],
) -> list[str]:
    """The trade ids to decide (de-duplicated, in order) after checking everything.

    `known` are the trade ids in the warehouse, `flagged` those the champion flagged. Raises
    ReviewError naming the first problem: no trade id, an unknown or never-flagged trade, an
    empty reason, a confirmation without a known kind or a dismissal with one.
    """
    ids = list(dict.fromkeys(str(t).strip() for t in trade_ids))
    if not ids or any(not t for t in ids):
        raise ReviewError("give at least one trade id (an empty id is not one)")
    if not reason or not reason.strip():
        raise ReviewError("a decision needs a reason (--reason TEXT): say why")
    if confirm:
        if not kind:
            raise ReviewError(f"a confirmation needs a kind (--kind): {', '.join(REVIEW_KINDS)}")
        if kind not in REVIEW_KINDS:
            raise ReviewError(f"unknown kind {kind!r}: one of {', '.join(REVIEW_KINDS)}")
    elif kind:
        raise ReviewError("a dismissal takes no kind (the trade is not an anomaly)")
    known_ids, flagged_ids = set(known), set(flagged)
    unknown = [t for t in ids if t not in known_ids]
    if unknown:
        raise ReviewError(
            f"unknown trade id(s) {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}: "
            "not in the warehouse; nothing recorded"
        )
    never = [t for t in ids if t not in flagged_ids]
    if never:
        raise ReviewError(
            f"trade(s) {', '.join(never[:5])}{' ...' if len(never) > 5 else ''} never flagged by "
            "the champion: only flagged trades are reviewed; nothing recorded"
        )
    return ids


def iso_utc(moment: datetime) -> str:
    """`moment` as ISO-8601 UTC with milliseconds and "Z"."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def decision_records(
    trade_ids: Sequence[str],
    *,
    confirm: bool,
    kind: str | None,
    reason: str,
    reviewer: str,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """One LABEL_DECISIONS record per trade, all with the same time and reviewer."""
    decided_at = iso_utc(now or datetime.now(UTC))
    return [
        LABEL_DECISIONS.record({
            "decision_id": secrets.token_hex(12),
            "trade_id": trade_id,
            "decision": CONFIRM if confirm else DISMISS,
            "is_anomaly": bool(confirm),
            "anomaly_kind": kind if confirm else None,
            "reviewer": reviewer,
            "reason": reason.strip(),
            "decided_at": decided_at,
        })
        for trade_id in trade_ids
    ]


def write_decisions(
    directory: DataHome | Path | str, records: Sequence[Mapping[str, Any]]
) -> PurePath:
    """Write the records as one new NDJSON file of the store `directory` (a data home, or a
    local folder), whole or not at all; return where it is (its `name` is relative to the
    store, for `DataHome.remove`)."""
    if not records:
        raise ReviewError("no decisions to write")
    stamp = str(records[0]["decided_at"]).replace(":", "").replace("-", "").replace(".", "")
    name = f"decisions-{stamp}-{secrets.token_hex(4)}.ndjson"
    text = "".join(json.dumps(dict(r), ensure_ascii=False) + "\n" for r in records)
    return as_data_home(directory).write_atomic(name, text)


@dataclass(frozen=True)
class DecisionStore:
    """Every decision in the store (one row each, oldest first), and the files it refused."""

    decisions: pd.DataFrame
    rejected: tuple[str, ...]

    def latest(self) -> pd.DataFrame:
        """The newest decision per trade (as dbt keeps it)."""
        if self.decisions.empty:
            return self.decisions
        return self.decisions.drop_duplicates("trade_id", keep="last").reset_index(drop=True)


def _valid(record: Any) -> bool:
    if not isinstance(record, dict) or set(record) != set(LABEL_DECISIONS.columns):
        return False
    if not record.get("trade_id") or record.get("decision") not in (CONFIRM, DISMISS):
        return False
    if not isinstance(record.get("is_anomaly"), bool):
        return False
    try:
        datetime.fromisoformat(str(record["decided_at"]).replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def read_decisions(directory: DataHome | Path | str) -> DecisionStore:
    """Read the label store `directory` (a data home, or a local folder; a missing one is
    empty). A file with any line that is not a whole, valid decision is rejected as a whole
    (listed in `rejected`, its lines not used), as dbt drops those lines; a file removed since
    it was listed is skipped. A volume that cannot be reached raises VolumeError (one line):
    that says nothing of its files."""
    store = as_data_home(directory)
    rows: list[dict[str, Any]] = []
    rejected: list[str] = []
    for relative in store.list("", LABEL_DECISIONS.pattern):
        name = PurePosixPath(relative).name
        try:
            text = store.read(relative).decode("utf-8")
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        except FileNotFoundError:  # withdrawn since it was listed
            continue
        except VolumeError:
            raise
        except (OSError, UnicodeDecodeError, ValueError):
            rejected.append(name)
            continue
        if not records or not all(_valid(r) for r in records):
            rejected.append(name)
            continue
        rows.extend(records)
    frame = pd.DataFrame(rows, columns=list(LABEL_DECISIONS.columns))
    if not frame.empty:
        frame["decided_at"] = pd.to_datetime(frame["decided_at"], utc=True, format="ISO8601")
        frame = frame.sort_values(["decided_at", "decision_id"], kind="stable")
        frame = frame.reset_index(drop=True)
    return DecisionStore(frame, tuple(rejected))


# --------------------------------------------------------------------------- clusters


def assign_clusters(flags: pd.DataFrame, gap_seconds: float) -> pd.DataFrame:
    """`flags` (trade_id, symbol, trade_ts) with cluster_id and cluster_size added.

    Flags of one symbol belong to one cluster while each follows the previous within
    `gap_seconds`; the cluster's id is "<symbol>@<first flag's time>".
    """
    out = flags.copy()
    if out.empty:
        out["cluster_id"] = pd.Series(dtype=object)
        out["cluster_size"] = pd.Series(dtype="int64")
        return out
    ts = pd.to_datetime(out["trade_ts"])
    order = out.assign(_ts=ts).sort_values(["symbol", "_ts", "trade_id"], kind="stable")
    gaps = order.groupby("symbol", sort=False)["_ts"].diff().dt.total_seconds()
    starts = gaps.isna() | (gaps > gap_seconds)
    number = starts.cumsum()
    first_ts = order["_ts"].groupby(number).transform("min")
    order["cluster_id"] = order["symbol"].astype(str) + "@" + first_ts.dt.strftime(
        "%Y-%m-%dT%H:%M:%S.%f").str[:-3]
    order["cluster_size"] = order.groupby(number)["trade_id"].transform("size").astype("int64")
    return order.drop(columns="_ts").loc[out.index]


# --------------------------------------------------------------------------- score drivers


@dataclass(frozen=True)
class Driver:
    """One feature behind a flag: its value and how much it pushed the score up (`weight`)."""

    feature: str
    value: Any
    weight: float


#: How the drivers were found (TradeContext.drivers_method).
CONTRIBUTIONS = "model contributions"
ROBUST_Z = "robust z fallback"


def model_contributions(anomaly_model: Any, row: pd.DataFrame) -> list[Driver] | None:
    """The champion's own per-feature contributions to this row's score (log-odds units),
    largest first: LightGBM `pred_contrib`, XGBoost `pred_contribs`. None for a model whose
    library gives none (the forests)."""
    from ml.models import design_matrix

    name = getattr(anomaly_model, "name", None)
    if name not in ("lightgbm", "xgboost"):
        return None
    x = design_matrix(row, anomaly_model.features, one_hot=anomaly_model.one_hot)
    if name == "lightgbm":
        values = np.asarray(anomaly_model.estimator.predict(x, pred_contrib=True))
    else:
        import xgboost as xgb

        booster = anomaly_model.estimator.get_booster()
        values = np.asarray(
            booster.predict(xgb.DMatrix(x, enable_categorical=True), pred_contribs=True)
        )
    contributions = values[0][: len(x.columns)]
    drivers = [
        Driver(column, _plain(row.iloc[0].get(column)), float(weight))
        for column, weight in zip(x.columns, contributions, strict=True)
    ]
    return sorted(drivers, key=lambda d: -d.weight)


def robust_z_drivers(
    row: pd.Series, history: pd.DataFrame, features: Sequence[str]
) -> list[Driver]:
    """The numeric features furthest from the symbol's median, in robust z units
    (|value − median| / (1.4826 · MAD)), largest first: a fallback when the model gives no
    contributions of its own."""
    drivers = []
    for feature in features:
        if feature in CATEGORY_LEVELS or feature not in history or feature not in row:
            continue
        values = pd.to_numeric(history[feature], errors="coerce").dropna()
        value = pd.to_numeric(pd.Series([row[feature]]), errors="coerce").iloc[0]
        if values.empty or pd.isna(value):
            continue
        median = float(values.median())
        mad = float((values - median).abs().median()) * 1.4826
        scale = mad if mad > 0 else float(values.std() or 0) or 1.0
        drivers.append(Driver(feature, float(value), abs(float(value) - median) / scale))
    return sorted(drivers, key=lambda d: -d.weight)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value
