"""The rule deck as a tournament baseline: gold_rule_flags' verdicts scored like a model.

The rules themselves are defined once, in the dbt model gold_rule_flags (one boolean per rule,
`rules_fired`, `rule_score` = rules_fired / number of rules). Here they are read back for a
window's trades and turned into what `ml.metrics.evaluate` takes from a model: a score per
trade (`rule_score`, in [0, 1]) and a flag (at least one rule fired). The baseline is never a
challenger and never a label: it shows what the models add over rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pandas as pd

from core.warehouse import Warehouse, as_warehouse
from ml.events import EventJudge
from ml.metrics import Evaluation, evaluate

#: The dbt model holding the rule deck's verdicts.
RULE_FLAGS_TABLE = "gold_rule_flags"
#: The leaderboard's name of the rule deck.
RULES_MODEL_NAME = "rules"
#: The rules of the deck, in gold_rule_flags' order (each a boolean column rule_<name>).
RULE_NAMES: tuple[str, ...] = (
    "price_spike", "volume_burst", "wash_cluster", "pump_and_dump", "intensity_burst",
)
#: The score at which the deck flags a trade: one rule of five fired.
RULES_THRESHOLD = 1 / len(RULE_NAMES)

_COLUMNS = ("trade_id", "rules_fired", "rule_score", "first_rule")


class RuleFlagsMissing(ValueError):
    """gold_rule_flags is not built, or lacks trades of the window being judged."""


def load_rule_flags(
    source: Warehouse | Path | str, *, start_ms: int, end_ms: int
) -> pd.DataFrame:
    """trade_id, rules_fired, rule_score and first_rule of the trades with
    start_ms <= trade_ts_ms <= end_ms (both inclusive: a test window's first and last trade)."""
    with as_warehouse(source) as warehouse:
        columns = warehouse.table_columns(RULE_FLAGS_TABLE)
        if columns is None or any(c not in columns for c in _COLUMNS):
            raise RuleFlagsMissing(
                f"{RULE_FLAGS_TABLE} is not in the warehouse (or lacks its columns): run "
                "`tradewatch transform` to build the rule deck"
            )
        return warehouse.query(
            f"select {', '.join(_COLUMNS)} from {warehouse.table(RULE_FLAGS_TABLE)} "
            f"where trade_ts_ms >= {int(start_ms)} and trade_ts_ms <= {int(end_ms)}"
        )


def rules_predictor(flags: pd.DataFrame) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A predictor (frame → score, flag) that looks each trade's verdict up by trade_id."""
    by_trade = flags.drop_duplicates("trade_id").set_index("trade_id")
    scores = by_trade["rule_score"].astype("float64")
    fired = by_trade["rules_fired"].astype("int64")

    def predict(frame: pd.DataFrame) -> pd.DataFrame:
        ids = frame["trade_id"]
        score = scores.reindex(ids)
        if score.isna().any():
            missing = int(score.isna().sum())
            raise RuleFlagsMissing(
                f"{RULE_FLAGS_TABLE} has no verdict for {missing:,} of {len(frame):,} trades: "
                "rebuild the warehouse (`tradewatch transform`)"
            )
        return pd.DataFrame(
            {"score": score.to_numpy(), "flag": fired.reindex(ids).to_numpy() >= 1},
            index=frame.index,
        )

    return predict


def evaluate_rules(
    test: pd.DataFrame,
    flags: pd.DataFrame,
    *,
    judge: EventJudge,
    required_alert_precision: float = 0.6,
) -> Evaluation:
    """The rule deck judged on `test` with the same judge (events, alert gap) as the models.

    Every metric is the models' (ml.metrics.evaluate); the rules run in the warehouse, so no
    per-row scoring latency is reported.
    """
    evaluation = evaluate(
        rules_predictor(flags),
        test,
        threshold=RULES_THRESHOLD,
        judge=judge,
        required_alert_precision=required_alert_precision,
        latency_batch_sizes=(1,),
        latency_repeats=1,
    )
    return replace(evaluation, latency_p50_ms=None, latency_p99_ms=None)

