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


{# Sum of an expression over a frame, exact (values below 1e20), as a double. #}
{% macro exact_window_sum(expression, frame) -%}
    cast(sum(cast({{ expression }} as decimal(38, 18))) over ({{ frame }}) as double)
{%- endmacro %}


{# Mean of a column over a frame from its exact sum. #}
{% macro exact_window_mean(column, frame) -%}
    {{ exact_window_sum(column, frame) }} / count({{ column }}) over ({{ frame }})
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
