{#
    One row per symbol and New York trading day with at least one trade: how much it traded,
    what the champion flagged (by risk level), and what analysts made of the flags (reviewed,
    confirmed, dismissed: zero until analysts review), with the flag rate and the confirmed
    precision.

    A table: its size grows with symbols and days, not with trades, and it is rebuilt from one
    narrow scan of gold_trade_features (symbol, day, volume) and the flagged trades.
#}

with trades as (

    select
        symbol,
        trade_date_ny,
        count(*) as trades,
        sum(volume) as volume,
        min(trade_ts) as first_trade_ts,
        max(trade_ts) as last_trade_ts
    from {{ ref('gold_trade_features') }}
    group by
        symbol,
        trade_date_ny

),

flags as (

    select
        symbol,
        trade_date_ny,
        count(*) as flagged_trades,
        sum(case when risk_level = 'critical' then 1 else 0 end) as critical_flags,
        sum(case when risk_level = 'high' then 1 else 0 end) as high_flags,
        sum(case when risk_level = 'medium' then 1 else 0 end) as medium_flags,
        sum(case when risk_level = 'low' then 1 else 0 end) as low_flags,
        sum(case when review_status <> 'unreviewed' then 1 else 0 end) as reviewed_flags,
        sum(case when review_status = 'confirmed' then 1 else 0 end) as confirmed_flags,
        sum(case when review_status = 'dismissed' then 1 else 0 end) as dismissed_flags
    from {{ ref('gold_flagged_trades') }}
    group by
        symbol,
        trade_date_ny

),

combined as (

    select
        trades.symbol,
        trades.trade_date_ny,
        trades.trades,
        trades.volume,
        trades.first_trade_ts,
        trades.last_trade_ts,
        coalesce(flags.flagged_trades, 0) as flagged_trades,
        coalesce(flags.critical_flags, 0) as critical_flags,
        coalesce(flags.high_flags, 0) as high_flags,
        coalesce(flags.medium_flags, 0) as medium_flags,
        coalesce(flags.low_flags, 0) as low_flags,
        coalesce(flags.reviewed_flags, 0) as reviewed_flags,
        coalesce(flags.confirmed_flags, 0) as confirmed_flags,
        coalesce(flags.dismissed_flags, 0) as dismissed_flags
    from trades
    left join flags
        on trades.symbol = flags.symbol
        and trades.trade_date_ny = flags.trade_date_ny

),

final as (

    select
        cast(symbol as {{ warehouse_type('string') }}) as symbol,
        cast(trade_date_ny as date) as trade_date_ny,
        cast(trades as bigint) as trades,
        cast(volume as double) as volume,
        cast(flagged_trades as bigint) as flagged_trades,
        cast(critical_flags as bigint) as critical_flags,
        cast(high_flags as bigint) as high_flags,
        cast(medium_flags as bigint) as medium_flags,
        cast(low_flags as bigint) as low_flags,
        cast(reviewed_flags as bigint) as reviewed_flags,
        cast(confirmed_flags as bigint) as confirmed_flags,
        cast(dismissed_flags as bigint) as dismissed_flags,
        cast(flagged_trades as double) / trades as flag_rate,
        cast(
            case
                when reviewed_flags > 0 then cast(confirmed_flags as double) / reviewed_flags
            end
            as double
        ) as confirmed_precision,
        cast(first_trade_ts as {{ dbt.type_timestamp() }}) as first_trade_ts,
        cast(last_trade_ts as {{ dbt.type_timestamp() }}) as last_trade_ts
    from combined

)

select * from final
