"""The shared floor beneath the libraries: what ingest, ml, expectations and flows all need.

It imports none of them. The libraries may import it; they know nothing of each other, only
of the floor (tests/core/test_layering.py holds both rules).

- `core.schema`: the gold feature schema (ids, model inputs, category levels, labels) and the
  logical column types;
- `core.datahome`: the data home's layout, the files Python writes for dbt, the atomic write
  and the DataHome interface;
- `core.warehouse`: the read-only warehouse reader (DuckDB, Databricks, Spark) and its errors;
- `core.html`: the page helper of the HTML reports;
- `core.alerts`: the kinds of alert.
"""
