{#
    One row per anomaly event a trusted source knows of: an event the simulator injected
    (its ground truth lists every trade of it), or a trade an analyst confirmed as anomalous
    (an event of its own, `trade:<trade_id>`, until reviews group trades into events). Rule
    labels are not events. With the trades it spans, how many of them the current champion
    flags, and whether it flags any (the event was detected).

    On a real feed this fills as analysts confirm trades; with the simulator, from its answer
    key.
#}

with anomalous_trades as (

    select
        coalesce(event_id, concat('trade:', trade_id)) as event_id,
        trade_id,
        symbol,
        trade_ts,
        anomaly_kind,
        label_source
    from {{ ref('gold_anomaly_labels') }}
    where is_anomaly
        and label_source in ('analyst', 'ground_truth')

),

flags as (

    select
        trade_id,
        score
    from {{ ref('gold_flagged_trades') }}

),

events as (

    select
        anomalous_trades.event_id,
        min(anomalous_trades.anomaly_kind) as anomaly_kind,
        min(anomalous_trades.label_source) as label_source,
        min(anomalous_trades.symbol) as symbol,
        min(anomalous_trades.trade_ts) as first_trade_ts,
        max(anomalous_trades.trade_ts) as last_trade_ts,
        count(*) as trades,
        count(flags.trade_id) as flagged_trades,
        max(flags.score) as max_flag_score
    from anomalous_trades
    left join flags
        on anomalous_trades.trade_id = flags.trade_id
    group by anomalous_trades.event_id

),

final as (

    select
        cast(event_id as {{ warehouse_type('string') }}) as event_id,
        cast(anomaly_kind as {{ warehouse_type('string') }}) as anomaly_kind,
        cast(label_source as {{ warehouse_type('string') }}) as label_source,
        cast(symbol as {{ warehouse_type('string') }}) as symbol,
        cast({{ utc_to_local('first_trade_ts', var('exchange_time_zone')) }} as date)
            as trade_date_ny,
        cast(first_trade_ts as {{ dbt.type_timestamp() }}) as first_trade_ts,
        cast(last_trade_ts as {{ dbt.type_timestamp() }}) as last_trade_ts,
        cast(trades as bigint) as trades,
        cast(flagged_trades as bigint) as flagged_trades,
        cast(flagged_trades > 0 as boolean) as detected,
        cast(max_flag_score as double) as max_flag_score
    from events

)

select * from final
