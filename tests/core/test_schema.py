"""The gold feature schema is defined once: dbt's contract and the Python schema must agree."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.schema import (
    CATEGORY_LEVELS,
    FEATURE_COLUMNS,
    FEATURES_TABLE,
    GOLD_FEATURES_CONTRACT,
    GOLD_FEATURES_TYPES,
    ID_COLUMNS,
    LABEL_SOURCES,
    LABELS_TABLE,
    SESSION_TYPES,
    TRADE_TYPES,
    TRUSTED_LABEL_SOURCES,
    logical_type,
)

MODELS = Path(__file__).resolve().parents[2] / "dbt_project" / "models"


def model_columns(yml: Path, model: str) -> list[dict]:
    document = yaml.safe_load(yml.read_text())
    found = [m for m in document["models"] if m["name"] == model]
    assert len(found) == 1, f"{yml.name} declares {model} {len(found)} times"
    return found[0]["columns"]


def accepted_values(column: dict) -> list[str] | None:
    for test in column.get("data_tests", []):
        if isinstance(test, dict) and "accepted_values" in test:
            return [str(v) for v in test["accepted_values"]["arguments"]["values"]]
    return None


def test_the_gold_contract_declares_exactly_the_schema_columns_and_types():
    columns = model_columns(MODELS / "gold" / "_gold__features.yml", FEATURES_TABLE)

    declared = [(c["name"], c["data_type"]) for c in columns]

    assert declared == list(GOLD_FEATURES_CONTRACT.items())


def test_every_model_input_and_id_column_is_in_the_contract():
    assert set(ID_COLUMNS) <= set(GOLD_FEATURES_CONTRACT)
    assert set(FEATURE_COLUMNS) <= set(GOLD_FEATURES_CONTRACT)
    assert len(set(FEATURE_COLUMNS)) == len(FEATURE_COLUMNS)
    numeric = [c for c in FEATURE_COLUMNS if c not in CATEGORY_LEVELS]
    assert {GOLD_FEATURES_TYPES[c] for c in numeric} <= {"integer", "float"}
    assert {GOLD_FEATURES_TYPES[c] for c in CATEGORY_LEVELS} == {"string"}


def test_category_levels_and_label_sources_are_the_ones_dbt_accepts():
    gold = {c["name"]: c for c in model_columns(MODELS / "gold" / "_gold__features.yml",
                                                FEATURES_TABLE)}
    silver = {c["name"]: c for c in model_columns(MODELS / "silver" / "_silver__models.yml",
                                                  "silver_trades")}
    labels = {c["name"]: c for c in model_columns(MODELS / "gold" / "_gold__labels.yml",
                                                  LABELS_TABLE)}

    for columns in (gold, silver):
        assert accepted_values(columns["session_type"]) == list(SESSION_TYPES)
        assert accepted_values(columns["trade_type"]) == list(TRADE_TYPES)
    assert accepted_values(labels["label_source"]) == list(LABEL_SOURCES)
    assert TRUSTED_LABEL_SOURCES == ("analyst", "ground_truth")


@pytest.mark.parametrize(
    ("declared", "logical"),
    [
        ("VARCHAR", "string"), ("STRING", "string"), ("DOUBLE", "float"), ("FLOAT", "float"),
        ("BIGINT", "integer"), ("INT", "integer"), ("INTEGER", "integer"),
        ("TIMESTAMP", "timestamp"), ("TIMESTAMP WITH TIME ZONE", "timestamp"),
        ("TIMESTAMP_NTZ", "timestamp"), ("DATE", "date"), ("BOOLEAN", "boolean"),
        ("VARCHAR[]", "list"), ("ARRAY<STRING>", "list"), ("DECIMAL(18,3)", "decimal(18,3)"),
    ],
)
def test_duckdb_and_databricks_types_map_onto_the_same_logical_types(declared, logical):
    assert logical_type(declared) == logical
