{{ config(on_schema_change='append_new_columns') }}

{#
    Append-only. A re-fetch replaces a month's file in place under the same name, so files are
    not skipped by name: a bar file's rows are appended when that (file, fetched_at) pair is not
    here yet. Re-running on unchanged files adds nothing; a re-fetched month is appended anew
    and silver keeps the newest fetch.
#}
with landed as (

    {{ landed_files('landing', 'bars') }}

),

new_fetches as (

    select landed.*
    from landed
    {% if is_incremental() %}
    where not exists (
        select 1
        from {{ this }} as ingested
        where ingested._source_file = landed._source_file
          and coalesce(ingested.fetched_at, '') = coalesce(landed.fetched_at, '')
    )
    {% endif %}

),

stamped as (

    select
        symbol,
        {{ adapter.quote('interval') }},
        bar_ts_utc,
        bar_local,
        time_zone,
        open,
        high,
        low,
        close,
        volume,
        source,
        fetched_at,
        _line_number,
        _parse_error,
        _raw_line,
        _source_file,
        cast({{ dbt.current_timestamp() }} as {{ dbt.type_timestamp() }}) as _ingested_at
    from new_fetches

)

select * from stamped
