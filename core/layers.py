"""Where each layer's tables live in the warehouse dbt builds: the one place that says so.

dbt builds gold and monitoring models in schemas of their own (`gold`, `monitoring`; see
dbt_project/macros/schemas/generate_schema_name.sql); bronze, silver, intermediate models and
seeds stay in the target's default schema (`main` on DuckDB, DATABRICKS_SCHEMA on Databricks).
A table's layer is its name's prefix before the first "_" (gold_trade_features → gold), so a
reader resolves any table from its name:

    schema_of("gold_trade_features")            # "gold"
    schema_of("silver_trades", default="main")  # "main"
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

#: Layer → schema for the layers that have a schema of their own (the public layers).
LAYER_SCHEMAS: Mapping[str, str] = MappingProxyType({"gold": "gold", "monitoring": "monitoring"})
#: The schema of every other layer on DuckDB (the dbt profile's `schema`).
DEFAULT_SCHEMA = "main"


def layer_of(table: str) -> str:
    """The layer a table belongs to: its name's prefix before the first "_"."""
    return table.split("_", 1)[0]


def schema_of(table: str, default: str = DEFAULT_SCHEMA) -> str:
    """The schema holding `table`: its layer's own schema, else `default`."""
    return LAYER_SCHEMAS.get(layer_of(table), default)


def search_path_schemas(default: str = DEFAULT_SCHEMA) -> tuple[str, ...]:
    """The schemas, in order, under which every warehouse table resolves by its bare name."""
    return tuple(dict.fromkeys([default, *LAYER_SCHEMAS.values()]))


def search_path(default: str = DEFAULT_SCHEMA) -> str:
    """`search_path_schemas` as the value of DuckDB's search_path setting."""
    return ",".join(search_path_schemas(default))
