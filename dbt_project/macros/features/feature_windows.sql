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
{% macro same_millisecond_so_far() -%}
    partition by symbol, trade_ts_ms order by trade_id rows between unbounded preceding and current row
{%- endmacro %}


{# Trades of the symbol in the `window_ms` milliseconds before the current one's millisecond. #}
{% macro earlier_milliseconds(window_ms) -%}
    partition by symbol order by trade_ts_ms range between {{ window_ms }} preceding and 1 preceding
{%- endmacro %}
