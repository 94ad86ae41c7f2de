"""What `tradewatch train` prints: the leaderboard and each model's event recall per kind."""

from __future__ import annotations

from rich.console import Console

from flows.training import print_leaderboard
from ml.datasets import LabelSummary
from ml.metrics import Evaluation
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
