{#
    Append-only: each run reads only the landed files not yet in this table (files are never
    changed once landed), so re-running on the same files adds nothing.
#}
with landed as (

    {{ landed_files('landing', 'trades', skip_files_in=(this if is_incremental() else none)) }}

),

stamped as (

    select
        trade_id,
        symbol,
        price,
        volume,
        trade_ts_ms,
        conditions,
        exchange,
        received_at,
        source,
        _source_file,
        cast({{ dbt.current_timestamp() }} as {{ dbt.type_timestamp() }}) as _ingested_at
    from landed

)

select * from stamped
