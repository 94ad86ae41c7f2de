{#
    The champion's flags per symbol per hour of trade time, from gold_anomaly_scores (one score
    per trade, the newest champion's): what the monitoring report's heat map and per-symbol
    table count. Empty until the first scoring run.
#}
with scores as (

    select * from {{ ref('gold_anomaly_scores') }}

),

counted as (

    select
        symbol,
        {{ dbt.date_trunc('hour', 'trade_ts') }} as trade_hour,
        count(*) as scored,
        sum(case when flag then 1 else 0 end) as flagged,
        sum(case when flag and risk_level = 'critical' then 1 else 0 end) as critical,
        sum(case when flag and risk_level = 'high' then 1 else 0 end) as high,
        max(case when flag then trade_ts end) as last_flagged_ts
    from scores
    group by
        symbol,
        {{ dbt.date_trunc('hour', 'trade_ts') }}

),

final as (

    select
        cast(symbol as {{ warehouse_type('string') }}) as symbol,
        cast(trade_hour as {{ dbt.type_timestamp() }}) as trade_hour,
        cast(scored as bigint) as scored,
        cast(flagged as bigint) as flagged,
        cast(critical as bigint) as critical,
        cast(high as bigint) as high,
        cast(last_flagged_ts as {{ dbt.type_timestamp() }}) as last_flagged_ts
    from counted

)

select * from final
