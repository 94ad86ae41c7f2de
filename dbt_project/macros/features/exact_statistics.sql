{#
    Exact statistics. A double window aggregate depends on how the engine splits the frame
    (DuckDB's segment tree splits by position in the partition), so an incremental batch, whose
    partitions start later, would round differently from a full refresh, and after a
    cancellation such as `price - mean` that shows up in the 11th digit. Decimal sums are
    integer arithmetic, the same in any order and on any engine; a fixed-order expression over
    lags is the same wherever the frame sits.
#}

{# Type of the running VWAP sums stored in gold and carried by incremental runs (< 1e26). #}
{% macro exact_sum_type() -%}
    decimal(38, 12)
{%- endmacro %}


{#
    Running sum of an expression per symbol in trade order, exact (totals below 1e20). A trailing
    window's sum is the difference of two running sums, which is exact too, whatever row the
    running sums start from (a full refresh or an incremental batch's history).
#}
{% macro exact_running_sum(expression) -%}
    coalesce(
        sum(cast({{ expression }} as decimal(38, 18))) over ({{ symbol_trade_order() }} rows between unbounded preceding and current row),
        cast(0 as decimal(38, 18))
    )
{%- endmacro %}


{# Sum over the trades `first_back` to `last_back` before the current one (0 = itself), as a double. #}
{% macro exact_trailing_sum(running_sum, first_back, last_back) -%}
    {%- set zero = 'cast(0 as decimal(38, 18))' -%}
    {%- set window_end = running_sum if last_back == 0 else 'lag(' ~ running_sum ~ ', ' ~ last_back ~ ', ' ~ zero ~ ') over (' ~ symbol_trade_order() ~ ')' -%}
    cast({{ window_end }} - lag({{ running_sum }}, {{ first_back + 1 }}, {{ zero }}) over ({{ symbol_trade_order() }}) as double)
{%- endmacro %}


{#
    Two-pass population variance of the last `trades` values of `column` (the current one
    included) around `mean`, summed in a fixed order (the current value first). Unlike a window
    aggregate, the result does not depend on where the frame sits in the partition, so an
    incremental batch reproduces a full refresh bit for bit. The lags are written inline rather
    than as named columns: Spark's constraint propagation explodes on a projection of many
    lag aliases combined this way.
#}
{% macro fixed_order_variance(column, trades, mean, count) -%}
    ({% for lag in range(trades) %}
        {%- set value = column if lag == 0 else 'lag(' ~ column ~ ', ' ~ lag ~ ') over (' ~ symbol_trade_order() ~ ')' -%}
        coalesce(({{ value }} - {{ mean }}) * ({{ value }} - {{ mean }}), 0){{ "\n        + " if not loop.last }}
    {%- endfor %}) / {{ count }}
{%- endmacro %}


{#
    A log return (or its square) as an exact decimal for the running sums behind the time
    windows: a window's sum, the difference of two running sums, then does not depend on where
    the running sums started (a full refresh or an incremental batch's history). 30 decimals
    keep a double's precision for returns down to 1e-14; running totals must stay below 1e8.
#}
{% macro exact_return_decimal(expression) -%}
    {{ return(adapter.dispatch('exact_return_decimal', 'tradewatch')(expression)) }}
{%- endmacro %}

{# Spark (and Databricks) cast a double to a decimal exactly, rounding the binary value. #}
{% macro default__exact_return_decimal(expression) -%}
    cast({{ expression }} as {{ exact_return_sum_type() }})
{%- endmacro %}

{#
    DuckDB's cast scales the double by 10^30 in floating point first, which is off in the last
    bit; printing the exact binary value and parsing that gives Spark's decimal, so both engines
    get the same sums and the same volatility.
#}
{% macro duckdb__exact_return_decimal(expression) -%}
    cast(printf('%.30f', {{ expression }}) as {{ exact_return_sum_type() }})
{%- endmacro %}

{% macro exact_return_sum_type() -%}
    decimal(38, 30)
{%- endmacro %}
