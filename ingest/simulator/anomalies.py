"""Labelled anomalies injected into one symbol's trading day (docs/architecture.md, "The
simulated market", lists the kinds and their magnitudes):

- price_spike: one print 3–10 % off the mid, the next prints back at the market;
- volume_burst: one print of 20–100x the symbol's normal trade size at that time of day (so it
  overlaps the range of ordinary block trades: size alone does not give it away);
- pump_and_dump: the price drifts up 3–8 % over 2–5 min while trade rate and size rise up to
  5x, then reverses back to the market in 30–60 % of the drift time on heavy volume;
- wash_cluster: 5–10 extra prints at one price and one size within 2 s;
- intensity_burst: the symbol's trade rate rises to 10x for 10–30 s, prices and sizes normal.

Every kind contributes a fixed share of the anomalous trades (MIX) and events are placed until
their labelled trades reach `anomaly_rate` of the day's trades. Events of one symbol never
overlap and keep a quiet margin between them, so every labelled trade belongs to exactly one
event. Window kinds (pump_and_dump, intensity_burst) label every trade of the symbol inside
the window; a wash cluster labels its own prints; the single-print kinds label that print.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.schema import ANOMALY_KINDS
from ingest.simulator.market import (
    _SPREAD_FRACTION,
    MINUTE_SESSION,
    AnomalyEvent,
    Trades,
    condition_codes,
    normal_trade_size,
    sample_sizes,
)
from ingest.simulator.sessions import DAY_MS, MINUTES_PER_DAY, REGULAR

KINDS = ANOMALY_KINDS
# Share of the anomalous trades that each kind contributes.
MIX = {
    "pump_and_dump": 0.30,
    "intensity_burst": 0.25,
    "wash_cluster": 0.15,
    "price_spike": 0.15,
    "volume_burst": 0.15,
}
_PUMP_PEAK_MULTIPLE = 5.0  # trade rate at the top of a pump, relative to normal
_SYMBOL_STRIDE = 10**9  # ms: more than a day with margins, so symbols never clash


@dataclass
class Plan:
    """An event planned for one symbol and day, before the day's trades exist."""

    kind: str
    symbol: str
    start: int  # ms after 04:00; the single-print kinds ride on the first trade from here
    end: int  # exclusive, ms after 04:00
    expected_size: float  # trades it is expected to label
    extra: np.ndarray | None = None  # offsets of the trades it adds (wash: after its anchor)
    params: dict[str, Any] = field(default_factory=dict)


_SMALL_KINDS = (  # kind, quiet margin before and after (ms)
    ("wash_cluster", 10_000, 12_000),
    ("price_spike", 10_000, 10_000),
    ("volume_burst", 10_000, 10_000),
)
_SMALL_FIELDS = ("symbol", "kind", "start", "count", "deviation", "volume", "normal")


@dataclass
class SymbolPlan:
    """One symbol's events for a day: the few window events as Plans, the many small as arrays."""

    windows: list[Plan]
    kind: np.ndarray  # index into _SMALL_KINDS
    start: np.ndarray  # ms after 04:00
    count: np.ndarray  # trades (wash_cluster), else 1
    deviation: np.ndarray  # price_spike: relative distance from the mid
    volume: np.ndarray  # volume_burst: its size; wash_cluster: the size of each print
    normal: np.ndarray  # volume_burst: the normal trade size it is measured against

    @classmethod
    def empty(cls) -> SymbolPlan:
        none = np.empty(0, dtype=np.int64)
        return cls([], none, none, none, none.astype(float), none, none.astype(float))

    def plans(self, symbol: str, rng: np.random.Generator) -> list[Plan]:
        """Every event as a Plan, in time order (a wash cluster's timing is drawn here)."""
        plans = list(self.windows)
        for code, start, count, deviation, volume, normal in zip(
            self.kind.tolist(), self.start.tolist(), self.count.tolist(),
            self.deviation.tolist(), self.volume.tolist(), self.normal.tolist(), strict=True,
        ):
            kind = _SMALL_KINDS[code][0]
            if kind == "wash_cluster":
                extra = np.sort(rng.integers(0, 2_000, count))
                extra -= extra[0]  # after the anchor print, all within 2 s
                params = {"trades": count, "size": volume, "span_ms": int(extra[-1])}
                plans.append(Plan(kind, symbol, start, start + 2_000, float(count), extra, params))
            elif kind == "price_spike":
                plans.append(Plan(kind, symbol, start, start + 1, 1.0,
                                  params={"deviation": round(deviation, 5)}))
            else:
                params = {
                    "volume": volume,
                    "normal_size": round(normal, 1),
                    "size_multiple": round(volume / normal, 2),
                }
                plans.append(Plan(kind, symbol, start, start + 1, 1.0, params=params))
        plans.sort(key=lambda plan: plan.start)
        return plans


def _pump_shape(
    offsets: np.ndarray, start: int, drift_ms: float, reversal_ms: float
) -> tuple[np.ndarray, np.ndarray]:
    """Progress of the drift (0→1→0) and the trade-rate multiple (1→5, then 5→2)."""
    phase = (offsets - start) / drift_ms
    back = np.clip((offsets - start - drift_ms) / reversal_ms, 0.0, 1.0)
    pumping = phase < 1.0
    progress = np.where(pumping, np.clip(phase, 0.0, 1.0) ** 1.5, 1.0 - back)
    multiple = np.where(
        pumping,
        1.0 + (_PUMP_PEAK_MULTIPLE - 1.0) * np.clip(phase, 0.0, 1.0),
        _PUMP_PEAK_MULTIPLE - 3.0 * back,
    )
    return progress, multiple


def _plan_window(
    kind: str, rng: np.random.Generator, symbol: str, t0: int, rate: float,
    remaining: float, clear: Callable[[int, int], bool],
) -> tuple[Plan, int, int] | None:
    """A pump_and_dump or intensity_burst at t0, if it fits the day, the calendar of other
    events (`clear`) and what is left of its kind's budget; with the span it keeps clear."""
    if kind == "intensity_burst":
        window_ms = int(rng.uniform(10.0, 30.0) * 1000)
        expected = 10.0 * rate * window_ms / 1000
        lo, hi = t0 - 30_000, t0 + window_ms + 30_000
        if hi > DAY_MS or expected - remaining > remaining or not clear(lo, hi):
            return None
        extra = np.sort(t0 + rng.integers(0, window_ms, rng.poisson(9.0 * rate * window_ms / 1000)))
        params = {
            "window_seconds": window_ms / 1000,
            "rate_multiple": 10.0,
            "base_rate_per_second": round(rate, 4),
        }
        return Plan(kind, symbol, t0, t0 + window_ms, expected, extra, params), lo, hi
    drift_ms = rng.uniform(120.0, 300.0) * 1000
    reversal_ms = drift_ms * rng.uniform(0.3, 0.6)
    peak = rng.uniform(0.03, 0.08)
    end = t0 + int(drift_ms + reversal_ms)
    # Mean rate multiple: 3 while pumping (1→5), 3.5 while dumping (5→2).
    expected = rate * (3.0 * drift_ms + 3.5 * reversal_ms) / 1000
    lo, hi = t0 - 60_000, end + 60_000
    if hi > DAY_MS or expected - remaining > remaining or not clear(lo, hi):
        return None
    candidates = t0 + rng.integers(
        0, end - t0, rng.poisson((_PUMP_PEAK_MULTIPLE - 1.0) * rate * (end - t0) / 1000)
    )
    _, multiple = _pump_shape(candidates, t0, drift_ms, reversal_ms)
    keep = rng.random(len(candidates)) < (multiple - 1.0) / (_PUMP_PEAK_MULTIPLE - 1.0)
    params = {
        "peak_drift": round(peak, 5),
        "drift_seconds": round(drift_ms / 1000, 3),
        "reversal_seconds": round(reversal_ms / 1000, 3),
    }
    return Plan(kind, symbol, t0, end, expected, np.sort(candidates[keep]), params), lo, hi


def plan_day(
    rng: np.random.Generator,
    symbols: tuple[str, ...],
    rates: np.ndarray,
    scales: np.ndarray,
    anomaly_rate: float,
) -> dict[str, SymbolPlan]:
    """Plan one trading day's anomalies for every symbol.

    `rates[s, minute]` is symbol s's expected trades per second, `scales[s, minute]` its lot
    scale. Events go where trades are (symbol and minute drawn in proportion to the rate), and
    each kind is placed until its expected labelled trades reach its share of `anomaly_rate`
    of the day's expected trades — planned over the whole market rather than per symbol so
    that a few large events do not make the realised rate swing from day to day. An event
    that would overshoot its kind's budget by more than it fills is passed over.
    """
    windows: dict[str, list[Plan]] = {symbol: [] for symbol in symbols}
    expected_trades = float(rates.sum() * 60.0)
    if anomaly_rate <= 0 or expected_trades <= 0:
        return {symbol: SymbolPlan.empty() for symbol in symbols}
    cumulative = np.cumsum(rates.ravel())
    # Spans kept clear around placed events, as keys symbol * stride + ms: disjoint intervals.
    taken_lo: list[int] = []
    taken_hi: list[int] = []

    def draw(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cells = np.searchsorted(cumulative, rng.random(k) * cumulative[-1], "right")
        s, minute = np.divmod(np.minimum(cells, cumulative.size - 1), MINUTES_PER_DAY)
        return s, minute, minute * 60_000 + rng.integers(0, 60_000, k)

    def clash(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Which spans [lo, hi) overlap a taken one (the taken ones are disjoint)."""
        if not taken_lo:
            return np.zeros(len(lo), dtype=bool)
        order = np.argsort(taken_lo)
        starts, ends = np.asarray(taken_lo)[order], np.asarray(taken_hi)[order]
        before = np.searchsorted(starts, hi, "left") - 1  # the last span starting before hi
        return (before >= 0) & (ends[np.maximum(before, 0)] > lo)

    for kind in ("pump_and_dump", "intensity_burst"):
        target = MIX[kind] * anomaly_rate * expected_trades
        placed = 0.0
        for _ in range(20):
            if placed >= target:
                break
            s_draw, minute_draw, t0_draw = draw(64)
            for s, minute, t0 in zip(s_draw.tolist(), minute_draw.tolist(), t0_draw.tolist(),
                                     strict=True):
                if placed >= target:
                    break

                def clear(lo: int, hi: int, s: int = s) -> bool:
                    key = s * _SYMBOL_STRIDE
                    return not clash(np.array([key + lo]), np.array([key + hi]))[0]

                planned = _plan_window(kind, rng, symbols[s], t0, float(rates[s, minute]),
                                       target - placed, clear)
                if planned is not None:
                    plan, lo, hi = planned
                    taken_lo.append(s * _SYMBOL_STRIDE + lo)
                    taken_hi.append(s * _SYMBOL_STRIDE + hi)
                    placed += plan.expected_size
                    windows[symbols[s]].append(plan)

    # The single-print kinds and wash clusters are many and small: placed in bulk, kept as
    # arrays (a day holds thousands of them; plans of many days stay cached).
    small: dict[str, list[np.ndarray]] = {name: [] for name in _SMALL_FIELDS}
    for code, (kind, before, after) in enumerate(_SMALL_KINDS):
        target = MIX[kind] * anomaly_rate * expected_trades
        k = int(target * (0.6 if kind == "wash_cluster" else 3.0)) + 32
        s, minute, t0 = draw(k)
        deviation = np.zeros(k)
        volume = np.zeros(k, dtype=np.int64)
        normal = np.zeros(k)
        if kind == "wash_cluster":
            sizes = rng.integers(5, 11, k)
            shares = 100 * np.maximum(1, np.rint(rng.integers(1, 21, k) * scales[s, minute]))
            volume = shares.astype(np.int64)
        elif kind == "price_spike":
            sizes = np.ones(k, dtype=np.int64)
            deviation = rng.uniform(0.03, 0.10, k) * np.where(rng.random(k) < 0.5, 1.0, -1.0)
        else:
            sizes = np.ones(k, dtype=np.int64)
            normal = np.asarray(normal_trade_size(scales[s, minute]))
            lots = np.rint(rng.uniform(20.0, 100.0, k) * normal / 100.0)
            lots = np.minimum(np.maximum(lots, np.ceil(0.2 * normal)), np.floor(normal))
            volume = (lots * 100).astype(np.int64)
        lo = s * _SYMBOL_STRIDE + t0 - before
        hi = s * _SYMBOL_STRIDE + t0 + after
        free = ~clash(lo, hi)
        # Two candidates too close on one symbol: the later one gives way.
        order = np.lexsort((t0, s))
        crowded = np.zeros(k, dtype=bool)
        crowded[order[1:]] = (s[order][1:] == s[order][:-1]) & (
            np.diff(t0[order]) < before + after
        )
        usable = np.flatnonzero(free & ~crowded)
        filled = np.cumsum(sizes[usable])
        take = int(np.searchsorted(filled, target, "left"))
        if take < len(filled) and (take == 0 or filled[take] - target < target - filled[take - 1]):
            take += 1
        chosen = usable[:take]
        taken_lo.extend(lo[chosen].tolist())
        taken_hi.extend(hi[chosen].tolist())
        for name, values in (("symbol", s), ("kind", np.full(k, code)), ("start", t0),
                             ("count", sizes), ("deviation", deviation), ("volume", volume),
                             ("normal", normal)):
            small[name].append(values[chosen])
    columns = {name: np.concatenate(values) for name, values in small.items()}
    result: dict[str, SymbolPlan] = {}
    for i, symbol in enumerate(symbols):
        mine = columns["symbol"] == i
        result[symbol] = SymbolPlan(
            windows=sorted(windows[symbol], key=lambda plan: plan.start),
            **{name: columns[name][mine] for name in _SMALL_FIELDS if name != "symbol"},
        )
    return result


def _resolve(plans: list[Plan], offsets: np.ndarray) -> list[tuple[Plan, int]]:
    """Pin each planned event to the day's trades: (plan, anchor trade index or -1).

    A single-print event rides on the first trade at or after its planned time; it is dropped
    when there is none, or when that trade is already claimed by another event (thin markets).
    """
    n = len(offsets)
    claimed = np.zeros(n, dtype=bool)
    resolved: list[tuple[Plan, int]] = []
    for plan in plans:
        if plan.kind in ("pump_and_dump", "intensity_burst"):
            lo, hi = np.searchsorted(offsets, [plan.start, plan.end], "left")
            assert plan.extra is not None, "a window event always plans the trades it adds"
            if hi > lo or len(plan.extra):  # an empty window in a thin market is no event
                claimed[lo:hi] = True
                resolved.append((plan, -1))
    for plan in plans:
        if plan.kind in ("pump_and_dump", "intensity_burst"):
            continue
        anchor = int(np.searchsorted(offsets, plan.start, "left"))
        if anchor >= n or claimed[anchor]:
            continue
        if plan.kind == "wash_cluster":
            assert plan.extra is not None, "a wash cluster always plans its extra prints"
            last = int(offsets[anchor] + plan.extra[-1])
            if last >= DAY_MS or claimed[anchor : np.searchsorted(offsets, last, "right")].any():
                continue
        claimed[anchor] = True
        resolved.append((plan, anchor))
    resolved.sort(key=lambda item: item[0].start)
    return resolved


def inject_anomalies(
    rng: np.random.Generator,
    symbol_plan: SymbolPlan,
    *,
    symbol: str,
    day_open_ms: int,
    offsets: np.ndarray,
    log_mid: np.ndarray,
    side: np.ndarray,
    volume: np.ndarray,
    conditions: np.ndarray,
    scale: np.ndarray,
    event_prefix: str,
) -> Trades:
    """Add the planned anomalies to one symbol's normal trades and price every print."""
    n = len(offsets)
    events_plan = _resolve(symbol_plan.plans(symbol, rng), offsets)

    volume = volume.copy()
    normal_label = np.full(n, -1, dtype=np.int32)
    extra_offsets: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
    extra_labels: list[np.ndarray] = [np.empty(0, dtype=np.int32)]
    for j, (plan, anchor) in enumerate(events_plan):
        if plan.kind in ("price_spike", "volume_burst"):
            normal_label[anchor] = j
        if plan.kind == "volume_burst":
            volume[anchor] = plan.params["volume"]
        if plan.extra is not None:
            extra = plan.extra + (offsets[anchor] if plan.kind == "wash_cluster" else 0)
            extra_offsets.append(extra.astype(np.int64))
            extra_labels.append(np.full(len(extra), j, dtype=np.int32))
    extra_offset = np.concatenate(extra_offsets)
    extra_label = np.concatenate(extra_labels)
    m = len(extra_offset)
    extra_minute = extra_offset // 60_000
    extra_side = np.sign(rng.random(m) - 0.5).astype(np.int8)
    extra_side[rng.random(m) < 0.2] = 0
    extra_volume = sample_sizes(rng, scale[extra_minute])
    extra_conditions = condition_codes(rng, extra_minute, extra_volume)
    extra_log_mid = np.interp(extra_offset, offsets, log_mid) if n else np.zeros(m)

    all_offsets = np.concatenate([offsets, extra_offset])
    order = np.argsort(all_offsets, kind="stable")  # a tie keeps the normal trade first
    position = np.empty(n + m, dtype=np.int64)
    position[order] = np.arange(n + m)
    off = all_offsets[order]
    log_price = np.concatenate([log_mid, extra_log_mid])[order]
    sides = np.concatenate([side, extra_side])[order]
    vol = np.concatenate([volume, extra_volume])[order]
    cond = np.concatenate([conditions, extra_conditions])[order]
    label = np.concatenate([normal_label, extra_label])[order]

    for j, (plan, _) in enumerate(events_plan):
        if plan.kind not in ("pump_and_dump", "intensity_burst"):
            continue
        lo, hi = np.searchsorted(off, [plan.start, plan.end], "left")
        label[lo:hi] = j
        if plan.kind == "pump_and_dump":
            drift_ms = plan.params["drift_seconds"] * 1000
            reversal_ms = plan.params["reversal_seconds"] * 1000
            progress, multiple = _pump_shape(off[lo:hi], plan.start, drift_ms, reversal_ms)
            log_price[lo:hi] += math.log1p(plan.params["peak_drift"]) * progress
            vol[lo:hi] = np.maximum(1, np.rint(vol[lo:hi] * (1.0 + 0.35 * (multiple - 1.0))))

    mid = np.exp(log_price)
    spread_cents = np.maximum(1.0, np.rint(mid * 100 * _SPREAD_FRACTION[off // 60_000]))
    cents = np.maximum(1, np.rint(mid * 100 + sides * spread_cents / 2)).astype(np.int64)

    params: list[dict[str, Any]] = [dict(plan.params) for plan, _ in events_plan]
    for j, (plan, anchor) in enumerate(events_plan):
        if plan.kind == "price_spike":
            p = position[anchor]
            cents[p] = max(1, round(mid[p] * (1 + plan.params["deviation"]) * 100))
        elif plan.kind == "wash_cluster":
            wash = position[n + np.flatnonzero(extra_label == j)]
            cents[wash] = cents[position[anchor]]
            vol[wash] = plan.params["size"]
            params[j]["price"] = int(cents[position[anchor]]) / 100

    # Sizes changed above: the odd-lot flag of the conditions follows the final size.
    listed = cond > 0
    outside = (MINUTE_SESSION[off[listed] // 60_000] != REGULAR).astype(np.int8)
    cond[listed] = 1 + 2 * outside + (vol[listed] < 100).astype(np.int8)

    ts = day_open_ms + off
    events: list[AnomalyEvent] = []
    if events_plan:
        labelled = np.flatnonzero(label >= 0)
        labels = label[labelled]
        counts = np.bincount(labels, minlength=len(events_plan))
        present, first = np.unique(labels, return_index=True)
        _, last_reversed = np.unique(labels[::-1], return_index=True)
        last = len(labels) - 1 - last_reversed
        assert len(present) == len(events_plan)  # every event labels at least one trade
        for j, (plan, _) in enumerate(events_plan):
            events.append(
                AnomalyEvent(
                    event_id=f"{event_prefix}-{j:03d}",
                    kind=plan.kind,
                    symbol=symbol,
                    start_ts_ms=int(ts[labelled[first[j]]]),
                    end_ts_ms=int(ts[labelled[last[j]]]),
                    n_trades=int(counts[j]),
                    params=params[j],
                )
            )
    return Trades(
        symbols=(symbol,),
        symbol_index=np.zeros(n + m, dtype=np.int16),
        ts_ms=ts,
        cents=cents,
        volume=vol.astype(np.int64),
        conditions=cond.astype(np.int8),
        event=label,
        events=events,
    )
