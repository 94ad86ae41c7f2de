{#
    dbt's own safe_cast is a plain cast on DuckDB and Spark: one bad landed value would fail the
    whole build. These return null instead, so silver can quarantine the row with a reason.
    Databricks falls back to spark__safe_cast (try_cast exists there too, and with ANSI mode on
    a plain cast would raise).
#}
{% macro duckdb__safe_cast(field, type) -%}
    try_cast({{ field }} as {{ type }})
{%- endmacro %}

{% macro spark__safe_cast(field, type) -%}
    try_cast({{ field }} as {{ type }})
{%- endmacro %}
