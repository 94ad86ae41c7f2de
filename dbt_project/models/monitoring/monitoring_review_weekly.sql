{#
    The analysts' review of the current champion's flags, per week of trade time: how many
    flags there are, how many an analyst decided (confirmed or dismissed), the confirmed
    precision among the reviewed, and the oldest flag still waiting. Read from
    gold_flagged_trades, whose review_status comes from gold_anomaly_labels (an analyst's
    decision wins there), so a decision shows here after the build that follows it.
#}
with flags as (

    select
        trade_id,
        trade_ts,
        scored_at,
        review_status
    from {{ ref('gold_flagged_trades') }}

),

weekly as (

    select
        {{ dbt.date_trunc('week', 'trade_ts') }} as week_start,
        count(*) as flagged,
        sum(case when review_status <> 'unreviewed' then 1 else 0 end) as reviewed,
        sum(case when review_status = 'confirmed' then 1 else 0 end) as confirmed,
        sum(case when review_status = 'dismissed' then 1 else 0 end) as dismissed,
        sum(case when review_status = 'unreviewed' then 1 else 0 end) as unreviewed,
        min(case when review_status = 'unreviewed' then trade_ts end)
            as oldest_unreviewed_trade_ts,
        min(case when review_status = 'unreviewed' then scored_at end)
            as oldest_unreviewed_scored_at
    from flags
    group by {{ dbt.date_trunc('week', 'trade_ts') }}

),

final as (

    select
        cast(week_start as {{ dbt.type_timestamp() }}) as week_start,
        cast(flagged as bigint) as flagged,
        cast(reviewed as bigint) as reviewed,
        cast(confirmed as bigint) as confirmed,
        cast(dismissed as bigint) as dismissed,
        cast(unreviewed as bigint) as unreviewed,
        cast(reviewed as double) / flagged as review_coverage,
        case
            when reviewed > 0 then cast(confirmed as double) / reviewed
        end as confirmed_precision,
        cast(oldest_unreviewed_trade_ts as {{ dbt.type_timestamp() }})
            as oldest_unreviewed_trade_ts,
        cast(oldest_unreviewed_scored_at as {{ dbt.type_timestamp() }})
            as oldest_unreviewed_scored_at
    from weekly

)

select * from final
