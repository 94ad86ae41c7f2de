"""The simulated market itself: determinism, sessions and DST, prices, sizes, anomalies, regimes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import cache

import numpy as np
import pytest

from ingest.simulator import SimulatorConfig
from ingest.simulator.anomalies import KINDS
from ingest.simulator.config import NEW_YORK
from ingest.simulator.market import CONDITIONS, Market, Trades
from ingest.simulator.sessions import session_at

FRIDAY = date(2024, 3, 8)  # EST (UTC-5)
MONDAY = date(2024, 3, 11)  # EDT (UTC-4), the day after the change


@cache
def market_day(day: date = FRIDAY, **fields: object) -> Trades:
    """One whole market day, cached: several tests look at the same day."""
    return Market(SimulatorConfig(**fields)).day(day)


def local(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, NEW_YORK)


def symbol_trades(trades: Trades, symbol: str) -> np.ndarray:
    return np.flatnonzero(trades.symbol_index == trades.symbols.index(symbol))


def test_same_seed_same_market_other_seed_other_market():
    first = Market(SimulatorConfig(seed=7)).day(FRIDAY)
    again = Market(SimulatorConfig(seed=7)).day(FRIDAY)
    other = Market(SimulatorConfig(seed=8)).day(FRIDAY)

    for column in ("ts_ms", "cents", "volume", "symbol_index", "conditions", "event"):
        assert np.array_equal(getattr(first, column), getattr(again, column)), column
    assert [e.record() for e in first.events] == [e.record() for e in again.events]
    assert len(other) != len(first) or not np.array_equal(other.cents, first.cents)
    assert {e.event_id for e in other.events}.isdisjoint(e.event_id for e in first.events)


def test_a_day_is_the_same_whichever_way_it_is_reached():
    # The Alpha Vantage API generates single symbol-days, the feed whole market days.
    market = Market(SimulatorConfig())
    alone = market.symbol_day("KO", FRIDAY)
    merged = market_day()
    ko = symbol_trades(merged, "KO")

    assert np.array_equal(alone.ts_ms, merged.ts_ms[ko])
    assert np.array_equal(alone.cents, merged.cents[ko])
    assert np.array_equal(alone.volume, merged.volume[ko])


def test_trades_only_in_new_york_sessions_across_the_dst_change():
    for day, utc_open_hour in ((FRIDAY, 9), (MONDAY, 8)):
        trades = market_day(day)
        first, last = local(int(trades.ts_ms[0])), local(int(trades.ts_ms[-1]))

        assert first.date() == last.date() == day
        assert (first.hour, last.hour) == (4, 19)  # 04:00 to 20:00 local
        assert datetime.fromtimestamp(trades.ts_ms[0] / 1000, UTC).hour == utc_open_hour
        assert np.all(np.diff(trades.ts_ms) >= 0)
        sessions = {session_at(int(t)) for t in trades.ts_ms[:: max(1, len(trades) // 2000)]}
        assert sessions == {"pre_market", "regular", "after_hours"}


def test_regular_session_is_busiest_and_u_shaped():
    trades = market_day()
    minutes = (trades.ts_ms - trades.ts_ms[0]) // 60_000  # the first trade is in 04:00
    per_minute = np.bincount(minutes, minlength=960)
    pre, regular, after = per_minute[:330], per_minute[330:720], per_minute[720:]
    opening, midday, closing = regular[:30].mean(), regular[165:225].mean(), regular[-30:].mean()

    assert regular.mean() > 4 * pre.mean() and regular.mean() > 4 * after.mean()
    assert opening > 2 * midday and closing > 2 * midday
    # Volume follows: the first and last half hours trade more shares than midday.
    volume = np.bincount(minutes, weights=trades.volume, minlength=960)[330:720]
    assert volume[:30].mean() > 2 * volume[165:225].mean()
    # About trades_per_second per symbol over the regular session.
    per_symbol_per_second = regular.sum() / 390 / 60 / len(trades.symbols)
    assert 1.6 < per_symbol_per_second < 2.6


def test_prices_sit_on_the_cent_tick_and_walk_without_jumps():
    trades = market_day()
    prices = trades.price

    assert np.array_equal(np.round(prices * 100), trades.cents)
    # What goes on the wire: at most two decimals.
    assert all(len(repr(float(p)).split(".")[1]) <= 2 for p in prices[:5000])
    aapl = symbol_trades(trades, "AAPL")
    normal = aapl[trades.event[aapl] < 0]
    moves = np.abs(np.diff(np.log(prices[normal])))
    assert np.median(moves) < 0.0005  # a cent or two on a $170 stock
    assert np.quantile(moves, 0.999) < 0.01  # no jumps outside the injected anomalies
    assert 140 < np.median(prices[normal]) < 200


def test_sizes_are_mostly_round_lots_with_odd_lots_and_rare_blocks():
    volume = market_day().volume

    assert volume.min() >= 1
    assert 0.2 < np.mean(volume < 100) < 0.4  # odd lots
    assert 0.25 < np.mean(volume == 100) < 0.6
    assert np.mean(volume % 100 == 0) > 0.55
    assert 0.002 < np.mean(volume >= 10_000) < 0.02  # blocks


def test_conditions_mark_extended_hours_and_odd_lots():
    trades = market_day()
    sample = np.arange(0, len(trades), 50)

    for i in sample:
        conditions = CONDITIONS[trades.conditions[i]]
        if conditions is None:
            continue
        outside = session_at(int(trades.ts_ms[i])) != "regular"
        assert ("12" in conditions) == outside
        assert ("37" in conditions) == (trades.volume[i] < 100)
    assert 0.03 < np.mean(trades.conditions == 0) < 0.15  # "c": null now and then


@pytest.mark.parametrize("rate", [0.01, 0.03])
def test_about_the_configured_share_of_trades_is_anomalous(rate):
    trades = market_day(anomaly_rate=rate)
    share = np.mean(trades.event >= 0)

    assert rate * 0.75 < share < rate * 1.3
    labelled = np.bincount(trades.event[trades.event >= 0], minlength=len(trades.events))
    assert labelled.tolist() == [e.n_trades for e in trades.events]


def test_no_anomalies_at_rate_zero():
    trades = market_day(anomaly_rate=0.0)
    assert trades.events == [] and np.all(trades.event == -1)


def _events(trades: Trades, kind: str) -> list[tuple[int, object]]:
    return [(j, e) for j, e in enumerate(trades.events) if e.kind == kind]


def test_every_kind_is_injected_with_the_magnitudes_of_the_design():
    trades = market_day(anomaly_rate=0.03)
    kinds = {e.kind for e in trades.events}
    assert kinds == set(KINDS)
    prices = trades.price

    for j, event in _events(trades, "price_spike"):
        (spike,) = np.flatnonzero(trades.event == j)
        same = symbol_trades(trades, event.symbol)
        k = int(np.searchsorted(same, spike))
        before, after = prices[same[max(0, k - 5) : k]], prices[same[k + 1 : k + 6]]
        if len(before) == 0 or len(after) == 0:
            continue
        market = np.median(np.concatenate([before, after]))
        assert 0.027 < abs(prices[spike] / market - 1) < 0.104
        assert abs(prices[same[k + 1]] / market - 1) < 0.01  # then back at the market

    for j, _ in _events(trades, "wash_cluster"):
        members = np.flatnonzero(trades.event == j)
        assert len(members) >= 5
        assert len(set(prices[members])) == 1 and len(set(trades.volume[members])) == 1
        assert trades.ts_ms[members[-1]] - trades.ts_ms[members[0]] <= 2_000

    for j, event in _events(trades, "intensity_burst"):
        members = np.flatnonzero(trades.event == j)
        window = (event.end_ts_ms - event.start_ts_ms) / 1000
        assert 8 <= window <= 30
        same = symbol_trades(trades, event.symbol)
        before = same[(trades.ts_ms[same] >= event.start_ts_ms - 600_000)
                      & (trades.ts_ms[same] < event.start_ts_ms - 60_000)]
        normal_rate = len(before) / 540
        assert 5 < len(members) / window / normal_rate < 20  # about 10x

    for j, event in _events(trades, "pump_and_dump"):
        members = np.flatnonzero(trades.event == j)
        path = prices[members]
        start_price = np.median(path[:5])
        assert 1.025 < path.max() / start_price < 1.10  # up 3–8 %
        assert abs(np.median(path[-5:]) / start_price - 1) < 0.015  # and back
        assert 120 * 1.2 <= (event.end_ts_ms - event.start_ts_ms) / 1000 <= 300 * 1.6
        # On rising volume: the second half of the drift trades more than the first.
        drift_end = event.start_ts_ms + event.params["drift_seconds"] * 1000
        times = trades.ts_ms[members]
        early = members[times < event.start_ts_ms + (drift_end - event.start_ts_ms) / 2]
        late = members[(times >= event.start_ts_ms + (drift_end - event.start_ts_ms) / 2)
                       & (times < drift_end)]
        assert trades.volume[late].sum() > 1.5 * trades.volume[early].sum()


def test_volume_bursts_are_big_for_their_symbol_but_not_apart_by_size_alone():
    trades = market_day(anomaly_rate=0.03)
    bursts = _events(trades, "volume_burst")
    normal = trades.event < 0
    smallest_burst = min(trades.volume[trades.event == j][0] for j, _ in bursts)

    for j, event in bursts[:200]:
        (burst,) = np.flatnonzero(trades.event == j)
        same = symbol_trades(trades, event.symbol)
        near = same[np.abs(trades.ts_ms[same] - trades.ts_ms[burst]) < 1_800_000]
        typical = trades.volume[near][normal[near] & (trades.volume[near] < 10_000)].mean()
        assert 20 * 0.6 < trades.volume[burst] / typical < 100 * 1.6
    # Ordinary block trades overlap the range of bursts: size alone does not give them away.
    assert np.sum(normal & (trades.volume > smallest_burst)) > 100


def test_ground_truth_events_describe_their_trades():
    trades = market_day()
    for j, event in enumerate(trades.events[:300]):
        members = np.flatnonzero(trades.event == j)
        assert event.n_trades == len(members)
        assert event.start_ts_ms == trades.ts_ms[members[0]]
        assert event.end_ts_ms == trades.ts_ms[members[-1]]
        assert {trades.symbols[i] for i in trades.symbol_index[members]} == {event.symbol}


def test_regime_switch_changes_volatility_volume_and_symbols():
    calm = market_day(anomaly_rate=0.0)
    wild = market_day(anomaly_rate=0.0, volatility_multiplier=3.0, volume_multiplier=2.0,
                      extra_symbols=("AMD", "BRK.B"))

    def volatility(trades: Trades) -> float:
        aapl = symbol_trades(trades, "AAPL")
        return float(np.std(np.diff(np.log(trades.price[aapl]))))

    assert volatility(wild) > 2 * volatility(calm)
    assert np.mean(wild.volume[wild.volume >= 100]) > 1.5 * np.mean(calm.volume[calm.volume >= 100])
    assert {"AMD", "BRK.B"} <= set(wild.symbols)
    assert len(symbol_trades(wild, "AMD")) > 1000
