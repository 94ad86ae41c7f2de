{#
    The order every trade feature is defined in: per symbol, by trade time then trade_id, so
    trades sharing a millisecond still have one fixed order on every engine.
#}
{% macro symbol_trade_order() -%}
    partition by symbol order by trade_ts_ms, trade_id
{%- endmacro %}


{#
    Identical prints (the symbol's trades at the same price and the same volume) from
    `window_ms` milliseconds before the current one's millisecond to the end of it, or from the
    first one when no window is given. A time-range frame includes a row's peers (same
    trade_ts_ms) on both sides, later ones too: gold_trade_features takes those out with a
    running count in trade_id order.
#}
{% macro identical_prints_since(window_ms=none) -%}
    partition by symbol, price, volume order by trade_ts_ms
    {%- if window_ms is not none %} range between {{ window_ms }} preceding and current row{% endif %}
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
