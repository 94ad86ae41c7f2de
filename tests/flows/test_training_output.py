"""What `tradewatch train` prints: the leaderboard, each model's event recall per kind, and the
gate's line."""

from __future__ import annotations

from dataclasses import replace

from rich.console import Console

from flows.demo import rules_beside_champion
from flows.training import TrainOutcome, print_gate_decision, print_leaderboard
from ml.datasets import LabelSummary
from ml.gate import GateDecision
from ml.metrics import Difference, Evaluation
from ml.tournament import Leaderboard, LeaderboardEntry, ModelFailure


def _evaluation(**events: tuple[float, int]) -> Evaluation:
    detected = sum(recall * count for recall, count in events.values())
    total = sum(count for _, count in events.values())
    return Evaluation(
        rows=1000,
        positives=40,
        threshold=0.4,
        pr_auc=0.8,
        roc_auc=0.95,
        precision=0.6,
        recall=0.7,
        f1=0.65,
        flagged=47,
        event_recall=detected / total if total else None,
        events=total,
        events_detected=round(detected),
        event_recall_by_kind={kind: recall for kind, (recall, _) in events.items()},
        events_by_kind={kind: count for kind, (_, count) in events.items()},
        trade_precision=0.62,
        event_average_precision=0.875,
        event_recall_at_precision=0.9,
        alert_precision=0.7,
        false_alerts_per_day=12.25,
        median_time_to_detect_s=3.5,
    )


def _leaderboard(*evaluations: Evaluation) -> Leaderboard:
    entries = tuple(
        LeaderboardEntry(rank, name, f"run-{rank}", f"models:/m-{rank}", 0.4, 1.0, evaluation)
        for rank, (name, evaluation) in enumerate(
            zip(("lightgbm", "xgboost"), evaluations, strict=False), 1
        )
    )
    failure = ModelFailure("random_forest", "fit", "ValueError", "bad leaf size", None)
    labels = LabelSummary(
        mix={"analyst": 0, "ground_truth": 1000, "rule": 0}, positives=40, rows=1000
    )
    return Leaderboard(entries, (failure,), "1", {}, labels)


def _printed(leaderboard: Leaderboard) -> str:
    console = Console(record=True, width=200)
    print_leaderboard(leaderboard, console)
    return console.export_text()


def _cells(line: str) -> list[str]:
    """The cells of one printed table row (empty for rules and titles)."""
    if "│" not in line and "┃" not in line:
        return []
    return [cell.strip() for cell in line.replace("┃", "│").split("│")[1:-1]]


def test_train_prints_event_recall_per_kind_for_every_ranked_model():
    leaderboard = _leaderboard(
        _evaluation(price_spike=(1.0, 4), volume_burst=(0.5, 2), wash_cluster=(1.0, 1)),
        _evaluation(price_spike=(0.75, 4), volume_burst=(0.0, 2)),
    )

    text = _printed(leaderboard)

    per_kind = text[text.index("Event recall by anomaly kind") :].splitlines()
    header = _cells(next(line for line in per_kind if "price_spike" in line))
    rows = {cells[0]: cells for cells in map(_cells, per_kind) if cells and cells[0] != "model"}
    # the simulator's order of kinds, then the totals
    assert header == [
        "model",
        "price_spike",
        "volume_burst",
        "wash_cluster",
        "all kinds",
        "trade precision",
        "threshold",
    ]
    assert rows["lightgbm"] == [
        "lightgbm",
        "1.00 (4)",
        "0.50 (2)",
        "1.00 (1)",
        "0.86 (7)",
        "0.62",
        "0.400",
    ]
    assert rows["xgboost"][1:5] == ["0.75 (4)", "0.00 (2)", "–", "0.50 (6)"]
    assert "random_forest" not in rows  # a failed model has no evaluation to show


def test_without_ground_truth_no_per_kind_table_is_printed():
    text = _printed(_leaderboard(_evaluation()))

    assert "Model tournament" in text
    assert "Event recall by anomaly kind" not in text


def test_the_tournament_table_shows_event_level_figures_first():
    text = _printed(_leaderboard(_evaluation(price_spike=(1.0, 4), volume_burst=(0.5, 2))))

    lines = text[: text.index("Event recall by anomaly kind")].splitlines()
    header = _cells(next(line for line in lines if "┃ rank" in line))
    row = _cells(next(line for line in lines if " lightgbm " in line))
    shown = dict(zip(header, row, strict=True))
    assert header[:7] == [
        "rank", "model", "event AP", "event recall", "alert precision", "false alerts/day",
        "median TTD s",
    ]
    assert (shown["event AP"], shown["event recall"], shown["false alerts/day"]) == (
        "0.875", "0.833", "12.2"
    )
    assert (shown["median TTD s"], shown["trade PR-AUC"]) == ("3.5", "0.800")
    assert "6 events; ranked by event_average_precision" in text


def _decision(promote: bool, low: float) -> GateDecision:
    comparison = Difference(
        metric="event_average_precision", champion=0.892, challenger=0.921, difference=0.029,
        low=low, high=0.063, confidence=0.9, resamples=1000, blocks=70, block_minutes=60.0,
    )
    champion = {"event_average_precision": 0.892, "event_recall": 0.956, "pr_auc": 0.923,
                "false_alerts_per_day": 606.1, "median_time_to_detect_s": 0.0}
    challenger = {"event_average_precision": 0.921, "event_recall": 0.915, "pr_auc": 0.760,
                  "false_alerts_per_day": 440.8, "median_time_to_detect_s": 0.0}
    return GateDecision(
        decision="promote" if promote else "reject",
        reason="the reason", reason_code="better" if promote else "not_better",
        challenger_version="2", champion_version="1", challenger_metrics=challenger,
        champion_metrics=champion, test_window_start=None, test_window_end=None, checks={},
        alert=None, audit_event_id="e1", events=386, comparison=comparison,
    )


def test_the_gate_line_prints_the_primary_metric_both_values_and_the_interval():
    console = Console(record=True, width=250)

    print_gate_decision(_decision(False, -0.006), "random_forest", console)

    text = console.export_text()
    gate_line = text.splitlines()[0]
    assert gate_line.startswith("gate: random_forest (version 2) rejected — ")
    assert (
        "event_average_precision: challenger 0.921 vs champion 0.892, difference +0.029 "
        "(90% interval -0.006 … +0.063, 386 events) → reject: the reason" in gate_line
    )
    # both sides' event-level and trade-level figures follow
    assert "champion v1: event AP 0.892, event recall 0.956, false alerts/day 606.1, " \
        "median TTD s 0.0, trade PR-AUC 0.923" in text
    assert "challenger: event AP 0.921" in text


def _with_rules(leaderboard: Leaderboard) -> Leaderboard:
    rules = LeaderboardEntry(
        0, "rules", "run-r", "", 0.2, 0.0,
        replace(_evaluation(price_spike=(0.5, 4)), trade_precision=0.25, event_recall=0.5),
        baseline=True,
    )
    return replace(leaderboard, baselines=(rules,))


def test_the_rules_baseline_is_printed_after_the_ranked_models_without_a_rank():
    text = _printed(_with_rules(_leaderboard(_evaluation(price_spike=(1.0, 4)))))

    tournament = text[: text.index("Event recall by anomaly kind")].splitlines()
    rows = [cells[:2] for cells in map(_cells, tournament)
            if cells and cells[0] not in ("rank", "")]  # ("": a wrapped line of a cell)
    assert rows == [["1", "lightgbm"], ["baseline", "rules"], ["–", "random_forest"]]
    per_kind = text[text.index("Event recall by anomaly kind") :].splitlines()
    rules = next(cells for cells in map(_cells, per_kind) if cells and cells[0] == "rules")
    assert rules[1:4] == ["0.50 (4)", "0.50 (4)", "0.25"]


def test_the_demo_summary_puts_the_rules_beside_the_champion():
    leaderboard = _with_rules(_leaderboard(_evaluation(price_spike=(1.0, 4))))
    decision = _decision(True, 0.004)
    decision = replace(decision, challenger_metrics={
        **decision.challenger_metrics, "trade_precision": 0.81,
    })
    outcome = TrainOutcome(leaderboard, "2", decision, None)

    assert rules_beside_champion(outcome) == (
        "rules (gold_rule_flags) on the same test window: event recall 0.500, trade precision "
        "0.250 — champion version 2: event recall 0.915, trade precision 0.810"
    )
    # kept out by the gate: the champion stays the one it was judged against
    kept = replace(outcome, decision=replace(decision, decision="reject"))
    assert "champion version 1: event recall 0.956, trade precision –" in (
        rules_beside_champion(kept) or ""
    )
    assert rules_beside_champion(replace(outcome, leaderboard=_leaderboard())) is None
