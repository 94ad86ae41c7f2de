"""`tradewatch validate`: settings wired to the checkpoint, a per-layer table, a failing exit."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from core.warehouse import MissingWarehouseSetting
from flows.cli import main
from flows.config import load_settings
from flows.validate import UnsupportedValidationTarget, quality_policy, run_validate

pytestmark = pytest.mark.slow

NEGATIVE_PRICES = (
    "update silver_trades set price = -price where trade_id in "
    "(select trade_id from silver_trades order by trade_id limit 2)"
)


def _settings(home, symbols):
    settings = load_settings(environ={"TRADEWATCH_HOME": str(home)})
    # The simulated market served three of the configured symbols.
    return settings.model_copy(update={"symbols": symbols})


def test_validate_prints_one_row_per_layer_and_writes_results_and_docs(corrupted):
    copy = corrupted()
    output = io.StringIO()

    summary = run_validate(_settings(copy.home, copy.symbols), reference_time=copy.clock,
                           console=Console(file=output, width=200))

    assert not summary.critical_failures and not summary.warning_failures
    printed = output.getvalue()
    for layer in summary.layers:
        assert f"│ {layer.layer} " in printed
        assert f"│ {layer.evaluated:>9} │ {layer.passed:>6} │ {layer.failed:>6} │" in printed
    assert (copy.home / "monitoring" / "quality" / f"quality-{summary.run_id}.ndjson").exists()
    assert summary.data_docs_index == copy.home / "reports" / "data_docs" / "index.html"
    assert f"data docs: {summary.data_docs_index.as_uri()}" in printed


def test_validate_exits_non_zero_with_one_line_on_a_critical_failure(corrupted, monkeypatch,
                                                                      capsys):
    copy = corrupted(NEGATIVE_PRICES)
    monkeypatch.setenv("TRADEWATCH_HOME", str(copy.home))

    code = main(["validate"])

    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("tradewatch: DataQualityFailed: ")
    assert "silver.silver_trades.rows.price" in err
    assert err.count("\n") == 1


def test_quality_thresholds_come_from_the_settings(tmp_path):
    settings = load_settings(environ={"TRADEWATCH_HOME": str(tmp_path)})
    policy = quality_policy(settings)
    assert policy.symbols == settings.symbols
    assert policy.max_trade_age.total_seconds() == settings.quality.max_trade_age_minutes * 60


def test_targets_without_a_reader_are_refused(tmp_path, monkeypatch):
    settings = load_settings(environ={"TRADEWATCH_HOME": str(tmp_path)})
    with pytest.raises(UnsupportedValidationTarget, match="local .*, spark or databricks"):
        run_validate(settings, target="sqlite")
    for name in ("DATABRICKS_HOST", "DATABRICKS_HTTP_PATH", "DATABRICKS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(MissingWarehouseSetting, match="DATABRICKS_HOST"):
        run_validate(settings, target="databricks")
