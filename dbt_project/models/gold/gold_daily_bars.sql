{#
    Daily bars from Alpha Vantage. A day with a daily bar takes it as given; a day that only
    has intraday bars is rolled up from its regular-session bars (09:30-16:00 New York, like
    the exchange's official daily bar). derived_from says which.
#}
with bars as (

    select * from {{ ref('silver_bars') }}

),

calendar_days as (

    select * from {{ ref('market_calendar_days') }}

),

daily as (

    select
        symbol,
        cast(bar_ts_ny as date) as bar_date,
        open,
        high,
        low,
        close,
        volume,
        cast(1 as bigint) as bar_count,
        bar_interval as derived_from,
        fetched_at
    from bars
    where bar_interval = 'daily'

),

intraday_regular as (

    select
        bars.*,
        cast(bars.bar_ts_ny as date) as bar_date,
        row_number() over (
            partition by bars.symbol, bars.bar_interval, cast(bars.bar_ts_ny as date)
            order by bars.bar_ts
        ) as position_from_open,
        row_number() over (
            partition by bars.symbol, bars.bar_interval, cast(bars.bar_ts_ny as date)
            order by bars.bar_ts desc
        ) as position_from_close
    from bars
    left join calendar_days
        on calendar_days.calendar = 'XNYS'
        and calendar_days.session_date = cast(bars.bar_ts_ny as date)
    where bars.bar_interval != 'daily'
        and {{ session_type(
            'bars.bar_ts_ny',
            day_kind='calendar_days.day_kind',
            regular_close_minute='calendar_days.regular_close_minute',
            after_hours_close_minute='calendar_days.after_hours_close_minute',
        ) }} = 'regular'

),

rolled_up as (

    select
        symbol,
        bar_date,
        max(case when position_from_open = 1 then open end) as open,
        max(high) as high,
        min(low) as low,
        max(case when position_from_close = 1 then close end) as close,
        sum(volume) as volume,
        count(*) as bar_count,
        bar_interval as derived_from,
        max(fetched_at) as fetched_at
    from intraday_regular
    group by
        symbol,
        bar_date,
        bar_interval

),

{# Of several intraday intervals for one day, the finest-grained roll-up wins. -#}
rolled_up_ranked as (

    select
        rolled_up.*,
        row_number() over (
            partition by symbol, bar_date order by bar_count desc, derived_from asc
        ) as interval_rank
    from rolled_up

),

combined as (

    select * from daily

    union all

    select
        symbol,
        bar_date,
        open,
        high,
        low,
        close,
        volume,
        bar_count,
        derived_from,
        fetched_at
    from rolled_up_ranked
    where interval_rank = 1
        and not exists (
            select 1
            from daily
            where daily.symbol = rolled_up_ranked.symbol
                and daily.bar_date = rolled_up_ranked.bar_date
        )

),

final as (

    select
        cast(symbol as {{ warehouse_type('string') }}) as symbol,
        cast(bar_date as date) as bar_date,
        cast(open as double) as open,
        cast(high as double) as high,
        cast(low as double) as low,
        cast(close as double) as close,
        cast(volume as double) as volume,
        cast(bar_count as bigint) as bar_count,
        cast(derived_from as {{ warehouse_type('string') }}) as derived_from,
        cast(fetched_at as {{ dbt.type_timestamp() }}) as fetched_at
    from combined

)

select * from final
