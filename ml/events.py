"""Anomaly events and the alerts that find them: models judged as an analyst sees them.

An analyst does not read trades one by one. A model's flags on one symbol become **alerts**,
and an alert is worth something when it points at a real **event** (a pump-and-dump, a wash
cluster, ...), however many of that event's trades it flags. This module holds the one
definition of both and of the metrics built on them.

**Events** are a frame (`EVENT_COLUMNS`): event_id, symbol, start_ts_ms, end_ts_ms (inclusive,
epoch ms), kind and source — `ground_truth` (the simulator's answer key) today, `analyst`
(confirmed by a reviewer) later, or `labels` (runs of labelled trades, when nothing better
exists). Any source that can say "this symbol, from then to then, was this kind of anomaly"
can be judged on.

**Alerts** are built from flags per symbol: an alert opens at a flag and takes every later flag
of the same symbol within `gap` of its first flag; the next flag opens the next alert. So an
alert never lasts longer than the gap, a long streak of flags is one alert per gap (an analyst
is paged that often), and flagging everything cannot merge a day into one "true" alert.

**Matching.** An event is detected when a flag falls inside its span (same symbol, start ≤ flag
time ≤ end); the alert holding that flag is a true alert. An alert with no flag inside any event
is a false alert. An alert inside two events detects both; a second alert on an event already
detected is a duplicate: neither true nor false for precision. Each event counts once.

**Metrics** (`EventMetrics`), on one window:
- event recall: detected events / events in the window;
- alert precision: detected events / (detected events + false alerts): each event counted
  once, so one long pump-and-dump cannot make a loose threshold look precise;
- event-level average precision: the area under that precision-recall curve as the threshold
  falls through the scores (the step sum Σ ΔR·P, as scikit-learn's average precision; the
  thresholds are each event's highest score, where its recall steps up);
- event recall at a required alert precision: the most recall any threshold reaches while
  alert precision stays at or above it (threshold-free: what the model could do);
- false alerts per day (per 24 h of the window's elapsed time) and median time to detect
  (seconds from an event's start to its first flag), at the model's own threshold;
- per kind: events, recall, average precision (the kind's recall steps weighed by overall alert
  precision) and median time to detect.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

EVENT_COLUMNS: tuple[str, ...] = (
    "event_id", "symbol", "start_ts_ms", "end_ts_ms", "kind", "source"
)
EVENT_SOURCES: tuple[str, ...] = ("analyst", "ground_truth", "labels")
DEFAULT_ALERT_GAP_SECONDS = 60.0
# Above this many events the average-precision thresholds are quantiles of the events' highest
# scores instead of every one of them (a close approximation, bounded cost).
MAX_CURVE_THRESHOLDS = 512
DAY_MS = 86_400_000

# Symbols become integer codes and keys symbol * _STRIDE + ts: one sorted axis for all symbols.
_STRIDE = np.int64(10**13)  # beyond epoch milliseconds until the year 2286


class EventError(ValueError):
    """An events frame or a scored window cannot be judged."""


# --------------------------------------------------------------------------- events


def empty_events() -> pd.DataFrame:
    """An events frame with no event."""
    return pd.DataFrame(
        {
            "event_id": pd.Series(dtype=object),
            "symbol": pd.Series(dtype=object),
            "start_ts_ms": pd.Series(dtype="int64"),
            "end_ts_ms": pd.Series(dtype="int64"),
            "kind": pd.Series(dtype=object),
            "source": pd.Series(dtype=object),
        }
    )


def check_events(events: pd.DataFrame) -> pd.DataFrame:
    """The events frame with checked columns and types (raises EventError on bad input)."""
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise EventError(f"events lack column(s) {', '.join(missing)}")
    out = events.loc[:, list(EVENT_COLUMNS)].copy()
    if out.empty:
        return empty_events()
    if out[list(EVENT_COLUMNS)].isna().any().any():
        raise EventError(
            "events have empty fields: every event needs all of " + ", ".join(EVENT_COLUMNS)
        )
    out["start_ts_ms"] = out["start_ts_ms"].astype("int64")
    out["end_ts_ms"] = out["end_ts_ms"].astype("int64")
    backwards = out["end_ts_ms"] < out["start_ts_ms"]
    if backwards.any():
        first = out.loc[backwards, "event_id"].iloc[0]
        raise EventError(
            f"event {first} ends before it starts ({int(backwards.sum())} such events)"
        )
    unknown = sorted(set(out["source"]) - set(EVENT_SOURCES))
    if unknown:
        raise EventError(
            f"unknown event source(s) {', '.join(map(str, unknown))}: "
            f"use {', '.join(EVENT_SOURCES)}"
        )
    repeated = out["event_id"].duplicated()
    if repeated.any():
        raise EventError(f"event ids repeat: {out.loc[repeated, 'event_id'].iloc[0]}")
    for column in ("event_id", "symbol", "kind", "source"):
        out[column] = out[column].astype(str).astype(object)
    return out.reset_index(drop=True)


def events_from_answer_key(trades: pd.DataFrame, source: str = "ground_truth") -> pd.DataFrame:
    """Events from trade-level answer-key rows (trade_id, event_id, kind, symbol, trade_ts_ms),
    e.g. the simulator's ground_truth/trades.ndjson: each event spans its first to last trade."""
    missing = [c for c in ("event_id", "kind", "symbol", "trade_ts_ms") if c not in trades.columns]
    if missing:
        raise EventError(f"answer-key rows lack column(s) {', '.join(missing)}")
    if trades.empty:
        return empty_events()
    grouped = trades.assign(trade_ts_ms=trades["trade_ts_ms"].astype("int64")).groupby(
        "event_id", sort=True
    )
    events = grouped.agg(
        symbol=("symbol", "first"),
        start_ts_ms=("trade_ts_ms", "min"),
        end_ts_ms=("trade_ts_ms", "max"),
        kind=("kind", "first"),
    ).reset_index()
    return check_events(events.assign(source=source))


def events_from_labels(
    frame: pd.DataFrame,
    *,
    gap_seconds: float = DEFAULT_ALERT_GAP_SECONDS,
    label_column: str = "is_anomaly",
) -> pd.DataFrame:
    """Events when no answer key exists: runs of labelled trades per symbol, a new event
    wherever consecutive anomalous trades of the symbol are more than `gap_seconds` apart.

    The kind is the labels' `anomaly_kind` where the frame has it (the most frequent of the
    run), else `unknown`; the source is `labels`.
    """
    labelled = frame.loc[frame[label_column].fillna(False).astype(bool)]
    if labelled.empty:
        return empty_events()
    kinds = (
        labelled["anomaly_kind"].fillna("unknown").astype(str)
        if "anomaly_kind" in labelled
        else pd.Series("unknown", index=labelled.index)
    )
    runs = pd.DataFrame(
        {
            "symbol": labelled["symbol"].astype(str).to_numpy(),
            "ts": labelled["trade_ts_ms"].astype("int64").to_numpy(),
            "kind": kinds.to_numpy(),
        }
    ).sort_values(["symbol", "ts"], kind="stable")
    new_symbol = runs["symbol"].ne(runs["symbol"].shift())
    far = runs["ts"].diff().gt(gap_seconds * 1000)
    runs["run"] = (new_symbol | far).cumsum()
    events = runs.groupby("run").agg(
        symbol=("symbol", "first"),
        start_ts_ms=("ts", "min"),
        end_ts_ms=("ts", "max"),
        kind=("kind", lambda k: k.value_counts().index[0]),
    )
    events["event_id"] = [
        f"labels-{symbol}-{start}"
        for symbol, start in zip(events["symbol"], events["start_ts_ms"], strict=True)
    ]
    return check_events(events.assign(source="labels"))


def event_ids_of(frame: pd.DataFrame, events: pd.DataFrame) -> np.ndarray:
    """Per row of `frame` (symbol, trade_ts_ms), the id of the event whose span holds it, or
    None. Where events of one symbol overlap, the one that started last wins."""
    out = np.full(len(frame), None, dtype=object)
    if frame.empty or events.empty:
        return out
    codes = _SymbolCodes(frame["symbol"], events["symbol"])
    row_keys = codes.keys(frame["symbol"], frame["trade_ts_ms"])
    order = np.lexsort((events["start_ts_ms"].to_numpy(), codes.of(events["symbol"])))
    starts = codes.keys(events["symbol"], events["start_ts_ms"])[order]
    ends = codes.keys(events["symbol"], events["end_ts_ms"])[order]
    ids = events["event_id"].to_numpy(dtype=object)[order]
    at = np.searchsorted(starts, row_keys, side="right") - 1
    latest = np.maximum.accumulate(ends)
    inside = (at >= 0) & (latest[np.maximum(at, 0)] >= row_keys)
    last_started = inside & (ends[np.maximum(at, 0)] >= row_keys)
    out[last_started] = ids[at[last_started]]
    for row in np.flatnonzero(inside & ~last_started):  # inside an earlier, longer event
        candidates = slice(0, at[row] + 1)
        holder = np.flatnonzero(
            (starts[candidates] <= row_keys[row]) & (ends[candidates] >= row_keys[row])
        )
        out[row] = ids[holder[-1]]
    return out


# --------------------------------------------------------------------------- alerts


class _SymbolCodes:
    """One integer code per symbol seen in any of the given columns."""

    def __init__(self, *columns: pd.Series | np.ndarray) -> None:
        values = np.unique(
            np.concatenate([np.asarray(c, dtype=object).astype(str) for c in columns])
        )
        self.symbols = values
        self._index = {symbol: code for code, symbol in enumerate(values)}

    def of(self, symbols: pd.Series | np.ndarray) -> np.ndarray:
        return np.fromiter(
            (self._index[str(s)] for s in np.asarray(symbols, dtype=object)), dtype="int64"
        )

    def keys(self, symbols: pd.Series | np.ndarray, ts_ms: pd.Series | np.ndarray) -> np.ndarray:
        return self.of(symbols) * _STRIDE + np.asarray(ts_ms, dtype="int64")


def alert_starts(keys: np.ndarray, gap_ms: int) -> np.ndarray:
    """Indices (into time-sorted flag keys) where an alert opens.

    An alert opens at a flag and holds every later flag within `gap_ms` of that first flag; the
    next flag opens the next alert. Each flag's successor opener is found at once by a sorted
    search; the openers reachable from the first flag are then collected by pointer doubling,
    so the cost is O(m log m) vectorised work rather than a Python loop over flags.
    """
    m = len(keys)
    if m == 0:
        return np.empty(0, dtype="int64")
    # next opener after an alert opened at i (symbols are _STRIDE apart, so a symbol's alert
    # never reaches into the next symbol)
    jump = np.searchsorted(keys, keys + gap_ms, side="right").astype("int64")
    jump = np.append(jump, m)  # index m, past the end, is a fixed point
    # Invariant: `openers` holds jump^j(0) for j < 2^k and `step` is jump^(2^k); once
    # jump^(2^k)(0) is past the end, `openers` holds the whole chain.
    openers = np.array([0], dtype="int64")
    step = jump
    while step[0] < m:
        openers = np.union1d(openers, step[openers])
        step = step[step]
    return openers[openers < m]


@dataclass(frozen=True)
class Alerts:
    """The alerts of one set of flags: one row each, time-ordered per symbol."""

    symbol: np.ndarray
    first_ts_ms: np.ndarray
    last_ts_ms: np.ndarray
    flags: np.ndarray
    max_score: np.ndarray
    true: np.ndarray  # holds a flag inside an event

    def __len__(self) -> int:
        return len(self.symbol)

    def frame(self) -> pd.DataFrame:
        """The alerts as a frame (symbol, first/last flag time, flags, highest score, true)."""
        return pd.DataFrame(
            {
                "symbol": self.symbol,
                "first_ts_ms": self.first_ts_ms,
                "last_ts_ms": self.last_ts_ms,
                "flags": self.flags,
                "max_score": self.max_score,
                "true": self.true,
            }
        )


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class KindMetrics:
    """Event-level figures of one anomaly kind."""

    events: int
    detected: int
    recall: float
    average_precision: float
    median_time_to_detect_s: float | None


@dataclass(frozen=True)
class EventMetrics:
    """A model's event-level figures on one window (see the module docstring)."""

    events: int
    detected: int
    recall: float | None
    average_precision: float | None
    recall_at_precision: float | None
    required_alert_precision: float
    alerts: int
    true_alerts: int
    false_alerts: int
    alert_precision: float
    false_alerts_per_day: float | None
    median_time_to_detect_s: float | None
    window_days: float
    by_kind: dict[str, KindMetrics] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EventCurve:
    """Detected events and false alerts at each threshold of the precision-recall sweep,
    with each event's and false alert's resampling block, for paired bootstrap intervals."""

    thresholds: np.ndarray  # descending
    detected: np.ndarray  # bool [events, thresholds]
    false_alerts: np.ndarray  # int [blocks, thresholds]
    event_block: np.ndarray  # int [events]

    def average_precision(
        self, event_weights: np.ndarray | None = None, block_weights: np.ndarray | None = None
    ) -> np.ndarray | float:
        """Event-level average precision; with weights [resamples, events] and
        [resamples, blocks] (a bootstrap draw), one value per resample."""
        recall, precision = self._curve(event_weights, block_weights)
        return _step_area(recall, precision)

    def recall_at_precision(
        self,
        required: float,
        event_weights: np.ndarray | None = None,
        block_weights: np.ndarray | None = None,
    ) -> np.ndarray | float:
        """The highest event recall at alert precision ≥ `required` (0 when none reaches it)."""
        recall, precision = self._curve(event_weights, block_weights)
        eligible = np.where(precision >= required - 1e-12, recall, 0.0)
        best = eligible.max(axis=-1) if eligible.shape[-1] else np.zeros(eligible.shape[:-1])
        return float(best) if np.ndim(best) == 0 else best

    def _curve(
        self, event_weights: np.ndarray | None, block_weights: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        detected = self.detected.astype("float64")
        false = self.false_alerts.astype("float64")
        if event_weights is None:
            found = detected.sum(axis=0)
            total = float(detected.shape[0])
            false_total = false.sum(axis=0)
        else:
            found = event_weights @ detected
            total = event_weights.sum(axis=1, keepdims=True)
            false_total = block_weights @ false
        with np.errstate(divide="ignore", invalid="ignore"):
            recall = np.where(total > 0, found / total, 0.0)
            precision = np.where(found + false_total > 0, found / (found + false_total), 0.0)
        return recall, precision


def _step_area(recall: np.ndarray, precision: np.ndarray) -> np.ndarray | float:
    """Σ (R_k − R_{k−1}) P_k along the last axis (R_0 = 0), recall made non-decreasing."""
    if recall.shape[-1] == 0:
        return 0.0 if recall.ndim == 1 else np.zeros(recall.shape[0])
    recall = np.maximum.accumulate(recall, axis=-1)
    steps = np.diff(recall, axis=-1, prepend=0.0)
    area = (steps * precision).sum(axis=-1)
    return float(area) if np.ndim(area) == 0 else area


class EventJudge:
    """Judges flags and scores of one window (symbol, trade_ts_ms per row) against events.

    Built once per window; `metrics(scores, threshold)` gives every event-level figure of one
    model, and `curve(scores)` the sweep that bootstrap intervals resample. Two judges built on
    the same window and events share events and blocks, so curves of two models pair.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        events: pd.DataFrame,
        *,
        gap_seconds: float = DEFAULT_ALERT_GAP_SECONDS,
        block_minutes: float = 60.0,
    ) -> None:
        if gap_seconds <= 0:
            raise EventError(f"alert gap {gap_seconds} s must be positive")
        if block_minutes <= 0:
            raise EventError(f"bootstrap block {block_minutes} min must be positive")
        events = check_events(events)
        self.gap_ms = int(round(gap_seconds * 1000))
        self.rows = len(frame)
        ts = frame["trade_ts_ms"].to_numpy(dtype="int64") if len(frame) else np.empty(0, "int64")
        self.window_start = int(ts.min()) if len(ts) else 0
        self.window_end = int(ts.max()) if len(ts) else 0
        self.window_days = (self.window_end - self.window_start) / DAY_MS
        present = set(frame["symbol"].astype(str)) if len(frame) else set()
        in_window = (
            events["symbol"].isin(present)
            & (events["start_ts_ms"] <= self.window_end)
            & (events["end_ts_ms"] >= self.window_start)
        )
        self.events = events.loc[in_window].reset_index(drop=True)
        codes = _SymbolCodes(frame["symbol"] if len(frame) else np.empty(0, dtype=object))
        self._codes = codes
        row_symbols = codes.of(frame["symbol"]) if len(frame) else np.empty(0, "int64")
        keys = row_symbols * _STRIDE + ts
        self._order = np.argsort(keys, kind="stable")
        self._keys = keys[self._order]
        self._ts = ts[self._order]
        self._symbol_code = row_symbols[self._order]
        # events by symbol and start, with the running latest end for "inside any event"
        ev_symbols = codes.of(self.events["symbol"]) if len(self.events) else np.empty(0, "int64")
        self._event_start_key = ev_symbols * _STRIDE + self.events["start_ts_ms"].to_numpy("int64")
        self._event_end_key = ev_symbols * _STRIDE + self.events["end_ts_ms"].to_numpy("int64")
        self._event_start = self.events["start_ts_ms"].to_numpy("int64")
        by_start = np.argsort(self._event_start_key, kind="stable")
        self._sorted_start_key = self._event_start_key[by_start]
        self._latest_end_key = (
            np.maximum.accumulate(self._event_end_key[by_start]) if len(by_start) else by_start
        )
        self.kinds = self.events["kind"].to_numpy(dtype=object)
        # resampling blocks, (symbol, block of the window): of an event's start, of an alert's
        # first flag, of a trade
        self.block_ms = int(round(block_minutes * 60_000))
        self.blocks_per_symbol = max(1, (self.window_end - self.window_start) // self.block_ms + 1)
        self.blocks = len(codes.symbols) * self.blocks_per_symbol
        self.event_block = self._block(ev_symbols, np.maximum(self._event_start, self.window_start))

    # -- building blocks

    def trade_blocks(self) -> np.ndarray:
        """The resampling block of each row of the window, in the frame's own order."""
        blocks = np.empty(self.rows, dtype="int64")
        blocks[self._order] = self._block(self._symbol_code, self._ts)
        return blocks

    def _block(self, symbol_codes: np.ndarray, ts: np.ndarray) -> np.ndarray:
        slot = np.clip((ts - self.window_start) // self.block_ms, 0, self.blocks_per_symbol - 1)
        return (symbol_codes * self.blocks_per_symbol + slot).astype("int64")

    def _sorted(self, values: np.ndarray | pd.Series) -> np.ndarray:
        values = np.asarray(values)
        if len(values) != self.rows:
            raise EventError(f"got {len(values)} values for a window of {self.rows} trades")
        return values[self._order]

    def _flag_state(self, flags_sorted: np.ndarray):
        """Flag positions, alert openers, and which flags fall inside an event."""
        where = np.flatnonzero(flags_sorted)
        keys = self._keys[where]
        starts = alert_starts(keys, self.gap_ms)
        at = np.searchsorted(self._sorted_start_key, keys, side="right") - 1
        inside = (at >= 0) & (
            self._latest_end_key[np.maximum(at, 0)] >= keys if len(self._latest_end_key) else False
        )
        return where, keys, starts, np.asarray(inside, dtype=bool)

    def _detection(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per event: detected, and the first flag time inside it (or -1)."""
        at = np.searchsorted(keys, self._event_start_key, side="left")
        valid = at < len(keys)
        first = np.where(valid, keys[np.minimum(at, max(len(keys) - 1, 0))] if len(keys) else 0, 0)
        detected = valid & (first <= self._event_end_key)
        return detected, np.where(detected, first % _STRIDE, -1)

    def alerts(self, scores: np.ndarray | pd.Series, flags: np.ndarray | pd.Series) -> Alerts:
        """The alerts that these flags raise, with their highest scores and truth."""
        flags_sorted = self._sorted(np.asarray(flags, dtype=bool))
        scores_sorted = self._sorted(np.asarray(scores, dtype="float64"))
        where, keys, starts, inside = self._flag_state(flags_sorted)
        if len(where) == 0:
            empty = np.empty(0)
            return Alerts(empty.astype(object), empty.astype("int64"), empty.astype("int64"),
                          empty.astype("int64"), empty, empty.astype(bool))
        ends = np.append(starts[1:], len(where)) - 1
        return Alerts(
            symbol=self._codes.symbols[self._symbol_code[where[starts]]].astype(object),
            first_ts_ms=self._ts[where[starts]],
            last_ts_ms=self._ts[where[ends]],
            flags=np.diff(np.append(starts, len(where))),
            max_score=np.maximum.reduceat(scores_sorted[where], starts),
            true=np.logical_or.reduceat(inside, starts),
        )

    def _at(self, flags_sorted: np.ndarray):
        """detected [events], first flag time [events], false-alert count per block, alerts."""
        where, keys, starts, inside = self._flag_state(flags_sorted)
        detected, first_flag = self._detection(keys)
        if len(starts):
            true = np.logical_or.reduceat(inside, starts)
            false_blocks = self._block(
                self._symbol_code[where[starts[~true]]], self._ts[where[starts[~true]]]
            )
        else:
            true = np.empty(0, dtype=bool)
            false_blocks = np.empty(0, dtype="int64")
        return detected, first_flag, np.bincount(false_blocks, minlength=self.blocks), true

    # -- the sweep and the figures

    def curve(self, scores: np.ndarray | pd.Series) -> EventCurve:
        """Detected events and false alerts per block as the threshold falls through each
        event's highest score (at most MAX_CURVE_THRESHOLDS quantiles of them)."""
        scores_sorted = self._sorted(np.asarray(scores, dtype="float64"))
        thresholds = self._thresholds(scores_sorted)
        detected = np.zeros((len(self.events), len(thresholds)), dtype=bool)
        false = np.zeros((self.blocks, len(thresholds)), dtype="int64")
        for k, threshold in enumerate(thresholds):
            found, _, false_per_block, _ = self._at(scores_sorted >= threshold)
            detected[:, k] = found
            false[:, k] = false_per_block
        return EventCurve(thresholds, detected, false, self.event_block)

    def _thresholds(self, scores_sorted: np.ndarray) -> np.ndarray:
        """Each event's highest score (its trades inside its span), descending."""
        if len(self.events) == 0 or len(scores_sorted) == 0:
            return np.empty(0)
        lo = np.searchsorted(self._keys, self._event_start_key, side="left")
        hi = np.searchsorted(self._keys, self._event_end_key, side="right")
        has = hi > lo
        if not has.any():
            return np.empty(0)
        # the highest score over each [lo, hi) slice: reduceat over the flattened slices
        bounds = np.stack([lo[has], hi[has]], axis=1).ravel()
        maxima = np.maximum.reduceat(np.append(scores_sorted, -np.inf), bounds)[::2]
        unique = np.unique(maxima)[::-1]
        if len(unique) > MAX_CURVE_THRESHOLDS:
            unique = np.unique(np.quantile(unique, np.linspace(0, 1, MAX_CURVE_THRESHOLDS)))[::-1]
        return unique

    def metrics(
        self,
        scores: np.ndarray | pd.Series,
        flags: np.ndarray | pd.Series,
        *,
        required_alert_precision: float = 0.6,
        curve: EventCurve | None = None,
    ) -> EventMetrics:
        """Every event-level figure of one model: threshold-free ones from the sweep of its
        `scores`, the rest from the `flags` it raised (scores at or above its threshold)."""
        flags_sorted = self._sorted(np.asarray(flags, dtype=bool))
        curve = curve if curve is not None else self.curve(scores)
        detected, first_flag, false_per_block, true = self._at(flags_sorted)
        events = len(self.events)
        found = int(detected.sum())
        false_alerts = int(false_per_block.sum())
        delays = (first_flag - self._event_start) / 1000.0
        by_kind: dict[str, KindMetrics] = {}
        recall_curve, precision_curve = curve._curve(None, None)
        for kind in sorted(set(self.kinds)):
            mine = self.kinds == kind
            kind_recall = (
                curve.detected[mine].mean(axis=0) if len(curve.thresholds) else np.empty(0)
            )
            by_kind[str(kind)] = KindMetrics(
                events=int(mine.sum()),
                detected=int(detected[mine].sum()),
                recall=float(detected[mine].mean()),
                average_precision=float(_step_area(kind_recall, precision_curve)),
                median_time_to_detect_s=_median(delays[mine & detected]),
            )
        return EventMetrics(
            events=events,
            detected=found,
            recall=found / events if events else None,
            average_precision=float(curve.average_precision()) if events else None,
            recall_at_precision=(
                float(curve.recall_at_precision(required_alert_precision)) if events else None
            ),
            required_alert_precision=float(required_alert_precision),
            alerts=len(true),
            true_alerts=int(true.sum()),
            false_alerts=false_alerts,
            # 0 without alerts, as trade precision without flags: no alert is no found event
            alert_precision=found / (found + false_alerts) if found + false_alerts else 0.0,
            false_alerts_per_day=false_alerts / self.window_days if self.window_days > 0 else None,
            median_time_to_detect_s=_median(delays[detected]),
            window_days=self.window_days,
            by_kind=by_kind,
        )


def _median(values: np.ndarray) -> float | None:
    return float(np.median(values)) if len(values) else None


def event_metrics(
    frame: pd.DataFrame,
    scores: Sequence[float] | np.ndarray,
    threshold: float,
    events: pd.DataFrame,
    *,
    gap_seconds: float = DEFAULT_ALERT_GAP_SECONDS,
    required_alert_precision: float = 0.6,
) -> EventMetrics:
    """The event-level figures of one model's scores on `frame` (symbol, trade_ts_ms)."""
    judge = EventJudge(frame, events, gap_seconds=gap_seconds)
    scores = np.asarray(scores, dtype="float64")
    return judge.metrics(
        scores, scores >= threshold, required_alert_precision=required_alert_precision
    )


def metrics_by_name(metrics: EventMetrics) -> Mapping[str, float]:
    """Flat figures under their metric names (the ones Evaluation.as_metrics logs)."""
    out: dict[str, float] = {}
    pairs = {
        "event_average_precision": metrics.average_precision,
        "event_recall_at_precision": metrics.recall_at_precision,
        "alert_precision": metrics.alert_precision,
        "alerts": metrics.alerts,
        "false_alerts": metrics.false_alerts,
        "false_alerts_per_day": metrics.false_alerts_per_day,
        "median_time_to_detect_s": metrics.median_time_to_detect_s,
    }
    for name, value in pairs.items():
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            out[name] = float(value)
    return out
