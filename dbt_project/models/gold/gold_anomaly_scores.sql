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

    select model_version
    from (
        select
            model_version,
            row_number() over (order by run_ts desc, run_id desc) as run_rank
        from scoring_runs
        where role = 'champion'
    ) as newest_first
    where run_rank = 1

),

champion_scores as (

    select landed.*
    from landed
    where landed.trade_id is not null
      and (
          landed.model_version in (select model_version from current_champion)
          or not exists (select 1 from current_champion)
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
