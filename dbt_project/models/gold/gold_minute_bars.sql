{#
    OHLCV bars from the trades themselves (not from Alpha Vantage). Open and close are the first
    and last trade of the minute ordered by trade_ts then trade_id, as in the features.
#}
with trades as (

    select * from {{ ref('silver_trades') }}

),

positioned as (

    select
        symbol,
        {{ truncate_to_minute('trade_ts') }} as bar_minute,
        price,
        volume,
        session_type,
        row_number() over (
            partition by symbol, {{ truncate_to_minute('trade_ts') }}
            order by trade_ts, trade_id
        ) as position_from_open,
        row_number() over (
            partition by symbol, {{ truncate_to_minute('trade_ts') }}
            order by trade_ts desc, trade_id desc
        ) as position_from_close
    from trades

),

aggregated as (

    select
        symbol,
        bar_minute,
        max(case when position_from_open = 1 then price end) as open,
        max(price) as high,
        min(price) as low,
        max(case when position_from_close = 1 then price end) as close,
        sum(volume) as volume,
        sum(price * volume) as traded_value,
        count(*) as trade_count,
        -- sessions change on whole minutes: every trade of a minute shares its session
        min(session_type) as session_type
    from positioned
    group by
        symbol,
        bar_minute

),

localized as (

    select
        aggregated.*,
        {{ utc_to_local('bar_minute', var('exchange_time_zone')) }} as bar_minute_ny
    from aggregated

),

final as (

    select
        cast(symbol as {{ warehouse_type('string') }}) as symbol,
        cast(bar_minute as {{ dbt.type_timestamp() }}) as bar_minute,
        cast(bar_minute_ny as {{ dbt.type_timestamp() }}) as bar_minute_ny,
        cast(bar_minute_ny as date) as trade_date_ny,
        cast(session_type as {{ warehouse_type('string') }}) as session_type,
        cast(open as double) as open,
        cast(high as double) as high,
        cast(low as double) as low,
        cast(close as double) as close,
        cast(volume as double) as volume,
        cast(case when volume > 0 then traded_value / volume end as double) as vwap,
        cast(trade_count as bigint) as trade_count
    from localized

)

select * from final
