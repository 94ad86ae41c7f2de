{#
    How the feature models write a batch. A batch recomputes every trade of a symbol from its
    earliest new trade on, which replaces rows already in the table when trades arrive late (or
    share the millisecond of an existing trade), so the strategy must replace rows by trade_id.
#}
{% macro features_incremental_strategy() -%}
    {{ return(adapter.dispatch('features_incremental_strategy', 'tradewatch')()) }}
{%- endmacro %}

{% macro default__features_incremental_strategy() -%}
    {{ return('delete+insert') }}
{%- endmacro %}

{#
    Open-source Spark writes parquet here, and dbt-spark merges only into Delta, Iceberg or Hudi
    tables, so it appends: exact while batches arrive in order, and refused by
    features_require_replaceable_rows when a batch would have to replace rows. With Delta on
    open-source Spark, set incremental_strategy: merge on the feature models.
#}
{% macro spark__features_incremental_strategy() -%}
    {{ return('append') }}
{%- endmacro %}

{# Databricks tables are Delta: merge on trade_id. #}
{% macro databricks__features_incremental_strategy() -%}
    {{ return('merge') }}
{%- endmacro %}


{#
    SQL counting the rows of `existing` that a batch from `silver` recomputes: per symbol,
    every kept trade at or after the earliest trade not yet in `existing`.
#}
{% macro features_rows_to_replace_sql(silver, existing) -%}
    with new_trades as (
        select silver.symbol, silver.trade_ts_ms
        from {{ silver }} as silver
        left join {{ existing }} as existing
            on silver.trade_id = existing.trade_id
        where existing.trade_id is null
    ),
    recompute_from as (
        select symbol, min(trade_ts_ms) as from_ts_ms
        from new_trades
        group by symbol
    )
    select count(*) as rows_to_replace
    from {{ existing }} as existing
    inner join recompute_from
        on existing.symbol = recompute_from.symbol
        and existing.trade_ts_ms >= recompute_from.from_ts_ms
{%- endmacro %}


{#
    With an append-only strategy, fails a run whose batch would replace existing rows (late or
    same-millisecond trades) instead of appending duplicates, and says what to do.
#}
{% macro features_require_replaceable_rows(silver) -%}
    {%- if execute and model.resource_type == 'model' and config.get('incremental_strategy') == 'append' -%}
        {%- set replaced = run_query(features_rows_to_replace_sql(silver, this)).columns[0].values()[0] -%}
        {%- if replaced > 0 -%}
            {{ exceptions.raise_compiler_error(
                "tradewatch: this batch recomputes " ~ replaced ~ " existing rows of " ~ this
                ~ " (trades arrived late or share a millisecond with kept trades), which needs an "
                ~ "incremental strategy that replaces rows by trade_id; run with --full-refresh, "
                ~ "or use a table format that merges (file_format: delta, incremental_strategy: merge)"
            ) }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
