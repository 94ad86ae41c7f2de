{{
    config(
        materialized=replaceable_materialization(),
        unique_key='trade_id',
        incremental_strategy=replaceable_strategy(),
        on_schema_change='append_new_columns',
        pre_hook=[
            "{% if is_incremental() %}"
            "delete from {{ this }} where trade_id not in"
            " (select trade_id from {{ ref('gold_anomaly_scores') }} where flag)"
            "{% endif %}"
        ],
    )
}}

{#
    One row per trade the current champion flags, with everything an analyst looks at first:
    the score, its risk level and model version, the model's inputs, the label and who gave it
    (an analyst's review wins), and the minute bar the trade fell in.

    Incremental: a run writes only the flagged trades whose score (a new trade, or a re-score
    after a promotion or rollback) or label (an analyst's review) changed since the last run,
    and the pre-hook first deletes the trades the current champion no longer flags.
#}

with scores as (

    select
        trade_id,
        trade_ts,
        score,
        risk_level,
        model_name,
        model_version,
        scored_at
    from {{ ref('gold_anomaly_scores') }}
    where flag

),

labels as (

    select
        trade_id,
        is_anomaly,
        label_source,
        anomaly_kind,
        event_id
    from {{ ref('gold_anomaly_labels') }}

),

flagged as (

    select
        scores.*,
        labels.is_anomaly,
        labels.label_source,
        labels.anomaly_kind,
        labels.event_id
    from scores
    left join labels
        on scores.trade_id = labels.trade_id

),

changed as (

    select flagged.*
    from flagged
    {% if is_incremental() %}
    left join {{ this }} as kept
        on flagged.trade_id = kept.trade_id
    where kept.trade_id is null
        or kept.scored_at is distinct from flagged.scored_at
        or kept.model_version is distinct from flagged.model_version
        or kept.score is distinct from flagged.score
        or kept.is_anomaly is distinct from flagged.is_anomaly
        or kept.label_source is distinct from flagged.label_source
        or kept.anomaly_kind is distinct from flagged.anomaly_kind
    {% endif %}

),

features as (

    select * from {{ ref('gold_trade_features') }}

),

minute_bars as (

    select * from {{ ref('gold_minute_bars') }}

),

enriched as (

    select
        changed.trade_id,
        features.symbol,
        changed.trade_ts,
        features.trade_date_ny,
        features.session_type,
        features.trade_type,
        features.price,
        features.volume,
        changed.score,
        changed.risk_level,
        changed.model_name,
        changed.model_version,
        changed.scored_at,
        changed.is_anomaly,
        changed.label_source,
        changed.anomaly_kind,
        changed.event_id,
        case
            when changed.label_source <> 'analyst' or changed.label_source is null
                then 'unreviewed'
            when changed.is_anomaly then 'confirmed'
            else 'dismissed'
        end as review_status,
        features.price_change_pct,
        features.log_return,
        features.volume_zscore,
        features.price_zscore,
        features.price_volatility_1h,
        features.trade_intensity_1m,
        features.vwap_deviation_pct,
        features.rsi_14,
        features.macd_line,
        features.macd_signal,
        features.macd_hist,
        features.bollinger_pct_b,
        features.roll_spread_pct,
        features.volume_to_median_100,
        features.trade_rate_ratio_10s,
        features.same_print_count_2s,
        features.hour_of_day,
        features.minute_of_hour,
        features.day_of_week,
        minute_bars.bar_minute,
        minute_bars.open as bar_open,
        minute_bars.high as bar_high,
        minute_bars.low as bar_low,
        minute_bars.close as bar_close,
        minute_bars.volume as bar_volume,
        minute_bars.vwap as bar_vwap,
        minute_bars.trade_count as bar_trade_count
    from changed
    -- trade_ts joins too: it lets the engine skip the features outside the batch's time range
    inner join features
        on changed.trade_id = features.trade_id
        and changed.trade_ts = features.trade_ts
    left join minute_bars
        on features.symbol = minute_bars.symbol
        and {{ truncate_to_minute('features.trade_ts') }} = minute_bars.bar_minute

),

final as (

    select
        cast(trade_id as {{ warehouse_type('string') }}) as trade_id,
        cast(symbol as {{ warehouse_type('string') }}) as symbol,
        cast(trade_ts as {{ dbt.type_timestamp() }}) as trade_ts,
        cast(trade_date_ny as date) as trade_date_ny,
        cast(session_type as {{ warehouse_type('string') }}) as session_type,
        cast(trade_type as {{ warehouse_type('string') }}) as trade_type,
        cast(price as double) as price,
        cast(volume as double) as volume,
        cast(score as double) as score,
        cast(risk_level as {{ warehouse_type('string') }}) as risk_level,
        cast(model_name as {{ warehouse_type('string') }}) as model_name,
        cast(model_version as {{ warehouse_type('string') }}) as model_version,
        cast(scored_at as {{ dbt.type_timestamp() }}) as scored_at,
        cast(is_anomaly as boolean) as is_anomaly,
        cast(label_source as {{ warehouse_type('string') }}) as label_source,
        cast(anomaly_kind as {{ warehouse_type('string') }}) as anomaly_kind,
        cast(event_id as {{ warehouse_type('string') }}) as event_id,
        cast(review_status as {{ warehouse_type('string') }}) as review_status,
        cast(price_change_pct as double) as price_change_pct,
        cast(log_return as double) as log_return,
        cast(volume_zscore as double) as volume_zscore,
        cast(price_zscore as double) as price_zscore,
        cast(price_volatility_1h as double) as price_volatility_1h,
        cast(trade_intensity_1m as {{ warehouse_type('integer') }}) as trade_intensity_1m,
        cast(vwap_deviation_pct as double) as vwap_deviation_pct,
        cast(rsi_14 as double) as rsi_14,
        cast(macd_line as double) as macd_line,
        cast(macd_signal as double) as macd_signal,
        cast(macd_hist as double) as macd_hist,
        cast(bollinger_pct_b as double) as bollinger_pct_b,
        cast(roll_spread_pct as double) as roll_spread_pct,
        cast(volume_to_median_100 as double) as volume_to_median_100,
        cast(trade_rate_ratio_10s as double) as trade_rate_ratio_10s,
        cast(same_print_count_2s as {{ warehouse_type('integer') }}) as same_print_count_2s,
        cast(hour_of_day as {{ warehouse_type('integer') }}) as hour_of_day,
        cast(minute_of_hour as {{ warehouse_type('integer') }}) as minute_of_hour,
        cast(day_of_week as {{ warehouse_type('integer') }}) as day_of_week,
        cast(bar_minute as {{ dbt.type_timestamp() }}) as bar_minute,
        cast(bar_open as double) as bar_open,
        cast(bar_high as double) as bar_high,
        cast(bar_low as double) as bar_low,
        cast(bar_close as double) as bar_close,
        cast(bar_volume as double) as bar_volume,
        cast(bar_vwap as double) as bar_vwap,
        cast(bar_trade_count as bigint) as bar_trade_count
    from enriched

)

select * from final
