{#
    A registered challenger's shadow scores beside the current champion's score of the same
    trade and the trade's trusted label (an analyst's or the simulator's; never the rule's), so
    that agreement and precision compare the two models on the same live trades. Shadow scores
    are read here only: never in gold_anomaly_scores, never alerted.
#}
with shadow as (

    {{ landed_files('scoring', 'shadow_scores') }}

),

champion as (

    select * from {{ ref('gold_anomaly_scores') }}

),

labels as (

    select * from {{ ref('gold_anomaly_labels') }}

),

ranked as (

    select
        shadow.*,
        row_number() over (
            partition by trade_id, model_version
            order by scored_at desc, _source_file desc
        ) as score_rank
    from shadow
    where trade_id is not null

),

compared as (

    select
        ranked.trade_id,
        ranked.symbol,
        ranked.trade_ts,
        ranked.model_version as challenger_version,
        ranked.score as challenger_score,
        ranked.flag as challenger_flag,
        champion.model_version as champion_version,
        champion.score as champion_score,
        champion.flag as champion_flag,
        case
            when labels.label_source in ('analyst', 'ground_truth') then labels.is_anomaly
        end as trusted_label,
        case
            when labels.label_source in ('analyst', 'ground_truth') then labels.label_source
        end as trusted_label_source,
        ranked.scored_at
    from ranked
    left join champion
        on ranked.trade_id = champion.trade_id
    left join labels
        on ranked.trade_id = labels.trade_id
    where ranked.score_rank = 1

),

final as (

    select
        cast(trade_id as {{ warehouse_type('string') }}) as trade_id,
        cast(symbol as {{ warehouse_type('string') }}) as symbol,
        cast(trade_ts as {{ dbt.type_timestamp() }}) as trade_ts,
        cast(challenger_version as {{ warehouse_type('string') }}) as challenger_version,
        cast(challenger_score as double) as challenger_score,
        cast(challenger_flag as boolean) as challenger_flag,
        cast(champion_version as {{ warehouse_type('string') }}) as champion_version,
        cast(champion_score as double) as champion_score,
        cast(champion_flag as boolean) as champion_flag,
        cast(trusted_label as boolean) as trusted_label,
        cast(trusted_label_source as {{ warehouse_type('string') }}) as trusted_label_source,
        cast(scored_at as {{ dbt.type_timestamp() }}) as scored_at
    from compared

)

select * from final
