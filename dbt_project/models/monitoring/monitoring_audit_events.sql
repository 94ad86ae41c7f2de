{# Every audit event, typed; empty while there is no audit log. #}
with landed as (

    {{ landed_files('monitoring', 'audit') }}

),

typed as (

    select
        cast(event_id as {{ warehouse_type('string') }}) as event_id,
        cast({{ parse_iso_utc('event_ts') }} as {{ dbt.type_timestamp() }}) as event_ts,
        cast(kind as {{ warehouse_type('string') }}) as kind,
        cast(payload as {{ warehouse_type('string') }}) as payload,
        cast(_source_file as {{ warehouse_type('string') }}) as _source_file
    from landed
    where event_id is not null

)

select * from typed
