{{
    config(
        materialized='incremental',
        unique_key='trade_id',
        incremental_strategy=features_incremental_strategy(),
        on_schema_change='fail',
    )
}}

{#
    One row per trade with every feature of DESIGN.md, and three that separate the anomaly
    kinds those cannot (volume_to_median_100, trade_rate_ratio_10s, same_print_count_2s), per
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
{#- The Roll window pairs each price change with the one before, so it reaches one trade further back. -#}
{%- set history_trades = [zscore_window, bollinger_window - 1, roll_window + 1, median_window] | max -%}
{%- set history_ms = [volatility_window_ms, intensity_window_ms, rate_baseline_seconds * 1000, same_print_window_ms] | max -%}
{%- set previous_trades = symbol_trade_order() ~ ' rows between ' ~ zscore_window ~ ' preceding and 1 preceding' -%}
{%- set median_trades = symbol_trade_order() ~ ' rows between ' ~ median_window ~ ' preceding and 1 preceding' -%}
{%- set band_trades = symbol_trade_order() ~ ' rows between ' ~ (bollinger_window - 1) ~ ' preceding and current row' -%}
{%- set roll_trades = symbol_trade_order() ~ ' rows between ' ~ (roll_window - 1) ~ ' preceding and current row' -%}
{%- set events_so_far = 'partition by symbol order by event_ts_ms, probe_kind, trade_id rows between unbounded preceding and current row' -%}
{%- set symbol_so_far = symbol_trade_order() ~ ' rows between unbounded preceding and current row' -%}

with silver_trades as (

    select
        trade_id,
        symbol,
        trade_ts,
        trade_ts_ms,
        price,
        volume,
        trade_date_ny,
        ts_ny,
        session_type,
        trade_type
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

existing as (

    select
        trade_id,
        symbol,
        trade_ts_ms,
        price,
        volume,
        log_return,
        trade_date_ny,
        symbol_trade_seq,
        session_cum_notional,
        session_cum_volume
    from {{ this }}

),

recompute_from as (

    -- the earliest trade of each symbol that is not in the table yet
    select
        silver_trades.symbol,
        min(silver_trades.trade_ts_ms) as from_ts_ms
    from silver_trades
    left join existing
        on silver_trades.trade_id = existing.trade_id
    where existing.trade_id is null
    group by silver_trades.symbol

),

last_kept as (

    select
        existing.symbol,
        max(existing.symbol_trade_seq) as last_seq
    from existing
    inner join recompute_from
        on existing.symbol = recompute_from.symbol
        and existing.trade_ts_ms < recompute_from.from_ts_ms
    group by existing.symbol

),

history as (

    select
        existing.trade_id,
        existing.symbol,
        cast(null as {{ dbt.type_timestamp() }}) as trade_ts,
        existing.trade_ts_ms,
        existing.price,
        existing.volume,
        existing.trade_date_ny,
        cast(null as {{ dbt.type_timestamp() }}) as ts_ny,
        cast(null as {{ dbt.type_string() }}) as session_type,
        cast(null as {{ dbt.type_string() }}) as trade_type,
        true as is_history,
        existing.log_return as kept_log_return,
        last_kept.last_seq,
        -- the day's running VWAP sums continue from the last kept trade
        case
            when existing.symbol_trade_seq = last_kept.last_seq then existing.session_cum_notional
            else cast(0 as {{ exact_sum_type() }})
        end as notional_contribution,
        case
            when existing.symbol_trade_seq = last_kept.last_seq then existing.session_cum_volume
            else cast(0 as {{ exact_sum_type() }})
        end as volume_contribution
    from existing
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

recomputed as (

    select
        silver_trades.*,
        false as is_history,
        cast(null as double) as kept_log_return,
        coalesce(last_kept.last_seq, 0) as last_seq,
        cast(silver_trades.price * silver_trades.volume as {{ exact_sum_type() }}) as notional_contribution,
        cast(silver_trades.volume as {{ exact_sum_type() }}) as volume_contribution
    from silver_trades
    inner join recompute_from
        on silver_trades.symbol = recompute_from.symbol
        and silver_trades.trade_ts_ms >= recompute_from.from_ts_ms
    left join last_kept
        on silver_trades.symbol = last_kept.symbol

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
        0 as last_seq,
        cast(price * volume as {{ exact_sum_type() }}) as notional_contribution,
        cast(volume as {{ exact_sum_type() }}) as volume_contribution
    from silver_trades

),

{% endif %}

with_previous as (

    select
        trades.*,
        lag(price) over ({{ symbol_trade_order() }}) as previous_price,
        lag(price, 2) over ({{ symbol_trade_order() }}) as price_two_back,
        -- position among the trades being (re)computed, after the last kept trade (the history
        -- rows of a symbol all come before its recomputed ones); one sort shared with the lags
        row_number() over ({{ symbol_trade_order() }})
            - sum(case when is_history then 1 else 0 end) over ({{ symbol_so_far }}) as position_after_kept,
        -- first trade of a New York day in this run (where the running VWAP sums restart)
        case
            when lag(trade_date_ny) over ({{ symbol_trade_order() }}) = trade_date_ny then false
            else true
        end as starts_session
    from trades

),

with_returns as (

    select
        with_previous.*,
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
    from with_previous

),

running_sums as (

    -- exact running sums per symbol: a trailing window's sum is the difference of two of them
    select
        with_returns.*,
        sum(notional_contribution) over ({{ symbol_so_far }}) as running_notional,
        sum(volume_contribution) over ({{ symbol_so_far }}) as running_session_volume,
        {{ exact_running_sum('volume') }} as running_volume,
        {{ exact_running_sum('price') }} as running_price,
        {{ exact_running_sum('price_change * previous_price_change') }} as running_roll_xy,
        {{ exact_running_sum('case when previous_price_change is not null then price_change end') }} as running_roll_x,
        {{ exact_running_sum('previous_price_change') }} as running_roll_y
    from with_returns

),

time_window_events as (

    -- every trade, plus a probe per trade being computed and time window, each sorting right
    -- after the last trade before that window: 1 h, 60 s, 10 s and 10 min + 1 ms before the
    -- trade's millisecond (running totals replace range frames, which DuckDB aggregates slowly)
    select
        symbol,
        trade_ts_ms as event_ts_ms,
        0 as probe_kind,
        trade_id,
        {{ exact_return_decimal('log_return') }} as exact_log_return,
        {{ exact_return_decimal('log_return * log_return') }} as exact_log_return_squared,
        -- 1 where the next trade's log return differs: a window with none of these is constant
        case
            when lead(log_return) over ({{ symbol_trade_order() }}) = log_return then 0
            else 1
        end as return_changes_next
    from with_returns
    union all
    select
        symbol,
        trade_ts_ms - {{ volatility_window_ms }} - 1 as event_ts_ms,
        1 as probe_kind,
        trade_id,
        cast(null as {{ exact_return_sum_type() }}) as exact_log_return,
        cast(null as {{ exact_return_sum_type() }}) as exact_log_return_squared,
        0 as return_changes_next
    from with_returns
    where not is_history
    union all
    select
        symbol,
        trade_ts_ms - {{ intensity_window_ms }} - 1 as event_ts_ms,
        2 as probe_kind,
        trade_id,
        cast(null as {{ exact_return_sum_type() }}) as exact_log_return,
        cast(null as {{ exact_return_sum_type() }}) as exact_log_return_squared,
        0 as return_changes_next
    from with_returns
    where not is_history
    union all
    select
        symbol,
        trade_ts_ms - {{ rate_window_seconds * 1000 }} - 1 as event_ts_ms,
        3 as probe_kind,
        trade_id,
        cast(null as {{ exact_return_sum_type() }}) as exact_log_return,
        cast(null as {{ exact_return_sum_type() }}) as exact_log_return_squared,
        0 as return_changes_next
    from with_returns
    where not is_history
    union all
    select
        symbol,
        trade_ts_ms - {{ rate_baseline_seconds * 1000 }} - 1 as event_ts_ms,
        4 as probe_kind,
        trade_id,
        cast(null as {{ exact_return_sum_type() }}) as exact_log_return,
        cast(null as {{ exact_return_sum_type() }}) as exact_log_return_squared,
        0 as return_changes_next
    from with_returns
    where not is_history

),

time_window_running as (

    -- running totals over trades (probes add nothing); exact, so differences are exact too
    select
        trade_id,
        probe_kind,
        return_changes_next,
        count(exact_log_return) over ({{ events_so_far }}) as trades_so_far,
        sum(exact_log_return) over ({{ events_so_far }}) as log_return_so_far,
        sum(exact_log_return_squared) over ({{ events_so_far }}) as log_return_squared_so_far,
        sum(return_changes_next) over ({{ events_so_far }}) as return_changes_so_far
    from time_window_events

),

time_windows as (

    -- a trade's window = its running totals minus those at its probe
    select
        trade_id,
        sum(case probe_kind when 0 then trades_so_far when 1 then -trades_so_far end) as hour_trades,
        sum(case probe_kind when 0 then log_return_so_far when 1 then -log_return_so_far end)
            as hour_log_return_sum,
        sum(case probe_kind when 0 then log_return_squared_so_far when 1 then -log_return_squared_so_far end)
            as hour_log_return_squared_sum,
        -- changes between consecutive returns inside the window (the current trade's own
        -- change-to-next looks outside it)
        sum(case probe_kind
            when 0 then return_changes_so_far - return_changes_next
            when 1 then -return_changes_so_far
        end) as hour_return_changes,
        sum(case probe_kind when 0 then trades_so_far when 2 then -trades_so_far end) as minute_trades,
        sum(case probe_kind when 0 then trades_so_far when 3 then -trades_so_far end) as rate_window_trades,
        sum(case probe_kind when 0 then trades_so_far when 4 then -trades_so_far end) as rate_baseline_trades
    from time_window_running
    group by trade_id

),

windowed as (

    select
        running_sums.*,

        count(volume) over ({{ previous_trades }}) as zscore_trades,
        {{ exact_trailing_sum('running_volume', zscore_window, 1) }} / count(volume) over ({{ previous_trades }}) as zscore_volume_mean,
        stddev_samp(volume) over ({{ previous_trades }}) as zscore_volume_stddev,
        min(volume) over ({{ previous_trades }}) as zscore_volume_min,
        max(volume) over ({{ previous_trades }}) as zscore_volume_max,
        {{ exact_trailing_sum('running_price', zscore_window, 1) }} / count(price) over ({{ previous_trades }}) as zscore_price_mean,
        stddev_samp(price) over ({{ previous_trades }}) as zscore_price_stddev,
        min(price) over ({{ previous_trades }}) as zscore_price_min,
        max(price) over ({{ previous_trades }}) as zscore_price_max,
        {{ window_median('volume', median_trades) }} as volume_median,

        -- the symbol's trades at the same price and size in the trailing window: the earlier
        -- milliseconds by a range frame (identical prints are few, so its partitions are
        -- small) plus this millisecond up to the trade
        count(*) over ({{ earlier_milliseconds(same_print_window_ms, 'symbol, price, volume') }})
            + count(*) over ({{ same_millisecond_so_far('symbol, price, volume') }}) as same_print_trades,

        -- the day's sums = running sums minus their value before the day's first trade; the
        -- contributions are never negative, so the latest day start has the largest value
        -- (cast back: Spark narrows the scale of a difference of two decimal(38, s))
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
        ) as session_cum_volume,

        count(price) over ({{ band_trades }}) as band_trades,
        {{ exact_trailing_sum('running_price', bollinger_window - 1, 0) }} / count(price) over ({{ band_trades }}) as band_mean,
        min(price) over ({{ band_trades }}) as band_min,
        max(price) over ({{ band_trades }}) as band_max,

        -- Roll co-moments from exact sums, so that they do not depend on the partition layout
        count(price_change * previous_price_change) over ({{ roll_trades }}) as roll_pairs,
        {{ exact_trailing_sum('running_roll_xy', roll_window - 1, 0) }} as roll_sum_xy,
        {{ exact_trailing_sum('running_roll_x', roll_window - 1, 0) }} as roll_sum_x,
        {{ exact_trailing_sum('running_roll_y', roll_window - 1, 0) }} as roll_sum_y

    from running_sums

),

band as (

    -- population stddev of the band, two-pass around the exact mean in a fixed order
    select
        windowed.*,
        sqrt({{ fixed_order_variance('price', bollinger_window, 'band_mean', 'band_trades') }}) as band_stddev
    from windowed

),

volatility_moments as (

    -- the trailing hour's sum of squared deviations from its exact sums (log returns have a
    -- mean small against their spread, so the subtraction loses little); exactly 0 when the
    -- returns are all equal, where the formula would leave a rounding residue
    select
        band.*,
        time_windows.hour_trades,
        time_windows.minute_trades,
        time_windows.rate_window_trades,
        time_windows.rate_baseline_trades,
        case
            when time_windows.hour_return_changes = 0 then cast(0 as double)
            else greatest(
                cast(time_windows.hour_log_return_squared_sum as double)
                - cast(time_windows.hour_log_return_sum as double)
                    * cast(time_windows.hour_log_return_sum as double) / time_windows.hour_trades,
                cast(0 as double)
            )
        end as hour_squared_deviations,
        case
            when session_cum_volume > 0
                then cast(session_cum_notional as double) / cast(session_cum_volume as double)
            else price
        end as session_vwap,
        case
            when roll_pairs >= 2
                then (roll_sum_xy - roll_sum_x * roll_sum_y / roll_pairs) / (roll_pairs - 1)
        end as roll_covariance
    from band
    inner join time_windows
        on band.trade_id = time_windows.trade_id

),

features as (

    select
        volatility_moments.trade_id,
        volatility_moments.symbol,
        volatility_moments.trade_ts,
        volatility_moments.trade_ts_ms,
        volatility_moments.price,
        volatility_moments.volume,
        price_change_pct,
        log_return,
        case
            when zscore_trades < 2 or zscore_volume_min = zscore_volume_max then cast(0 as double)
            else (volume - zscore_volume_mean) / zscore_volume_stddev
        end as volume_zscore,
        case
            when zscore_trades < 2 or zscore_price_min = zscore_price_max then cast(0 as double)
            else (volatility_moments.price - zscore_price_mean) / zscore_price_stddev
        end as price_zscore,
        case
            when hour_trades < 2 then cast(0 as double)
            else sqrt(hour_squared_deviations / (hour_trades - 1))
        end as price_volatility_1h,
        cast(minute_trades as integer) as trade_intensity_1m,
        case
            when session_cum_volume > 0
                then (volatility_moments.price - session_vwap) / session_vwap * 100
            else cast(0 as double)
        end as vwap_deviation_pct,
        case
            when band_min = band_max then cast(0.5 as double)
            else (volatility_moments.price - (band_mean - 2 * band_stddev))
                / ((band_mean + 2 * band_stddev) - (band_mean - 2 * band_stddev))
        end as bollinger_pct_b,
        case
            when roll_pairs < 2 or roll_covariance >= 0 then cast(0 as double)
            else 2 * sqrt(-roll_covariance) / volatility_moments.price * 100
        end as roll_spread_pct,
        cast(extract(hour from ts_ny) as integer) as hour_of_day,
        cast(extract(minute from ts_ny) as integer) as minute_of_hour,
        {{ iso_day_of_week('ts_ny') }} as day_of_week,
        session_type,
        trade_type,
        case
            when volume_median is null or volume_median = 0 then cast(1 as double)
            else volatility_moments.volume / volume_median
        end as volume_to_median_100,
        -- counts times seconds are exact integers: one rounding, in the division
        cast(rate_window_trades * {{ rate_baseline_seconds }} as double)
            / cast(rate_baseline_trades * {{ rate_window_seconds }} as double) as trade_rate_ratio_10s,
        cast(same_print_trades as integer) as same_print_count_2s,
        trade_date_ny,
        cast(last_seq + position_after_kept as bigint) as symbol_trade_seq,
        session_vwap,
        session_cum_notional,
        session_cum_volume,
        is_history
    from volatility_moments

),

final as (

    select
        features.trade_id,
        features.symbol,
        features.trade_ts,
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
        features.hour_of_day,
        features.minute_of_hour,
        features.day_of_week,
        features.session_type,
        features.trade_type,
        features.volume_to_median_100,
        features.trade_rate_ratio_10s,
        features.same_print_count_2s,
        features.trade_date_ny,
        features.symbol_trade_seq,
        features.session_vwap,
        features.session_cum_notional,
        features.session_cum_volume
    from features
    left join recursive_features
        on features.trade_id = recursive_features.trade_id
    where not features.is_history

)

select * from final
