{#
    The order every trade feature is defined in: per symbol, by trade time then trade_id, so
    trades sharing a millisecond still have one fixed order on every engine.
#}
{% macro symbol_trade_order() -%}
    partition by symbol order by trade_ts_ms, trade_id
{%- endmacro %}


{#
    Trades of the same symbol in the same millisecond up to the current one. Time-range frames
    include a row's peers (same trade_ts_ms) on both sides; a time window is therefore built
    from the strictly earlier milliseconds (a range frame ending `1 preceding`) plus this
    frame, so that a trade never sees a later trade of its own millisecond.
#}
{% macro same_millisecond_so_far(partition='symbol') -%}
    partition by {{ partition }}, trade_ts_ms order by trade_id rows between unbounded preceding and current row
{%- endmacro %}


{#
    Trades of the symbol (or of a finer `partition`) in the `window_ms` milliseconds before the
    current one's millisecond.
#}
{% macro earlier_milliseconds(window_ms, partition='symbol') -%}
    partition by {{ partition }} order by trade_ts_ms range between {{ window_ms }} preceding and 1 preceding
{%- endmacro %}


{#
    Median of an expression over a window frame; for an even count the mean of the two middle
    values. DuckDB's median is an ordinary aggregate there; Spark (and Databricks) accept no
    frame on median() but do on percentile(), which interpolates the same way.
#}
{% macro window_median(expression, frame) -%}
    {{ return(adapter.dispatch('window_median', 'tradewatch')(expression, frame)) }}
{%- endmacro %}

{% macro default__window_median(expression, frame) -%}
    median({{ expression }}) over ({{ frame }})
{%- endmacro %}

{% macro spark__window_median(expression, frame) -%}
    percentile({{ expression }}, 0.5) over ({{ frame }})
{%- endmacro %}
