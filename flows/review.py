"""`tradewatch review`: the champion's flags, each flag's context, and analysts' decisions.

Gold is read where the engine says analysts read it (flows.engine.gold_reader_for_analysts):
on DuckDB the analysts' read-only copy (`<data home>/analysts/warehouse.duckdb`,
flows.analysts), which can be opened while a cycle writes the warehouse; on Spark and
Databricks the engine's own reader. Decisions go to the label store `labels/decisions/` of the
engine's data home (a local folder, or the Unity Catalog volume on Databricks; one file per
call, written whole: ml.review) and to the audit log (kind `review_decision`); the next `dbt
build` reads them into gold_anomaly_labels, where the latest decision per trade wins over the
answer key and the rule. Until that build, the queue leaves out the trades decided in the store
already.

The review page of `tradewatch ui` calls the same functions: `review_queue`, `trade_context`,
`record_decisions`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from core.datahome import LABEL_DECISIONS_DIR, DataHome, within
from core.warehouse import Warehouse, WarehouseError
from flows import engine
from flows.analysts import AnalystsDatabaseMissing
from flows.config import Settings
from ml.audit import AuditLog
from ml.review import (
    AUDIT_KIND,
    CONTRIBUTIONS,
    REVIEW_KINDS,
    ROBUST_Z,
    DecisionStore,
    Driver,
    ReviewError,
    assign_clusters,
    check_decision,
    decision_records,
    model_contributions,
    read_decisions,
    reviewer_name,
    robust_z_drivers,
    write_decisions,
)

__all__ = [
    "REVIEW_KINDS", "QueueItem", "ReviewError", "TradeContext", "label_store",
    "read_label_store", "record_decisions", "review_queue", "trade_context",
]

FLAGS = "gold_flagged_trades"
FEATURES = "gold_trade_features"
BARS = "gold_minute_bars"
#: Columns of a queue row, read from gold_flagged_trades.
_QUEUE_COLUMNS = ("trade_id", "symbol", "trade_ts", "price", "volume", "score", "risk_level")


@dataclass(frozen=True)
class QueueItem:
    """One unreviewed flag of the champion, with the cluster it belongs to."""

    trade_id: str
    symbol: str
    trade_ts: pd.Timestamp
    price: float
    volume: float
    score: float
    risk_level: str
    cluster_id: str
    cluster_size: int


@dataclass(frozen=True)
class TradeContext:
    """Everything an analyst looks at to decide one flag.

    `trade` is the flag's row of gold_flagged_trades (score, model version, every feature, its
    minute bar, label and review status); `drivers` the features behind the score, largest
    first, found as `drivers_method` says (the champion's own contributions, or the robust-z
    fallback) with `drivers_note` saying why; `trades` and `bars` the symbol's trades (with
    `flagged`) and minute bars within ± settings.review.context_minutes; `cluster` the ids of
    the unreviewed flags of the same cluster (this one included), to decide at once;
    `decision` the latest decision in the store for this trade, if any.
    """

    trade: dict[str, Any]
    drivers: list[Driver]
    drivers_method: str
    drivers_note: str
    trades: pd.DataFrame
    bars: pd.DataFrame
    cluster_id: str
    cluster: list[str]
    decision: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def trade_id(self) -> str:
        return str(self.trade["trade_id"])

    @property
    def symbol(self) -> str:
        return str(self.trade["symbol"])


# --------------------------------------------------------------------------- reading


def _analysts(settings: Settings) -> Warehouse:
    """The reader of gold for analysts on the configured engine (flows.engine)."""
    try:
        return engine.gold_reader_for_analysts(settings)
    except AnalystsDatabaseMissing as exc:
        raise ReviewError(str(exc)) from None


def label_store(settings: Settings) -> DataHome:
    """The label store: `labels/decisions` of the engine's data home."""
    return within(engine.data_home(settings), LABEL_DECISIONS_DIR)


def label_store_location(settings: Settings) -> str:
    """Where the label store is, for messages (a local path or a volume path)."""
    return engine.location(engine.data_home(settings), LABEL_DECISIONS_DIR)


def read_label_store(settings: Settings) -> DecisionStore:
    """Every decision in the label store; ReviewError (one line) when it cannot be read."""
    try:
        return read_decisions(label_store(settings))
    except OSError as exc:
        raise ReviewError(f"cannot read the label store: {exc}") from None



def _in_list(warehouse: Warehouse, ids: Iterable[str]) -> str:
    return ", ".join(warehouse.literal(str(i)) for i in ids) or "null"


def _unreviewed_flags(warehouse: Warehouse, store: DecisionStore,
                      symbol: str | None = None) -> pd.DataFrame:
    where = "review_status = 'unreviewed'"
    if symbol is not None:
        where += f" and symbol = {warehouse.literal(symbol)}"
    flags = warehouse.query(
        f"select {', '.join(_QUEUE_COLUMNS)} from {warehouse.table(FLAGS)} where {where}"
    )
    decided = set(store.decisions["trade_id"]) if not store.decisions.empty else set()
    return flags.loc[~flags["trade_id"].isin(decided)].reset_index(drop=True)


def review_queue(settings: Settings, *, limit: int = 50,
                 symbol: str | None = None) -> list[QueueItem]:
    """The champion's unreviewed flags, highest score first (at most `limit`), each with its
    cluster: the flags of the same symbol each within settings.review.cluster_gap_seconds of
    the previous one. Trades decided in the label store since the last build are left out."""
    if limit < 1:
        raise ReviewError(f"limit must be at least 1, got {limit}")
    store = read_label_store(settings)
    try:
        with _analysts(settings) as warehouse:
            flags = _unreviewed_flags(warehouse, store, symbol)
    except WarehouseError as exc:
        raise ReviewError(f"cannot read the review queue: {exc}") from None
    clustered = assign_clusters(flags, settings.review.cluster_gap_seconds)
    ranked = clustered.sort_values(["score", "trade_ts", "trade_id"],
                                   ascending=[False, True, True], kind="stable").head(limit)
    rows: list[dict[Any, Any]] = ranked.to_dict("records")
    return [
        QueueItem(
            trade_id=str(r["trade_id"]), symbol=str(r["symbol"]),
            trade_ts=pd.Timestamp(r["trade_ts"]), price=float(r["price"]),
            volume=float(r["volume"]), score=float(r["score"]), risk_level=str(r["risk_level"]),
            cluster_id=str(r["cluster_id"]), cluster_size=int(r["cluster_size"]),
        )
        for r in rows
    ]


#: The champion's fitted model by (tracking URI, model name, version): the review page asks for
#: one flag after another, and loading a version downloads and hashes its artifacts.
_CHAMPIONS: dict[tuple[str, str, str | None], tuple[str, Any]] = {}


def _drivers(settings: Settings, warehouse: Warehouse, trade: pd.DataFrame,
             history_where: str) -> tuple[list[Driver], str, str]:
    """The champion's own contributions, else the robust-z fallback, and the reason."""
    from ml.datasets import normalise_features

    row = trade.iloc[0]
    why = "the champion is not available here"
    if engine.has_model_registry(settings):
        try:
            from flows.training import load_checked, registry

            models = registry(settings)
            version = models.version_for_alias("champion")
            key = (models.tracking_uri, models.name, version)
            if key not in _CHAMPIONS:  # loaded (and integrity-checked) once per process
                loaded = load_checked(settings, models, "champion")
                _CHAMPIONS.clear()
                _CHAMPIONS[key] = (loaded.version, loaded.model.unwrap_python_model().model)
            loaded_version, anomaly_model = _CHAMPIONS[key]
            features = list(anomaly_model.features)
            contributions = model_contributions(
                anomaly_model, normalise_features(trade.copy(), features)
            )
            if contributions is not None:
                note = (f"{anomaly_model.name} version {loaded_version}: its own per-feature "
                        "contributions (log-odds; positive pushed the score up)")
                if str(row.get("model_version")) != str(loaded_version):
                    note += f"; the flag came from version {row.get('model_version')}"
                return contributions, CONTRIBUTIONS, note
            why = f"{anomaly_model.name} gives no per-feature contributions"
        except Exception as exc:  # any failure: the fallback still explains the flag
            why = f"the champion could not be loaded ({type(exc).__name__})"
    from core.schema import FEATURE_COLUMNS

    history = warehouse.query(
        f"select {', '.join(FEATURE_COLUMNS)} from {warehouse.table(FEATURES)} "
        f"where {history_where}"
    )
    drivers = robust_z_drivers(row, history, FEATURE_COLUMNS)
    return drivers, ROBUST_Z, (
        f"{why}: the features furthest from the symbol's median that day, in robust z units "
        "(|value − median| / (1.4826·MAD)) — not the model's own reasoning"
    )


def trade_context(settings: Settings, trade_id: str) -> TradeContext:
    """The flag `trade_id` with its drivers, the symbol's trades and minute bars around it and
    the other unreviewed flags of its cluster. ReviewError for an unknown or unflagged trade."""
    store = read_label_store(settings)
    minutes = timedelta(minutes=settings.review.context_minutes)
    try:
        with _analysts(settings) as warehouse:
            trade = warehouse.query(
                f"select * from {warehouse.table(FLAGS)} "
                f"where trade_id = {warehouse.literal(trade_id)}"
            )
            if trade.empty:
                known = warehouse.query(
                    f"select count(*) as n from {warehouse.table(FEATURES)} "
                    f"where trade_id = {warehouse.literal(trade_id)}"
                )["n"].iloc[0]
                if known:
                    raise ReviewError(f"trade {trade_id} was never flagged by the champion")
                raise ReviewError(f"unknown trade id {trade_id}: not in the warehouse")
            row = trade.iloc[0]
            symbol = warehouse.literal(str(row["symbol"]))
            ts = pd.Timestamp(row["trade_ts"])
            start, end = ts - minutes, ts + minutes
            between = (f"between timestamp '{start:%Y-%m-%d %H:%M:%S.%f}' "
                       f"and timestamp '{end:%Y-%m-%d %H:%M:%S.%f}'")
            trades = warehouse.query(
                f"select f.trade_id, f.trade_ts, f.price, f.volume, "
                f"g.trade_id is not null as flagged, g.score "
                f"from {warehouse.table(FEATURES)} as f "
                f"left join {warehouse.table(FLAGS)} as g on g.trade_id = f.trade_id "
                f"where f.symbol = {symbol} and f.trade_ts {between} "
                f"order by f.trade_ts, f.trade_id"
            )
            bars = warehouse.query(
                f"select * from {warehouse.table(BARS)} "
                f"where symbol = {symbol} and bar_minute {between} order by bar_minute"
            )
            flags = _unreviewed_flags(warehouse, store, str(row["symbol"]))
            if trade_id not in set(flags["trade_id"]):
                flags = pd.concat([flags, trade.loc[:, list(_QUEUE_COLUMNS)]],
                                  ignore_index=True)
            day = row.get("trade_date_ny")
            history_where = f"symbol = {symbol}" + (
                f" and trade_date_ny = date '{pd.Timestamp(day):%Y-%m-%d}'"
                if day is not None and not pd.isna(day) else "")
            drivers, method, note = _drivers(settings, warehouse, trade, history_where)
    except WarehouseError as exc:
        raise ReviewError(f"cannot read trade {trade_id}: {exc}") from None
    clustered = assign_clusters(flags, settings.review.cluster_gap_seconds)
    cluster_id = str(clustered.loc[clustered["trade_id"] == trade_id, "cluster_id"].iloc[0])
    members = clustered.loc[clustered["cluster_id"] == cluster_id].sort_values("trade_ts")
    decision = None
    latest = store.latest()
    if not latest.empty and trade_id in set(latest["trade_id"]):
        decision = latest.loc[latest["trade_id"] == trade_id].iloc[0].to_dict()
    warnings = [f"label store: file {name} is malformed and ignored" for name in store.rejected]
    return TradeContext(
        trade={k: (None if _missing(v) else v) for k, v in row.to_dict().items()},
        drivers=drivers,
        drivers_method=method,
        drivers_note=note,
        trades=trades,
        bars=bars,
        cluster_id=cluster_id,
        cluster=[str(t) for t in members["trade_id"]],
        decision=decision,
        warnings=warnings,
    )


def _missing(value: Any) -> bool:
    with contextlib.suppress(TypeError, ValueError):
        return bool(pd.isna(value))
    return False


# --------------------------------------------------------------------------- deciding


def record_decisions(
    settings: Settings,
    trade_ids: Sequence[str],
    *,
    confirm: bool,
    kind: str | None,
    reason: str,
    reviewer: str | None = None,
) -> list[dict]:
    """Confirm (as `kind`) or dismiss the flags `trade_ids`, with `reason`; return the records.

    Everything is checked before anything is written (ReviewError, one line, nothing written):
    an unknown trade, a trade the champion never flagged, an empty reason, a confirmation
    without a known kind. Then one file of decisions is written to the label store, whole or
    not at all, and one `review_decision` record per decision to the audit log. The reviewer
    is `reviewer`, else $TRADEWATCH_REVIEWER, else the login name.
    """
    ids = list(dict.fromkeys(str(t).strip() for t in trade_ids))
    # the cheap checks first, before the warehouse is opened
    check_decision(ids, confirm=confirm, kind=kind, reason=reason, known=ids, flagged=ids)
    try:
        with _analysts(settings) as warehouse:
            listed = _in_list(warehouse, ids)
            known = warehouse.query(
                f"select trade_id from {warehouse.table(FEATURES)} where trade_id in ({listed})"
            )["trade_id"]
            flagged = warehouse.query(
                f"select trade_id from {warehouse.table(FLAGS)} where trade_id in ({listed})"
            )["trade_id"]
    except WarehouseError as exc:
        raise ReviewError(f"cannot check the trade ids: {exc}") from None
    ids = check_decision(ids, confirm=confirm, kind=kind, reason=reason, known=set(known),
                         flagged=set(flagged))
    records = decision_records(ids, confirm=confirm, kind=kind, reason=reason,
                               reviewer=reviewer_name(reviewer))
    try:
        store = label_store(settings)
        path = write_decisions(store, records)
    except OSError as exc:
        raise ReviewError(f"cannot write to the label store ({exc}); nothing recorded") from None
    log = AuditLog(settings.paths.audit)
    try:
        for record in records:
            log.append(AUDIT_KIND, {**record, "file": path.name})
    except Exception as exc:
        failure = f"the audit log could not record the decision ({type(exc).__name__}: {exc})"
        try:
            store.remove(path.name)  # not audited: not decided
        except OSError as removal:
            raise ReviewError(
                f"{failure}, and the decisions could not be withdrawn from the label store "
                f"({removal}): remove {path} by hand"
            ) from None
        raise ReviewError(f"{failure}; the decisions were withdrawn from the label store") \
            from None
    return records


# --------------------------------------------------------------------------- printing


def print_queue(items: Sequence[QueueItem], console: Console) -> None:
    """The queue as a table."""
    table = Table(title=f"Review queue: {len(items)} unreviewed flag(s), highest score first")
    for title in ("trade_id", "symbol", "trade_ts (UTC)", "price", "volume", "score", "risk",
                  "cluster"):
        table.add_column(title, justify="right" if title in ("price", "volume", "score")
                         else "left")
    for item in items:
        table.add_row(
            item.trade_id, item.symbol, f"{item.trade_ts:%Y-%m-%d %H:%M:%S.%f}"[:-3],
            f"{item.price:,.4f}", f"{item.volume:,.0f}", f"{item.score:.3f}", item.risk_level,
            f"{item.cluster_id} ({item.cluster_size})",
        )
    console.print(table)


def print_context(context: TradeContext, console: Console, *, top: int = 8) -> None:
    """One flag's context as tables."""
    t = context.trade
    console.print(
        f"[bold]{context.trade_id}[/] {context.symbol} at {t.get('trade_ts')} — price "
        f"{t.get('price')}, volume {t.get('volume')}, score {t.get('score'):.3f} "
        f"({t.get('risk_level')}), {t.get('model_name')} version {t.get('model_version')}; "
        f"label {t.get('label_source')}, {t.get('review_status')}", highlight=False,
    )
    if context.decision:
        made = context.decision
        console.print(f"decided in the label store (not yet built): {made['decision']} by "
                      f"{made['reviewer']} at {made['decided_at']} — {made['reason']}",
                      highlight=False)
    drivers = Table(title=f"What drove the score ({context.drivers_method})")
    drivers.add_column("feature")
    drivers.add_column("value", justify="right")
    drivers.add_column("contribution" if context.drivers_method == CONTRIBUTIONS
                       else "robust z", justify="right")
    for d in context.drivers[:top]:
        value = f"{d.value:.4g}" if isinstance(d.value, float) else str(d.value)
        drivers.add_row(d.feature, value, f"{d.weight:+.3f}")
    console.print(drivers)
    console.print(context.drivers_note, highlight=False)
    bars = Table(title=f"{context.symbol} minute bars around the trade (UTC)")
    for title in ("minute", "open", "high", "low", "close", "volume", "trades"):
        bars.add_column(title, justify="left" if title == "minute" else "right")
    for b in context.bars.itertuples(index=False):
        bars.add_row(f"{b.bar_minute:%H:%M}", f"{b.open:,.4f}", f"{b.high:,.4f}",
                     f"{b.low:,.4f}", f"{b.close:,.4f}", f"{b.volume:,.0f}",
                     f"{b.trade_count:,}")
    console.print(bars)
    flagged = int(context.trades["flagged"].sum()) if not context.trades.empty else 0
    console.print(f"{len(context.trades):,} trades of {context.symbol} in the window, "
                  f"{flagged:,} flagged", highlight=False)
    console.print(f"cluster {context.cluster_id}: {len(context.cluster)} unreviewed flag(s): "
                  f"{' '.join(context.cluster)}", highlight=False)
    for warning in context.warnings:
        console.print(f"[yellow]{warning}[/]")


def run_review_list(settings: Settings, *, limit: int = 50, symbol: str | None = None,
                    console: Console | None = None) -> int:
    """`tradewatch review list`."""
    console = console or Console()
    items = review_queue(settings, limit=limit, symbol=symbol)
    print_queue(items, console)
    if not items:
        console.print("nothing to review: no unreviewed flags of the champion in gold "
                      "(no champion yet, or every flag decided)", highlight=False)
    rejected = read_label_store(settings).rejected
    if rejected:
        console.print(f"[yellow]label store: {len(rejected)} malformed file(s) ignored: "
                      f"{', '.join(rejected)}[/]")
    return 0


def run_review_show(settings: Settings, trade_id: str, *,
                    console: Console | None = None) -> int:
    """`tradewatch review show ID`."""
    print_context(trade_context(settings, trade_id), console or Console())
    return 0


def run_review_decide(settings: Settings, trade_ids: Sequence[str], *, confirm: bool,
                      kind: str | None, reason: str, reviewer: str | None,
                      console: Console | None = None) -> int:
    """`tradewatch review confirm|dismiss ID...`."""
    console = console or Console()
    records = record_decisions(settings, trade_ids, confirm=confirm, kind=kind, reason=reason,
                               reviewer=reviewer)
    verb = f"confirmed as {kind}" if confirm else "dismissed"
    console.print(
        f"review: {len(records)} trade(s) {verb} by {records[0]['reviewer']} → "
        f"{label_store_location(settings)} (audited; in gold_anomaly_labels after the next "
        "build)", highlight=False,
    )
    return 0
