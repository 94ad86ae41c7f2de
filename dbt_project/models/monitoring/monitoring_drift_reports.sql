{# Drift statistics, one row per feature per drift run; empty until the first drift run. #}
with landed as (

    {{ landed_files('monitoring', 'drift') }}

),

typed as (

    select
        cast(run_id as {{ warehouse_type('string') }}) as run_id,
        cast({{ parse_iso_utc('run_ts') }} as {{ dbt.type_timestamp() }}) as run_ts,
        cast(feature as {{ warehouse_type('string') }}) as feature,
        cast(kind as {{ warehouse_type('string') }}) as kind,
        cast(statistic_name as {{ warehouse_type('string') }}) as statistic_name,
        {{ dbt.safe_cast('statistic', 'double') }} as statistic,
        {{ dbt.safe_cast('threshold', 'double') }} as threshold,
        {{ dbt.safe_cast('drifted', 'boolean') }} as drifted,
        {{ dbt.safe_cast('reference_rows', 'bigint') }} as reference_rows,
        {{ dbt.safe_cast('current_rows', 'bigint') }} as current_rows,
        cast({{ parse_iso_utc('reference_start') }} as {{ dbt.type_timestamp() }})
            as reference_start,
        cast({{ parse_iso_utc('reference_end') }} as {{ dbt.type_timestamp() }}) as reference_end,
        cast({{ parse_iso_utc('current_start') }} as {{ dbt.type_timestamp() }}) as current_start,
        cast({{ parse_iso_utc('current_end') }} as {{ dbt.type_timestamp() }}) as current_end,
        cast(_source_file as {{ warehouse_type('string') }}) as _source_file
    from landed
    where run_id is not null

)

select * from typed
