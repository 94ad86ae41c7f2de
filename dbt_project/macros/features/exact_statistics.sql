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
    Sum of an expression over a window frame of trades, exact (totals below 1e20; the values are
    rounded to 18 decimals first, the same way on every run): decimal addition is integer
    arithmetic, so the sum does not depend on how the engine splits the frame.
#}
{% macro exact_window_sum(expression, frame) -%}
    sum(cast({{ expression }} as decimal(38, 18))) over ({{ frame }})
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
    A log return (or its square) as an exact number for the running sums behind the time
    windows: a window's sum, the difference of two running sums, then does not depend on where
    the running sums started (a full refresh or an incremental batch's history), and
    exact_return_to_double turns such a sum back into a double. Running totals must stay below
    1e8 (Spark's decimal(38, 30); DuckDB's scaled integer allows 2e9).
#}
{% macro exact_return_decimal(expression) -%}
    {{ return(adapter.dispatch('exact_return_decimal', 'tradewatch')(expression)) }}
{%- endmacro %}

{% macro exact_return_to_double(expression) -%}
    {{ return(adapter.dispatch('exact_return_to_double', 'tradewatch')(expression)) }}
{%- endmacro %}

{# Spark (and Databricks) cast a double to a decimal exactly, rounding the binary value. #}
{% macro default__exact_return_decimal(expression) -%}
    cast({{ expression }} as {{ exact_return_sum_type() }})
{%- endmacro %}

{% macro default__exact_return_to_double(expression) -%}
    cast({{ expression }} as double)
{%- endmacro %}

{# The type of those numbers and their sums. #}
{% macro exact_return_sum_type() -%}
    {{ return(adapter.dispatch('exact_return_sum_type', 'tradewatch')()) }}
{%- endmacro %}

{% macro default__exact_return_sum_type() -%}
    {{ return('decimal(38, 30)') }}
{%- endmacro %}

{% macro duckdb__exact_return_sum_type() -%}
    {{ return('hugeint') }}
{%- endmacro %}

{#
    DuckDB's cast to a decimal scales the double by 10^30 in floating point first, which is off
    in the last bit, and printing the exact binary value to parse it costs more than all the
    window sums. Scaling by 2^96 instead is exact (a power of two only moves the exponent), and
    the cast to a 128-bit integer then keeps every bit of a value above 2^-44 (below that,
    96 fractional bits still resolve 1.3e-29, finer than Spark's 30 decimals); the sums are
    integer arithmetic like Spark's decimal sums, so both engines get the same volatility.
#}
{% macro duckdb__exact_return_decimal(expression) -%}
    cast(({{ expression }}) * {{ exact_return_scale() }} as hugeint)
{%- endmacro %}

{% macro duckdb__exact_return_to_double(expression) -%}
    cast({{ expression }} as double) / {{ exact_return_scale() }}
{%- endmacro %}

{# 2^96 as a double literal. #}
{% macro exact_return_scale() -%}
    cast(79228162514264337593543950336 as double)
{%- endmacro %}
