"""project_config.yml loads into strict settings; bad values fail with the field's name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flows.config import DEFAULT_CONFIG, ConfigError, load_settings


def _write(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(DEFAULT_CONFIG.read_text())
    mutate(data)
    path = tmp_path / "project_config.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_config_loads_with_ten_symbols_and_an_absolute_home(tmp_path):
    settings = load_settings(DEFAULT_CONFIG, environ={"TRADEWATCH_HOME": str(tmp_path)})
    assert len(settings.symbols) >= 10
    assert settings.paths.home == tmp_path
    assert settings.paths.warehouse == tmp_path / "warehouse.duckdb"
    assert settings.environment == "dev"


def test_relative_home_resolves_against_the_config_file(tmp_path):
    path = _write(tmp_path, lambda d: d["paths"].update(home="state"))
    assert load_settings(path, environ={}).paths.home == tmp_path / "state"


def test_environment_default_and_interpolation(tmp_path):
    path = _write(tmp_path, lambda d: d["finnhub"].update(url="${FEED_URL:-ws://fallback}"))
    assert load_settings(path, environ={}).finnhub.url == "ws://fallback"
    assert load_settings(path, environ={"FEED_URL": "ws://x"}).finnhub.url == "ws://x"


def test_missing_environment_variable_is_named(tmp_path):
    path = _write(tmp_path, lambda d: d["finnhub"].update(url="${NO_SUCH_VARIABLE}"))
    with pytest.raises(ConfigError, match="NO_SUCH_VARIABLE"):
        load_settings(path, environ={})


def test_prd_environment_overrides_the_dbt_target(tmp_path):
    settings = load_settings(DEFAULT_CONFIG, environ={"TRADEWATCH_ENV": "prd"})
    assert settings.dbt.target == "databricks"
    assert load_settings(DEFAULT_CONFIG, environ={}).dbt.target == "local"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["gate"].update(min_primary_metric=2), "gate.min_primary_metric"),
        (lambda d: d["gate"].update(primary_metric="f1"), "gate.primary_metric"),
        (lambda d: d["finnhub"].update(flush_trades=0), "finnhub.flush_trades"),
        (lambda d: d["drift"].update(psi_treshold=0.3), "drift.psi_treshold"),
        (lambda d: d.update(symbols=["AAPL", "../../etc"]), "symbols"),
        (lambda d: d["simulator"].update(start="2024-03-08T09:00:00"), "simulator.start"),
        (lambda d: d["dbt"].update(target="postgres"), "dbt.target"),
        (lambda d: d.update(rules={"pump_run_up_pcnt": 3}), "rules.pump_run_up_pcnt"),
        (lambda d: d.update(rules={"wash_cluster_identical_prints": 1}),
         "rules.wash_cluster_identical_prints"),
    ],
)
def test_bad_values_fail_with_the_field_name(tmp_path, mutate, field):
    path = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert field in str(caught.value)
    assert "\n" not in str(caught.value)


def test_settings_are_frozen():
    settings = load_settings(DEFAULT_CONFIG, environ={})
    with pytest.raises(ValueError):
        settings.gate.min_primary_metric = 0.9  # type: ignore[misc]


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yml", environ={})


def test_yaml_aliases_are_refused_before_they_expand(tmp_path):
    # "Billion laughs": nine levels of nine aliases would expand to 9**9 strings (hundreds of
    # millions) if the loader followed them; the settings loader refuses the first alias.
    levels = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 10):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        levels.append(f"a{level}: &a{level} [{refs}]")
    path = tmp_path / "project_config.yml"
    path.write_text(DEFAULT_CONFIG.read_text() + "\n" + "\n".join(levels) + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    message = str(caught.value)
    assert "YAML aliases (*a0) are not allowed" in message
    assert f"line {len(DEFAULT_CONFIG.read_text().splitlines()) + 3}" in message
    assert "\n" not in message


def test_an_anchor_without_aliases_still_loads(tmp_path):
    path = _write(tmp_path, lambda d: None)
    path.write_text(path.read_text().replace("drift:", "drift: &drift_settings", 1))
    assert load_settings(path, environ={}).drift.bins == 10


def test_the_rules_block_becomes_the_rule_decks_dbt_vars_over_their_defaults(tmp_path):
    from flows.config import DBT_PROJECT_FILE
    from flows.transform import dbt_vars

    project = yaml.safe_load(DBT_PROJECT_FILE.read_text())
    defaults = {k: v for k, v in project["vars"].items() if k.startswith("rule_")}
    shipped = load_settings(DEFAULT_CONFIG, environ={})
    assert {k: v for k, v in dbt_vars(shipped).items() if k.startswith("rule_")} == defaults

    path = _write(tmp_path, lambda d: d.update(rules={"pump_run_up_pct": 3.5}))
    passed = dbt_vars(load_settings(path, environ={}))
    assert passed["rule_pump_run_up_pct"] == 3.5
    assert passed["rule_wash_cluster_identical_prints"] == defaults[
        "rule_wash_cluster_identical_prints"
    ]
    # the feature windows are passed beside them, unchanged
    assert passed["zscore_window_trades"] == project["vars"]["zscore_window_trades"]
