{{ config(on_schema_change='append_new_columns') }}

{#
    Append-only: each run reads only the landed files not yet in this table (files are never
    changed once landed), so re-running on the same files adds nothing. A line that does not
    parse is kept as a row with its file, line number, the reason and the raw text, so that
    silver quarantines it and the build goes on.
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
        _line_number,
        _parse_error,
        _raw_line,
        _source_file,
        cast({{ dbt.current_timestamp() }} as {{ dbt.type_timestamp() }}) as _ingested_at
    from landed

)

select * from stamped
