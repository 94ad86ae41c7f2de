"""The `features` block of project_config.yml reaches dbt: a window set there changes what
gold_trade_features holds, and nothing else; likewise the `rules` block and gold_rule_flags."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.dbt.synthetic_trades import land_trades, make_trades
from tests.dbt.warehouse_data import REPO_ROOT, query, run_build

pytestmark = pytest.mark.slow

FEATURES = "+gold_rule_flags"  # the features and the rule deck that reads them
COLUMNS = "trade_id, volume_zscore, price_zscore, trade_intensity_1m, rsi_14, macd_line"
RULES = "rule_price_spike, rule_volume_burst, rule_wash_cluster"


def _rule_counts(home: Path) -> tuple:
    return query(home, "select " + ", ".join(
        f"count(*) filter (where {rule})" for rule in RULES.split(", ")
    ) + " from gold_rule_flags")[0]


def _build(home: Path, config: Path | None = None) -> dict[str, tuple]:
    land_trades(home, make_trades(), "synthetic")
    # "cautious": leave out the tests that also read models outside this lineage
    extra = {"DBT_INDIRECT_SELECTION": "cautious"}
    if config is not None:
        extra["TRADEWATCH_CONFIG"] = str(config)
    outcome = run_build(home, select=FEATURES, exclude="", extra_env=extra)
    assert outcome.ok, outcome.output[-3000:]
    rows = query(home, f"select {COLUMNS} from gold_trade_features order by trade_id")
    return {row[0]: row[1:] for row in rows}


def test_a_window_set_in_project_config_changes_the_built_features(tmp_path):
    config = yaml.safe_load((REPO_ROOT / "project_config.yml").read_text())
    config["features"] = {"zscore_window_trades": 5, "intensity_window_seconds": 10}
    # every trade outside its Bollinger band is a price spike now, on the usual volume rule
    config["rules"] = {"price_spike_band_margin": 0.0}
    changed_config = tmp_path / "project_config.yml"
    changed_config.write_text(yaml.safe_dump(config))

    default = _build(tmp_path / "default")
    changed = _build(tmp_path / "changed", changed_config)

    assert default.keys() == changed.keys() and len(default) > 100
    differs = {
        name: sum(default[key][index] != changed[key][index] for key in default) / len(default)
        for index, name in enumerate(COLUMNS.split(", ")[1:])
    }
    # The two windows set changed their features on most trades ...
    assert differs["volume_zscore"] > 0.5 and differs["price_zscore"] > 0.5
    assert differs["trade_intensity_1m"] > 0.1
    assert all(changed[key][2] <= default[key][2] for key in default)  # a shorter window
    # ... and the features of the windows left alone did not move.
    assert differs["rsi_14"] == differs["macd_line"] == 0

    # The rule threshold set changed what the deck flags, and only that rule's flags.
    default_rules, changed_rules = _rule_counts(tmp_path / "default"), _rule_counts(
        tmp_path / "changed"
    )
    assert changed_rules[0] > default_rules[0] + 5
    assert changed_rules[1:] == default_rules[1:]
