{#
    The champion against each challenger on the same live trades: how often their flags agree,
    and the precision of each one's flags where a trusted label (analyst or ground truth)
    exists. One row per challenger version and the champion version it was compared with.
#}
with compared as (

    select * from {{ ref('monitoring_shadow_scores') }}
    where champion_version is not null

),

counted as (

    select
        challenger_version,
        champion_version,
        count(*) as trades,
        sum(case when champion_flag = challenger_flag then 1 else 0 end) as agreeing,
        sum(case when champion_flag and challenger_flag then 1 else 0 end) as both_flagged,
        sum(case when champion_flag and not challenger_flag then 1 else 0 end) as champion_only,
        sum(case when challenger_flag and not champion_flag then 1 else 0 end) as challenger_only,
        sum(case when trusted_label is not null then 1 else 0 end) as labelled,
        sum(case when trusted_label is not null and champion_flag then 1 else 0 end)
            as champion_flagged_labelled,
        sum(case when trusted_label and champion_flag then 1 else 0 end) as champion_true_flags,
        sum(case when trusted_label is not null and challenger_flag then 1 else 0 end)
            as challenger_flagged_labelled,
        sum(case when trusted_label and challenger_flag then 1 else 0 end)
            as challenger_true_flags,
        min(trade_ts) as first_trade_ts,
        max(trade_ts) as last_trade_ts
    from compared
    group by
        challenger_version,
        champion_version

),

final as (

    select
        cast(challenger_version as {{ warehouse_type('string') }}) as challenger_version,
        cast(champion_version as {{ warehouse_type('string') }}) as champion_version,
        cast(trades as bigint) as trades,
        cast(agreeing as double) / trades as flag_agreement,
        cast(both_flagged as bigint) as both_flagged,
        cast(champion_only as bigint) as champion_only_flagged,
        cast(challenger_only as bigint) as challenger_only_flagged,
        cast(labelled as bigint) as labelled_trades,
        cast(
            case
                when champion_flagged_labelled > 0
                    then cast(champion_true_flags as double) / champion_flagged_labelled
            end
            as double
        ) as champion_precision,
        cast(
            case
                when challenger_flagged_labelled > 0
                    then cast(challenger_true_flags as double) / challenger_flagged_labelled
            end
            as double
        ) as challenger_precision,
        cast(first_trade_ts as {{ dbt.type_timestamp() }}) as first_trade_ts,
        cast(last_trade_ts as {{ dbt.type_timestamp() }}) as last_trade_ts
    from counted

)

select * from final
