{#
    One symbol's minute bars on its newest trading day, with the flags that fell in each
    minute: where the flags cluster against price and volume. Choose the symbol with
    `--vars '{analysis_symbol: MSFT}'` (default AAPL).
#}

{% set symbol = var('analysis_symbol', 'AAPL') %}

with bars as (

    select *
    from {{ ref('gold_minute_bars') }}
    where symbol = '{{ symbol }}'
        and trade_date_ny = (
            select max(trade_date_ny)
            from {{ ref('gold_minute_bars') }}
            where symbol = '{{ symbol }}'
        )

),

flags as (

    select
        bar_minute,
        count(*) as flags,
        sum(case when risk_level = 'critical' then 1 else 0 end) as critical_flags,
        max(score) as max_score
    from {{ ref('gold_flagged_trades') }}
    where symbol = '{{ symbol }}'
    group by bar_minute

)

select
    bars.bar_minute,
    bars.session_type,
    bars.open,
    bars.high,
    bars.low,
    bars.close,
    bars.volume,
    bars.trade_count,
    coalesce(flags.flags, 0) as flags,
    coalesce(flags.critical_flags, 0) as critical_flags,
    flags.max_score
from bars
left join flags
    on bars.bar_minute = flags.bar_minute
order by bars.bar_minute
