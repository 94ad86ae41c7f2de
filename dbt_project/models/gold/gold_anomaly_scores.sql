{#
    Champion scores, one row per scored trade: when a trade was scored more than once (a new
    champion re-scored it), the newest score wins. Empty until the first scoring run.
#}
with landed as (

    {{ landed_files('scoring', 'scores') }}

),

ranked as (

    select
        landed.*,
        row_number() over (
            partition by trade_id
            order by scored_at desc, _source_file desc
        ) as score_rank
    from landed
    where trade_id is not null

),

final as (

    select
        cast(trade_id as {{ warehouse_type('string') }}) as trade_id,
        cast(symbol as {{ warehouse_type('string') }}) as symbol,
        cast(trade_ts as {{ dbt.type_timestamp() }}) as trade_ts,
        cast(score as double) as score,
        cast(flag as boolean) as flag,
        cast(risk_level as {{ warehouse_type('string') }}) as risk_level,
        cast(model_name as {{ warehouse_type('string') }}) as model_name,
        cast(model_version as {{ warehouse_type('string') }}) as model_version,
        cast(scored_at as {{ dbt.type_timestamp() }}) as scored_at,
        cast(_source_file as {{ warehouse_type('string') }}) as _source_file
    from ranked
    where score_rank = 1

)

select * from final
