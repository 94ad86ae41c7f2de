{#
    The current champion's score of every trade it has scored. Scores are never rewritten: a
    new or restored champion scores trades again and its rows sit beside the old ones, each
    with its model version. The newest champion scoring run (monitoring/scoring) names the
    version that is champion now, and only its scores are shown; with no run recorded yet
    (scores from before runs were recorded), the newest score of each trade wins.
    Empty until the first scoring run.
#}
with landed as (

    {{ landed_files('scoring', 'scores') }}

),

scoring_runs as (

    {{ landed_files('monitoring', 'scoring_runs') }}

),

current_champion as (

    {#- Always one row: the version of the newest champion run, null before any run. -#}
    select max(case when run_rank = 1 then model_version end) as model_version
    from (
        select
            model_version,
            row_number() over (order by run_ts desc, run_id desc) as run_rank
        from scoring_runs
        where role = 'champion'
    ) as newest_first

),

champion_scores as (

    select landed.*
    from landed
    cross join current_champion
    where landed.trade_id is not null
        and (
            current_champion.model_version is null
            or landed.model_version = current_champion.model_version
        )

),

ranked as (

    select
        champion_scores.*,
        row_number() over (
            partition by trade_id
            order by scored_at desc, _source_file desc
        ) as score_rank
    from champion_scores

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
