{{
    config(
        materialized='incremental',
        unique_key='trade_id',
        incremental_strategy=features_incremental_strategy(),
        on_schema_change='fail',
    )
}}

{#
    One row per trade with every model input, including three that separate the anomaly
    kinds the others cannot (volume_to_median_100, trade_rate_ratio_10s, same_print_count_2s), per
    symbol in (trade_ts_ms, trade_id) order; a trade's features depend only on the trades at or
    before it in that order.
    The formulas are documented once in _gold__features_docs.md and pinned by the unit tests
    in _gold__features.yml. RSI and MACD come from int_trade_recursive_features.

    Incremental runs recompute, per symbol, every trade from the earliest one not yet in this
    table (late trades included), reading back only the history the longest window needs: the
    last trades before that point (the z-score, Roll and volume-median windows) and the trades
    of the longest time window (volatility's hour), plus the VWAP sums carried on the symbol's
    last kept trade.
#}

{%- set zscore_window = feature_setting('zscore_window_trades') -%}
{%- set bollinger_window = feature_setting('bollinger_window_trades') -%}
{%- set roll_window = feature_setting('roll_window_trades') -%}
{%- set volatility_window_ms = feature_setting('volatility_window_seconds') * 1000 -%}
{%- set intensity_window_ms = feature_setting('intensity_window_seconds') * 1000 -%}
{%- set median_window = feature_setting('volume_median_window_trades') -%}
{%- set rate_window_seconds = feature_setting('rate_window_seconds') -%}
{%- set rate_baseline_seconds = feature_setting('rate_baseline_seconds') -%}
{%- set same_print_window_ms = feature_setting('same_print_window_seconds') * 1000 -%}
{#- The Roll window pairs each price change with the one before, so it reaches one trade
    further back. -#}
{%- set history_trades = [
    zscore_window, bollinger_window - 1, roll_window + 1, median_window
] | max -%}
{%- set history_ms = [
    volatility_window_ms, intensity_window_ms, rate_baseline_seconds * 1000, same_print_window_ms
] | max -%}
{%- set previous_trades = symbol_trade_order()
    ~ ' rows between ' ~ zscore_window ~ ' preceding and 1 preceding' -%}
{%- set median_trades = symbol_trade_order()
    ~ ' rows between ' ~ median_window ~ ' preceding and 1 preceding' -%}
{%- set band_trades = symbol_trade_order()
    ~ ' rows between ' ~ (bollinger_window - 1) ~ ' preceding and current row' -%}
{%- set roll_trades = symbol_trade_order()
    ~ ' rows between ' ~ (roll_window - 1) ~ ' preceding and current row' -%}
{%- set symbol_so_far = symbol_trade_order()
    ~ ' rows between unbounded preceding and current row' -%}
{#- Probes sort after the trades of their millisecond; trades of one millisecond by position,
    i.e. in trade order. -#}
{%- set events_so_far = 'partition by symbol order by event_ts_ms, probe_kind, position'
    ~ ' rows between unbounded preceding and current row' -%}
{#-
    How this stays fast (EXPLAIN ANALYZE showed sorts of wide rows dominating): every window
    runs over a narrow row (timestamps and text join back at the end); the trade-order windows
    share two sorts (one before the log returns exist, one after), each followed at once by
    the formulas it completes, so that only results are carried on; the time windows come from
    one more sort of the trades with a probe per window, where running totals (a count and
    exact sums) at a trade minus those at its probe give the window; identical prints take one
    sort of their own. Steps read by two later steps are kept few, as DuckDB copies them whole.
    Trailing sums over trade windows are exact (decimal) window sums: integer arithmetic, the
    same wherever the frame sits.
-#}

with silver_trades as (

    select
        trade_id,
        symbol,
        trade_ts_ms,
        price,
        volume,
        trade_date_ny
    from {{ ref('silver_trades') }}

),

recursive_features as (

    select
        trade_id,
        rsi_14,
        macd_line,
        macd_signal,
        macd_hist
    from {{ ref('int_trade_recursive_features') }}

),

{% if is_incremental() %}
{{- features_require_replaceable_rows(ref('silver_trades')) }}

recompute_from as (

    -- the earliest trade of each symbol that is not in the table yet (the tables are read
    -- directly, not through a CTE used twice, which DuckDB would copy whole)
    select
        silver.symbol,
        min(silver.trade_ts_ms) as from_ts_ms
    from {{ ref('silver_trades') }} as silver
    left join {{ this }} as existing
        on silver.trade_id = existing.trade_id
    where existing.trade_id is null
    group by silver.symbol

),

last_kept as (

    select
        existing.symbol,
        max(existing.symbol_trade_seq) as last_seq
    from {{ this }} as existing
    inner join recompute_from
        on existing.symbol = recompute_from.symbol
        and existing.trade_ts_ms < recompute_from.from_ts_ms
    group by existing.symbol

),

history as (

    -- the symbol's last kept trades (a suffix of its kept history, in trade order)
    select
        existing.trade_id,
        existing.symbol,
        existing.trade_ts_ms,
        existing.price,
        existing.volume,
        existing.trade_date_ny,
        true as is_history,
        existing.log_return as kept_log_return,
        cast(0 as bigint) as seq_before_run,
        -- the day's running VWAP sums continue from the last kept trade
        case
            when existing.symbol_trade_seq = last_kept.last_seq then existing.session_cum_notional
            else cast(0 as {{ exact_sum_type() }})
        end as notional_contribution,
        case
            when existing.symbol_trade_seq = last_kept.last_seq then existing.session_cum_volume
            else cast(0 as {{ exact_sum_type() }})
        end as volume_contribution
    from {{ this }} as existing
    inner join recompute_from
        on existing.symbol = recompute_from.symbol
    inner join last_kept
        on existing.symbol = last_kept.symbol
    where existing.trade_ts_ms < recompute_from.from_ts_ms
        and (
            existing.symbol_trade_seq > last_kept.last_seq - {{ history_trades }}
            or existing.trade_ts_ms >= recompute_from.from_ts_ms - {{ history_ms }}
        )

),

history_size as (

    select
        symbol,
        count(*) as history_trades
    from history
    group by symbol

),

recomputed as (

    select
        silver_trades.*,
        false as is_history,
        cast(null as double) as kept_log_return,
        -- the run's positions start at its history, which ends at the last kept trade
        cast(coalesce(last_kept.last_seq - history_size.history_trades, 0) as bigint) as seq_before_run,
        cast(silver_trades.price * silver_trades.volume as {{ exact_sum_type() }}) as notional_contribution,
        cast(silver_trades.volume as {{ exact_sum_type() }}) as volume_contribution
    from silver_trades
    inner join recompute_from
        on silver_trades.symbol = recompute_from.symbol
        and silver_trades.trade_ts_ms >= recompute_from.from_ts_ms
    left join last_kept
        on silver_trades.symbol = last_kept.symbol
    left join history_size
        on silver_trades.symbol = history_size.symbol

),

trades as (

    select * from history
    union all
    select * from recomputed

),

{% else %}

trades as (

    select
        silver_trades.*,
        false as is_history,
        cast(null as double) as kept_log_return,
        cast(0 as bigint) as seq_before_run,
        cast(price * volume as {{ exact_sum_type() }}) as notional_contribution,
        cast(volume as {{ exact_sum_type() }}) as volume_contribution
    from silver_trades

),

{% endif %}

trade_window_aggregates as (

    -- everything that needs only the prices and volumes, in one sort
    select
        trades.*,
        row_number() over ({{ symbol_trade_order() }}) as position,
        lag(price) over ({{ symbol_trade_order() }}) as previous_price,
        lag(price, 2) over ({{ symbol_trade_order() }}) as price_two_back,
        lead(price) over ({{ symbol_trade_order() }}) as next_price,

        count(volume) over ({{ previous_trades }}) as zscore_trades,
        {{ exact_window_sum('volume', previous_trades) }} as zscore_volume_sum,
        stddev_samp(volume) over ({{ previous_trades }}) as zscore_volume_stddev,
        min(volume) over ({{ previous_trades }}) as zscore_volume_min,
        max(volume) over ({{ previous_trades }}) as zscore_volume_max,
        {{ exact_window_sum('price', previous_trades) }} as zscore_price_sum,
        stddev_samp(price) over ({{ previous_trades }}) as zscore_price_stddev,
        min(price) over ({{ previous_trades }}) as zscore_price_min,
        max(price) over ({{ previous_trades }}) as zscore_price_max,
        {{ window_median('volume', median_trades) }} as volume_median,

        count(price) over ({{ band_trades }}) as band_trades,
        {{ exact_window_sum('price', band_trades) }} as band_price_sum,
        min(price) over ({{ band_trades }}) as band_min,
        max(price) over ({{ band_trades }}) as band_max,

        -- first trade of a New York day in this run (where the day's VWAP sums restart)
        case
            when lag(trade_date_ny) over ({{ symbol_trade_order() }}) = trade_date_ny then false
            else true
        end as starts_session,
        sum(notional_contribution) over ({{ symbol_so_far }}) as running_notional,
        sum(volume_contribution) over ({{ symbol_so_far }}) as running_session_volume
    from trades

),

trade_windows as (

    -- the features these windows complete, right after the sort: only results are kept
    select
        trade_id,
        symbol,
        trade_ts_ms,
        price,
        volume,
        trade_date_ny,
        is_history,
        kept_log_return,
        seq_before_run,
        notional_contribution,
        volume_contribution,
        position,
        previous_price,
        price_two_back,
        next_price,
        starts_session,
        running_notional,
        running_session_volume,
        case
            when zscore_trades < 2 or zscore_volume_min = zscore_volume_max then cast(0 as double)
            else (volume - cast(zscore_volume_sum as double) / zscore_trades) / zscore_volume_stddev
        end as volume_zscore,
        case
            when zscore_trades < 2 or zscore_price_min = zscore_price_max then cast(0 as double)
            else (price - cast(zscore_price_sum as double) / zscore_trades) / zscore_price_stddev
        end as price_zscore,
        case
            when volume_median is null or volume_median = 0 then cast(1 as double)
            else volume / volume_median
        end as volume_to_median_100,
        band_trades,
        cast(band_price_sum as double) / band_trades as band_mean,
        band_min = band_max as band_is_flat
    from trade_window_aggregates

),

with_returns as (

    select
        trade_windows.*,
        case
            when previous_price is null then cast(0 as double)
            else (price - previous_price) / previous_price * 100
        end as price_change_pct,
        case
            when is_history then kept_log_return
            when previous_price is null then cast(0 as double)
            else ln(price / previous_price)
        end as log_return,
        price - previous_price as price_change,
        previous_price - price_two_back as previous_price_change
    from trade_windows

),

return_window_aggregates as (

    -- what needs the log returns and price changes, in a second sort
    select
        with_returns.*,
        -- population stddev of the band, two-pass around the exact mean in a fixed order
        sqrt({{ fixed_order_variance('price', bollinger_window, 'band_mean', 'band_trades') }})
            as band_stddev,

        -- Roll co-moments from exact sums, so that they do not depend on the partition layout
        count(price_change * previous_price_change) over ({{ roll_trades }}) as roll_pairs,
        cast({{ exact_window_sum('price_change * previous_price_change', roll_trades) }} as double)
            as roll_sum_xy,
        cast({{ exact_window_sum(
            'case when previous_price_change is not null then price_change end', roll_trades
        ) }} as double)
            as roll_sum_x,
        cast({{ exact_window_sum('previous_price_change', roll_trades) }} as double) as roll_sum_y,

        -- the day's sums = running sums minus their value before the day's first trade; the
        -- contributions are never negative, so the latest day start has the largest value
        -- (the history's contributions are 0 but for the last kept trade, which carries the
        -- day's sums so far; cast back: Spark narrows the scale of a difference of two
        -- decimal(38, s))
        cast(
            running_notional - max(
                case when starts_session then running_notional - notional_contribution end
            ) over ({{ symbol_so_far }})
            as {{ exact_sum_type() }}
        ) as session_cum_notional,
        cast(
            running_session_volume - max(
                case when starts_session then running_session_volume - volume_contribution end
            ) over ({{ symbol_so_far }})
            as {{ exact_sum_type() }}
        ) as session_cum_volume
    from with_returns

),

return_windows as (

    select
        trade_id,
        symbol,
        trade_ts_ms,
        price,
        volume,
        trade_date_ny,
        is_history,
        seq_before_run,
        position,
        price_change_pct,
        log_return,
        volume_zscore,
        price_zscore,
        volume_to_median_100,
        case
            when band_is_flat then cast(0.5 as double)
            else (price - (band_mean - 2 * band_stddev))
                / ((band_mean + 2 * band_stddev) - (band_mean - 2 * band_stddev))
        end as bollinger_pct_b,
        roll_pairs,
        case
            when roll_pairs >= 2
                then (roll_sum_xy - roll_sum_x * roll_sum_y / roll_pairs) / (roll_pairs - 1)
        end as roll_covariance,
        session_cum_notional,
        session_cum_volume
    from return_window_aggregates

),

window_start_events as (

    -- every trade with its log return, plus a probe per trade being computed and time window,
    -- each sorting right after the last trade before that window: 1 h, 60 s, 10 s and 10 min
    -- + 1 ms before the trade's millisecond
    select
        symbol,
        trade_ts_ms as event_ts_ms,
        0 as probe_kind,
        position,
        {{ exact_return_decimal('log_return') }} as exact_log_return,
        {{ exact_return_decimal('log_return * log_return') }} as exact_log_return_squared,
        -- 1 where the next trade's log return (computed as that trade computes it) differs: a
        -- window with none of these is constant
        case when ln(next_price / price) = log_return then 0 else 1 end as return_changes_next
    from with_returns
    {%- for window_ms in [
        volatility_window_ms, intensity_window_ms, rate_window_seconds * 1000,
        rate_baseline_seconds * 1000,
    ] %}
    union all
    select
        symbol,
        trade_ts_ms - {{ window_ms }} - 1 as event_ts_ms,
        {{ loop.index }} as probe_kind,
        position,
        cast(null as {{ exact_return_sum_type() }}) as exact_log_return,
        cast(null as {{ exact_return_sum_type() }}) as exact_log_return_squared,
        0 as return_changes_next
    from with_returns
    where not is_history
    {%- endfor %}

),

window_start_totals as (

    -- running totals over the trades (probes add nothing): the count and exact sums of the
    -- symbol's trades up to each event
    select
        symbol,
        position,
        probe_kind,
        return_changes_next,
        count(exact_log_return) over ({{ events_so_far }}) as trades_so_far,
        sum(exact_log_return) over ({{ events_so_far }}) as log_return_so_far,
        sum(exact_log_return_squared) over ({{ events_so_far }}) as log_return_squared_so_far,
        sum(return_changes_next) over ({{ events_so_far }}) as return_changes_so_far
    from window_start_events

),

time_windows_by_trade as (

    -- a trade's window = its running totals minus those at its probe (the run's history
    -- covers the longest window)
    select
        symbol,
        position,
        sum(case probe_kind when 0 then trades_so_far when 1 then -trades_so_far end)
            as hour_trades,
        {{ exact_return_to_double(
            'sum(case probe_kind when 0 then log_return_so_far when 1 then -log_return_so_far end)'
        ) }} as hour_log_return_sum,
        {{ exact_return_to_double(
            'sum(case probe_kind when 0 then log_return_squared_so_far when 1 then -log_return_squared_so_far end)'
        ) }} as hour_log_return_squared_sum,
        -- changes between consecutive returns inside the window (the current trade's own
        -- change-to-next looks outside it)
        sum(case probe_kind
            when 0 then return_changes_so_far - return_changes_next
            when 1 then -return_changes_so_far
        end) as hour_return_changes,
        sum(case probe_kind when 0 then trades_so_far when 2 then -trades_so_far end)
            as minute_trades,
        sum(case probe_kind when 0 then trades_so_far when 3 then -trades_so_far end)
            as rate_window_trades,
        sum(case probe_kind when 0 then trades_so_far when 4 then -trades_so_far end)
            as rate_baseline_trades
    from window_start_totals
    group by symbol, position
    -- history trades have no probes
    having count(*) > 1

),

same_prints as (

    -- the symbol's trades at the same price and size in the trailing window up to this one,
    -- from one sort: those from the window start to the end of this millisecond (a range frame
    -- holds all of the millisecond), less the millisecond's trades after this one (the count
    -- from the first identical print to the end of this millisecond, less the number of this
    -- one in (trade_ts_ms, trade_id) order)
    select
        symbol,
        position,
        (
            count(*) over ({{ identical_prints_since(same_print_window_ms) }})
            - count(*) over ({{ identical_prints_since() }})
            + row_number() over (partition by symbol, price, volume order by trade_ts_ms, trade_id)
        ) as same_print_trades
    from trade_windows

),

time_windows as (

    select
        return_windows.*,
        time_windows_by_trade.hour_trades,
        time_windows_by_trade.hour_log_return_sum,
        time_windows_by_trade.hour_log_return_squared_sum,
        time_windows_by_trade.hour_return_changes,
        time_windows_by_trade.minute_trades,
        time_windows_by_trade.rate_window_trades,
        time_windows_by_trade.rate_baseline_trades,
        same_prints.same_print_trades
    from return_windows
    inner join time_windows_by_trade
        on return_windows.symbol = time_windows_by_trade.symbol
        and return_windows.position = time_windows_by_trade.position
    inner join same_prints
        on return_windows.symbol = same_prints.symbol
        and return_windows.position = same_prints.position

),

volatility_moments as (

    -- the trailing hour's sum of squared deviations from its exact sums (log returns have a
    -- mean small against their spread, so the subtraction loses little); exactly 0 when the
    -- returns are all equal, where the formula would leave a rounding residue
    select
        time_windows.*,
        case
            when hour_return_changes = 0 then cast(0 as double)
            else
                greatest(
                    hour_log_return_squared_sum
                    - hour_log_return_sum * hour_log_return_sum / hour_trades,
                    cast(0 as double)
                )
        end as hour_squared_deviations,
        case
            when session_cum_volume > 0
                then cast(session_cum_notional as double) / cast(session_cum_volume as double)
            else price
        end as session_vwap
    from time_windows

),

features as (

    select
        trade_id,
        symbol,
        trade_ts_ms,
        price,
        volume,
        price_change_pct,
        log_return,
        volume_zscore,
        price_zscore,
        case
            when hour_trades < 2 then cast(0 as double)
            else sqrt(hour_squared_deviations / (hour_trades - 1))
        end as price_volatility_1h,
        cast(minute_trades as integer) as trade_intensity_1m,
        case
            when session_cum_volume > 0
                then (price - session_vwap) / session_vwap * 100
            else cast(0 as double)
        end as vwap_deviation_pct,
        bollinger_pct_b,
        case
            when roll_pairs < 2 or roll_covariance >= 0 then cast(0 as double)
            else 2 * sqrt(-roll_covariance) / price * 100
        end as roll_spread_pct,
        volume_to_median_100,
        -- counts times seconds are exact integers: one rounding, in the division
        (
            cast(rate_window_trades * {{ rate_baseline_seconds }} as double)
            / cast(rate_baseline_trades * {{ rate_window_seconds }} as double)
        ) as trade_rate_ratio_10s,
        cast(same_print_trades as integer) as same_print_count_2s,
        trade_date_ny,
        cast(seq_before_run + position as bigint) as symbol_trade_seq,
        session_vwap,
        cast(session_cum_notional as {{ exact_sum_type() }}) as session_cum_notional,
        cast(session_cum_volume as {{ exact_sum_type() }}) as session_cum_volume
    from volatility_moments

),

final as (

    -- the timestamps and text of silver join back here, after every sort
    select
        features.trade_id,
        features.symbol,
        silver.trade_ts,
        features.trade_ts_ms,
        features.price,
        features.volume,
        features.price_change_pct,
        features.log_return,
        features.volume_zscore,
        features.price_zscore,
        features.price_volatility_1h,
        features.trade_intensity_1m,
        features.vwap_deviation_pct,
        recursive_features.rsi_14,
        recursive_features.macd_line,
        recursive_features.macd_signal,
        recursive_features.macd_hist,
        features.bollinger_pct_b,
        features.roll_spread_pct,
        cast(extract(hour from silver.ts_ny) as integer) as hour_of_day,
        cast(extract(minute from silver.ts_ny) as integer) as minute_of_hour,
        {{ iso_day_of_week('silver.ts_ny') }} as day_of_week,
        silver.session_type,
        silver.trade_type,
        features.volume_to_median_100,
        features.trade_rate_ratio_10s,
        features.same_print_count_2s,
        features.trade_date_ny,
        features.symbol_trade_seq,
        features.session_vwap,
        features.session_cum_notional,
        features.session_cum_volume
    from features
    inner join {{ ref('silver_trades') }} as silver
        on features.trade_id = silver.trade_id
    left join recursive_features
        on features.trade_id = recursive_features.trade_id

)

select * from final
