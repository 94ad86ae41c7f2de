"""Logical column types: the vocabulary DuckDB's and Databricks' catalog types both map onto."""

from __future__ import annotations

STRING, INTEGER, FLOAT, TIMESTAMP, DATE, BOOLEAN, LIST = (
    "string", "integer", "float", "timestamp", "date", "boolean", "list",
)
NUMBER = (INTEGER, FLOAT)

_INTEGER_TYPES = {
    "TINYINT", "SMALLINT", "INTEGER", "INT", "BIGINT", "HUGEINT", "LONG", "SHORT", "BYTE",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "INT2", "INT4", "INT8",
}
_FLOAT_TYPES = {"DOUBLE", "FLOAT", "REAL", "FLOAT4", "FLOAT8", "DOUBLE PRECISION"}
_STRING_TYPES = {"VARCHAR", "STRING", "TEXT", "CHAR", "BPCHAR"}


def logical_type(declared: str) -> str:
    """Map a DuckDB or Databricks column type onto a logical type (unknown ones lower-cased)."""
    text = declared.strip().upper()
    if text.endswith("[]") or text.startswith(("ARRAY", "LIST")):
        return LIST
    if text.startswith("TIMESTAMP") or text == "DATETIME":
        return TIMESTAMP
    if text == "DATE":
        return DATE
    if text in {"BOOLEAN", "BOOL"}:
        return BOOLEAN
    if text in _INTEGER_TYPES:
        return INTEGER
    if text in _FLOAT_TYPES:
        return FLOAT
    if text in _STRING_TYPES or text.startswith(("VARCHAR(", "CHAR(", "STRING(")):
        return STRING
    return text.lower()
