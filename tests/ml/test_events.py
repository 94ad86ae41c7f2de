"""Event-level metrics on small hand-built windows: every figure below is worked out by hand.

The window (seconds after 14:30 UTC on 4 March 2024), two symbols, four events:

    A  100        price_spike      one trade
    A  130–140    wash_cluster     three trades, 30 s after the spike
    A  1000–1300  pump_and_dump    four trades, the model sees it only at 1200 (caught late)
    B  500        volume_burst     one trade, never flagged above 0.02

and normal trades at A 0, A 3000, B 2000, B 2010, B 3600.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.events import (
    EventError,
    EventJudge,
    alert_starts,
    check_events,
    event_ids_of,
    event_metrics,
    events_from_answer_key,
    events_from_labels,
)

T0 = 1_709_562_600_000  # 2024-03-04 14:30:00 UTC in epoch ms

# (symbol, second, score, event)
TRADES = [
    ("A", 0, 0.01, None),
    ("A", 100, 0.9, "spike"),
    ("A", 130, 0.2, "wash"),
    ("A", 135, 0.7, "wash"),
    ("A", 140, 0.1, "wash"),
    ("A", 1000, 0.05, "pump"),
    ("A", 1200, 0.6, "pump"),
    ("A", 1270, 0.5, "pump"),
    ("A", 1300, 0.3, "pump"),
    ("B", 500, 0.02, "burst"),
    ("B", 2000, 0.8, None),
    ("B", 2010, 0.4, None),
    ("A", 3000, 0.65, None),
    ("B", 3600, 0.01, None),
]
KINDS = {"spike": "price_spike", "wash": "wash_cluster", "pump": "pump_and_dump",
         "burst": "volume_burst"}


def window() -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.DataFrame(
        {
            "trade_id": [f"t{i}" for i in range(len(TRADES))],
            "symbol": [t[0] for t in TRADES],
            "trade_ts_ms": [T0 + t[1] * 1000 for t in TRADES],
            "is_anomaly": [t[3] is not None for t in TRADES],
        }
    )
    return frame, np.array([t[2] for t in TRADES])


def answer_key() -> pd.DataFrame:
    frame, _ = window()
    rows = frame.assign(event_id=[t[3] for t in TRADES]).dropna(subset=["event_id"])
    return rows.assign(kind=rows["event_id"].map(KINDS))


EVENTS = events_from_answer_key(answer_key())


def test_answer_key_trades_become_events_spanning_their_first_to_last_trade():
    spans = EVENTS.set_index("event_id")
    assert list(spans.loc["wash", ["symbol", "start_ts_ms", "end_ts_ms", "kind", "source"]]) == [
        "A", T0 + 130_000, T0 + 140_000, "wash_cluster", "ground_truth"
    ]
    assert spans.loc["spike", "start_ts_ms"] == spans.loc["spike", "end_ts_ms"] == T0 + 100_000
    assert len(EVENTS) == 4


def test_flags_at_the_threshold_are_judged_as_an_analyst_sees_them():
    frame, scores = window()

    m = event_metrics(frame, scores, 0.5, EVENTS)

    # Flags at 0.5: A 100, 135 | A 1200 | A 1270 | A 3000 | B 2000  → five alerts.
    # The first alert spans two events (spike and wash, 35 s apart) and finds both; the pump is
    # found by the alert at 1200 and again at 1270 (a duplicate, counted once); A 3000 and
    # B 2000 are false alerts; the volume burst is missed.
    assert (m.events, m.detected, m.recall) == (4, 3, 0.75)
    assert (m.alerts, m.true_alerts, m.false_alerts) == (5, 3, 2)
    assert m.alert_precision == pytest.approx(3 / 5)  # 3 events / (3 events + 2 false alerts)
    # The window is one hour long: 2 false alerts in 1/24 of a day.
    assert m.window_days == pytest.approx(1 / 24)
    assert m.false_alerts_per_day == pytest.approx(48)
    # Seconds from each event's start to its first flag: spike 0, wash 5, pump 200 (caught late).
    assert m.median_time_to_detect_s == pytest.approx(5)
    assert m.by_kind["pump_and_dump"].median_time_to_detect_s == pytest.approx(200)
    assert m.by_kind["wash_cluster"].median_time_to_detect_s == pytest.approx(5)
    assert m.by_kind["volume_burst"].recall == 0
    assert m.by_kind["volume_burst"].median_time_to_detect_s is None


def test_event_average_precision_sweeps_the_events_highest_scores():
    frame, scores = window()

    m = event_metrics(frame, scores, 0.5, EVENTS, required_alert_precision=0.6)

    # Thresholds at each event's highest score, recall steps of 1/4 each:
    #   0.9  spike                                    precision 1/1
    #   0.7  + wash (same alert), false B 2000        precision 2/3
    #   0.6  + pump, false A 3000                     precision 3/5
    #   0.02 + burst; A 3000 and B 2000-2010 false    precision 4/6
    assert m.average_precision == pytest.approx(0.25 * (1 + 2 / 3 + 3 / 5 + 4 / 6))
    assert m.recall_at_precision == 1.0  # 4/6 ≥ 0.6 with every event found
    strict = event_metrics(frame, scores, 0.5, EVENTS, required_alert_precision=0.7)
    assert strict.recall_at_precision == 0.25
    # Per kind: that kind's recall steps, weighed by the overall alert precision.
    assert m.by_kind["price_spike"].average_precision == pytest.approx(1.0)
    assert m.by_kind["wash_cluster"].average_precision == pytest.approx(2 / 3)
    assert m.by_kind["pump_and_dump"].average_precision == pytest.approx(3 / 5)
    assert m.by_kind["volume_burst"].average_precision == pytest.approx(4 / 6)


def test_each_event_counts_once_however_many_of_its_trades_are_flagged():
    frame, scores = window()
    # Every trade of every event flagged, nothing else: four events, not ten trades.
    flags = frame["is_anomaly"].to_numpy()
    judge = EventJudge(frame, EVENTS)

    m = judge.metrics(np.where(flags, 0.9, 0.1), flags)

    assert (m.events, m.detected, m.false_alerts) == (4, 4, 0)
    # A 100–140 is one alert; the pump's four flags are three alerts (1000 | 1200 | 1270-1300)
    # on one event: duplicates, not false.
    assert (m.alerts, m.true_alerts) == (5, 5)
    assert m.alert_precision == 1.0
    assert m.average_precision == 1.0


def test_a_long_streak_of_false_flags_is_one_alert_per_gap():
    # One symbol flagged every second for ten minutes, one true event at 00:05.
    ts = T0 + np.arange(600) * 1000
    frame = pd.DataFrame({"symbol": "A", "trade_ts_ms": ts, "is_anomaly": ts == T0 + 300_000})
    events = events_from_labels(frame)
    judge = EventJudge(frame, events, gap_seconds=60)

    alerts = judge.alerts(np.ones(600), np.ones(600, dtype=bool))

    # Alerts open at 0, 61, 122, ... s: each holds its first flag and the next 60 s.
    assert list(alerts.first_ts_ms[:3] - T0) == [0, 61_000, 122_000]
    assert len(alerts) == 10 and alerts.flags.sum() == 600
    assert alerts.true.sum() == 1  # the one holding 00:05; the nine others are false
    m = judge.metrics(np.ones(600), np.ones(600, dtype=bool))
    assert (m.detected, m.false_alerts) == (1, 9)


def test_alert_openers_match_a_plain_loop():
    rng = np.random.default_rng(3)
    for _ in range(50):
        keys = np.sort(rng.integers(0, 5_000, rng.integers(1, 80)))
        expected, opened = [], None
        for i, key in enumerate(keys):
            if opened is None or key > opened + 60:
                expected.append(i)
                opened = key
        assert list(alert_starts(keys, 60)) == expected


def test_a_flag_next_to_an_event_but_outside_it_is_a_false_alert():
    frame, scores = window()
    flags = np.zeros(len(frame), dtype=bool)
    flags[frame.index[(frame["symbol"] == "B") & (frame["trade_ts_ms"] == T0 + 2_000_000)]] = True

    m = EventJudge(frame, EVENTS).metrics(scores, flags)

    assert (m.detected, m.false_alerts, m.alert_precision) == (0, 1, 0.0)
    assert m.median_time_to_detect_s is None


def test_labels_make_events_when_there_is_no_answer_key():
    frame, _ = window()

    events = events_from_labels(frame, gap_seconds=60)

    # Labelled runs per symbol, split where labelled trades are > 60 s apart: A 100–140 (spike
    # and wash are 30 s apart: one run), A 1000, A 1200, A 1270–1300, B 500.
    spans = sorted(
        zip(events["symbol"], events["start_ts_ms"] - T0, events["end_ts_ms"] - T0, strict=True)
    )
    assert spans == [
        ("A", 100_000, 140_000), ("A", 1_000_000, 1_000_000), ("A", 1_200_000, 1_200_000),
        ("A", 1_270_000, 1_300_000), ("B", 500_000, 500_000),
    ]
    assert set(events["source"]) == {"labels"} and set(events["kind"]) == {"unknown"}


def test_rows_get_the_id_of_the_event_that_holds_them():
    frame, _ = window()
    ids = event_ids_of(frame, EVENTS)
    assert list(ids) == [t[3] for t in TRADES]
    nested = pd.concat([
        EVENTS,
        pd.DataFrame([{"event_id": "long", "symbol": "A", "start_ts_ms": T0 + 900_000,
                       "end_ts_ms": T0 + 3_000_000, "kind": "pump_and_dump",
                       "source": "analyst"}]),
    ])
    ids = event_ids_of(frame, nested)
    # A 3000 lies only in the long analyst event, which started before the pump it holds.
    at_3000 = (frame["symbol"] == "A") & (frame["trade_ts_ms"] == T0 + 3_000_000)
    assert list(ids[at_3000.to_numpy()]) == ["long"]


def test_events_outside_the_window_or_on_absent_symbols_are_not_counted():
    frame, scores = window()
    extra = pd.DataFrame([
        {"event_id": "later", "symbol": "A", "start_ts_ms": T0 + 7_200_000,
         "end_ts_ms": T0 + 7_300_000, "kind": "price_spike", "source": "analyst"},
        {"event_id": "elsewhere", "symbol": "C", "start_ts_ms": T0 + 100_000,
         "end_ts_ms": T0 + 100_000, "kind": "price_spike", "source": "analyst"},
    ])
    judge = EventJudge(frame, pd.concat([EVENTS, extra]))
    assert sorted(judge.events["event_id"]) == ["burst", "pump", "spike", "wash"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e.drop(columns="source"), "lack column"),
        (lambda e: e.assign(source="rumour"), "unknown event source"),
        (lambda e: e.assign(end_ts_ms=e["start_ts_ms"] - 1), "ends before it starts"),
        (lambda e: pd.concat([e, e.iloc[:1]]), "event ids repeat"),
    ],
)
def test_bad_events_are_refused_with_the_reason(change, message):
    with pytest.raises(EventError, match=message):
        check_events(change(EVENTS))
