{#
    Trade classification shared by silver and gold. Plain SQL that every engine runs the same
    way; the unit tests on silver_trades_validated pin the boundaries.
#}

{#
    US equity session of a New York wall-clock timestamp: pre_market 04:00-09:30,
    regular 09:30-16:00, after_hours 16:00-20:00 (start inclusive, end exclusive), closed
    otherwise and all day on Saturdays and Sundays. Exchange holidays are not modelled.
#}
{% macro session_type(ny_ts) -%}
    case
        when {{ ny_ts }} is null then null
        when {{ iso_day_of_week(ny_ts) }} >= 6 then 'closed'
        when extract(hour from {{ ny_ts }}) * 60 + extract(minute from {{ ny_ts }}) < 240 then 'closed'
        when extract(hour from {{ ny_ts }}) * 60 + extract(minute from {{ ny_ts }}) < 570 then 'pre_market'
        when extract(hour from {{ ny_ts }}) * 60 + extract(minute from {{ ny_ts }}) < 960 then 'regular'
        when extract(hour from {{ ny_ts }}) * 60 + extract(minute from {{ ny_ts }}) < 1200 then 'after_hours'
        else 'closed'
    end
{%- endmacro %}


{# Size class of a trade: block >= 10,000 shares, standard >= 100, odd_lot below 100. #}
{% macro trade_type(volume) -%}
    case
        when {{ volume }} is null then null
        when {{ volume }} >= 10000 then 'block'
        when {{ volume }} >= 100 then 'standard'
        else 'odd_lot'
    end
{%- endmacro %}


{# The timestamp before every row of the warehouse: the floor of an empty table's watermark. #}
{% macro before_all_data() -%}
    cast('1900-01-01 00:00:00' as {{ dbt.type_timestamp() }})
{%- endmacro %}


{#
    Incremental strategy that keeps the first copy of each key. Merge where the table format
    supports it (DuckDB, Delta on Databricks); open-source Spark without Delta cannot merge, and
    the models exclude keys already present, so appending gives the same table there.
#}
{% macro keyed_incremental_strategy() -%}
    {{ return(adapter.dispatch('keyed_incremental_strategy', 'tradewatch')()) }}
{%- endmacro %}

{% macro default__keyed_incremental_strategy() -%}
    {{ return('merge') }}
{%- endmacro %}

{% macro spark__keyed_incremental_strategy() -%}
    {{ return('append') }}
{%- endmacro %}

{# Databricks tables are Delta, which merges; without this it would inherit Spark's append. #}
{% macro databricks__keyed_incremental_strategy() -%}
    {{ return('merge') }}
{%- endmacro %}
