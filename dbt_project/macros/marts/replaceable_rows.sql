{#
    How the analysts' marts whose size grows with trades (gold_flagged_trades) are kept: a
    batch replaces rows by key and a pre-hook deletes the rows that no longer belong.

    DuckDB replaces with delete+insert, Databricks (Delta) with merge. Open-source Spark writes
    parquet, which can neither merge nor delete: there the marts are rebuilt as tables (the
    `spark` target proves the SQL, it does not run the platform).
#}
{% macro replaceable_materialization() -%}
    {{ return(adapter.dispatch('replaceable_materialization', 'tradewatch')()) }}
{%- endmacro %}

{% macro default__replaceable_materialization() -%}
    {{ return('incremental') }}
{%- endmacro %}

{% macro spark__replaceable_materialization() -%}
    {{ return('table') }}
{%- endmacro %}

{% macro databricks__replaceable_materialization() -%}
    {{ return('incremental') }}
{%- endmacro %}


{% macro replaceable_strategy() -%}
    {{ return(adapter.dispatch('replaceable_strategy', 'tradewatch')()) }}
{%- endmacro %}

{% macro default__replaceable_strategy() -%}
    {{ return('delete+insert') }}
{%- endmacro %}

{% macro databricks__replaceable_strategy() -%}
    {{ return('merge') }}
{%- endmacro %}
