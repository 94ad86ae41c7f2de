{#
    Today's critical flags with their context: the newest New York trading day in the
    warehouse, highest score first, with the model's main inputs, the minute bar the trade
    fell in and what an analyst made of it so far.

    dbt compile --select todays_critical_flags   (then run the SQL in `tradewatch sql`)
#}

select
    trade_id,
    symbol,
    trade_ts,
    session_type,
    price,
    volume,
    score,
    model_version,
    review_status,
    label_source,
    anomaly_kind,
    price_change_pct,
    volume_zscore,
    price_zscore,
    volume_to_median_100,
    trade_rate_ratio_10s,
    bar_minute,
    bar_open,
    bar_high,
    bar_low,
    bar_close,
    bar_trade_count
from {{ ref('gold_flagged_trades') }}
where risk_level = 'critical'
    and trade_date_ny = (select max(trade_date_ny) from {{ ref('gold_trade_features') }})
order by score desc, trade_ts asc
