{#
    Trade classification shared by silver and gold. Plain SQL that every engine runs the same
    way; the unit tests on silver_trades_validated pin the boundaries.
#}

{#
    Session of a New York wall-clock timestamp on a symbol's calendar (core/markets.py holds the
    Python reference these rules are tested against):
      XNYS  pre_market 04:00-09:30, regular 09:30-16:00, after_hours 16:00-20:00 (start
            inclusive, end exclusive), closed otherwise, on Saturdays and Sundays and on the
            exchange's holidays; on a half day regular ends at regular_close_minute (13:00)
            and after_hours at after_hours_close_minute (17:00);
      24/7  regular at every instant (crypto);
      FX    regular from Sunday 17:00 to Friday 17:00, closed otherwise (forex).
    day_kind and the close minutes come from the market_calendar_days seed (null on an
    ordinary day); the arguments are SQL expressions.
#}
{% macro session_type(ny_ts, calendar="'XNYS'", day_kind="null", regular_close_minute="null", after_hours_close_minute="null") -%}
    {%- set minute = '(extract(hour from ' ~ ny_ts ~ ') * 60 + extract(minute from ' ~ ny_ts ~ '))' -%}
    {%- set weekday = iso_day_of_week(ny_ts) -%}
    case
        when {{ ny_ts }} is null then null
        when {{ calendar }} = '24/7' then 'regular'
        when {{ calendar }} = 'FX' then
            case
                when {{ weekday }} between 1 and 4 then 'regular'
                when {{ weekday }} = 7 and {{ minute }} >= 1020 then 'regular'
                when {{ weekday }} = 5 and {{ minute }} < 1020 then 'regular'
                else 'closed'
            end
        when {{ weekday }} >= 6 then 'closed'
        when coalesce({{ day_kind }}, '') = 'holiday' then 'closed'
        when {{ minute }} < 240 then 'closed'
        when {{ minute }} < 570 then 'pre_market'
        when {{ minute }} < coalesce({{ regular_close_minute }}, 960) then 'regular'
        when {{ minute }} < coalesce({{ after_hours_close_minute }}, 1200) then 'after_hours'
        else 'closed'
    end
{%- endmacro %}


{#
    Size class of a trade by its asset class (the asset_classes seed): the measure is the size
    (shares, currency units) or the notional (price x size, crypto); block from block_from,
    standard from standard_from, odd_lot below. Without a row: US equity thresholds.
#}
{% macro trade_type(volume, price="null", size_measure="'volume'", standard_from="100", block_from="10000") -%}
    {%- set measure = 'case when ' ~ size_measure ~ " = 'notional' then " ~ price ~ ' * ' ~ volume ~ ' else ' ~ volume ~ ' end' -%}
    case
        when {{ volume }} is null then null
        when {{ measure }} >= coalesce({{ block_from }}, 10000) then 'block'
        when {{ measure }} >= coalesce({{ standard_from }}, 100) then 'standard'
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
