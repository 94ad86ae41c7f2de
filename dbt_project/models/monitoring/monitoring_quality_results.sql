{# Data-quality results, one row per expectation per checkpoint run; empty until the first run. #}
with landed as (

    {{ landed_files('monitoring', 'quality') }}

),

typed as (

    select
        cast(run_id as {{ warehouse_type('string') }}) as run_id,
        cast({{ parse_iso_utc('run_ts') }} as {{ dbt.type_timestamp() }}) as run_ts,
        cast(suite as {{ warehouse_type('string') }}) as suite,
        cast(expectation as {{ warehouse_type('string') }}) as expectation,
        cast({{ adapter.quote('column') }} as {{ warehouse_type('string') }}) as column_name,
        cast(severity as {{ warehouse_type('string') }}) as severity,
        {{ dbt.safe_cast('success', 'boolean') }} as success,
        cast(observed_value as {{ warehouse_type('string') }}) as observed_value,
        cast(details as {{ warehouse_type('string') }}) as details,
        cast(_source_file as {{ warehouse_type('string') }}) as _source_file
    from landed
    where run_id is not null

)

select * from typed
