{#
    One row per trade of gold_trade_features: is it anomalous, according to the most trusted
    source that has an opinion on it (analyst > simulator ground truth > rule heuristic), and
    which source that was. Rebuilt on every run: a new analyst label or a longer answer key
    changes the labels of old trades.
#}

with features as (

    select
        trade_id,
        symbol,
        trade_ts,
        trade_date_ny,
        volume_zscore,
        price_change_pct,
        rsi_14,
        bollinger_pct_b
    from {{ ref('gold_trade_features') }}

),

analyst_labels as (

    -- the latest analyst decision per trade: the label store and the seed
    select
        trade_id,
        is_anomaly,
        anomaly_kind
    from {{ ref('int_analyst_labels') }}

),

ground_truth_trades as (

    select
        trade_id,
        anomaly_kind,
        event_id
    from {{ ref('int_ground_truth_trades') }}

),

ground_truth_days as (

    -- New York trading days the answer key covers: the simulator lists every anomalous trade
    -- it sent, so on a day with at least one listed trade in the warehouse every other trade
    -- is normal by construction. Other days (a real feed) get no ground-truth opinion.
    select distinct features.trade_date_ny
    from features
    inner join ground_truth_trades
        on features.trade_id = ground_truth_trades.trade_id

),

rule_labels as (

    -- DESIGN's weak fallback: a large volume on a large move, an extreme RSI, or a price
    -- outside the Bollinger band; the first rule that fires names the kind
    select
        trade_id,
        case
            when abs(volume_zscore) > 3 and abs(price_change_pct) > 2 then 'rule_volume_price_move'
            when rsi_14 < 15 or rsi_14 > 85 then 'rule_rsi_extreme'
            when bollinger_pct_b < 0 or bollinger_pct_b > 1 then 'rule_outside_bollinger'
        end as rule_kind
    from features

),

labelled as (

    select
        features.trade_id,
        features.symbol,
        features.trade_ts,
        case
            when analyst_labels.trade_id is not null then analyst_labels.is_anomaly
            when ground_truth_trades.trade_id is not null then true
            when ground_truth_days.trade_date_ny is not null then false
            else rule_labels.rule_kind is not null
        end as is_anomaly,
        case
            when analyst_labels.trade_id is not null then 'analyst'
            when ground_truth_trades.trade_id is not null
                or ground_truth_days.trade_date_ny is not null then 'ground_truth'
            else 'rule'
        end as label_source,
        case
            when analyst_labels.trade_id is not null
                then case when analyst_labels.is_anomaly then analyst_labels.anomaly_kind end
            when ground_truth_trades.trade_id is not null then ground_truth_trades.anomaly_kind
            when ground_truth_days.trade_date_ny is not null then null
            else rule_labels.rule_kind
        end as anomaly_kind,
        case
            when analyst_labels.trade_id is null then ground_truth_trades.event_id
        end as event_id
    from features
    inner join rule_labels
        on features.trade_id = rule_labels.trade_id
    left join analyst_labels
        on features.trade_id = analyst_labels.trade_id
    left join ground_truth_trades
        on features.trade_id = ground_truth_trades.trade_id
    left join ground_truth_days
        on features.trade_date_ny = ground_truth_days.trade_date_ny

),

final as (

    select
        cast(trade_id as {{ warehouse_type('string') }}) as trade_id,
        cast(symbol as {{ warehouse_type('string') }}) as symbol,
        trade_ts,
        cast(is_anomaly as boolean) as is_anomaly,
        cast(label_source as {{ warehouse_type('string') }}) as label_source,
        cast(anomaly_kind as {{ warehouse_type('string') }}) as anomaly_kind,
        cast(event_id as {{ warehouse_type('string') }}) as event_id
    from labelled

)

select * from final
