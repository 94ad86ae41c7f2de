{{ config(materialized='table') }}

{#
    Typed Alpha Vantage bars, the newest fetch of each (symbol, interval, bar start). Bars are
    few (one file per symbol, interval and month), so a full rebuild each run is cheap. Lines
    whose symbol, start or prices do not parse are left out here and stay in bronze_bars.
#}
with bronze as (

    select * from {{ ref('bronze_bars') }}

),

typed as (

    select
        trim(symbol) as symbol,
        trim({{ adapter.quote('interval') }}) as bar_interval,
        {{ parse_iso_utc('bar_ts_utc') }} as bar_ts,
        bar_local,
        time_zone,
        {{ dbt.safe_cast('open', warehouse_type('double')) }} as open,
        {{ dbt.safe_cast('high', warehouse_type('double')) }} as high,
        {{ dbt.safe_cast('low', warehouse_type('double')) }} as low,
        {{ dbt.safe_cast('close', warehouse_type('double')) }} as close,
        {{ dbt.safe_cast('volume', warehouse_type('double')) }} as volume,
        source,
        {{ parse_iso_utc('fetched_at') }} as fetched_at,
        _source_file,
        _ingested_at
    from bronze

),

usable as (

    select *
    from typed
    where symbol is not null
        and symbol != ''
        and bar_interval is not null
        and bar_ts is not null
        and open is not null
        and high is not null
        and low is not null
        and close is not null

),

newest_fetch as (

    select
        usable.*,
        row_number() over (
            partition by symbol, bar_interval, bar_ts
            order by fetched_at desc, _ingested_at desc, _source_file desc
        ) as fetch_rank
    from usable

),

final as (

    select
        symbol,
        bar_interval,
        bar_ts,
        {{ utc_to_local('bar_ts', var('exchange_time_zone')) }} as bar_ts_ny,
        bar_local,
        time_zone,
        open,
        high,
        low,
        close,
        volume,
        source,
        fetched_at,
        _source_file,
        _ingested_at
    from newest_fetch
    where fetch_rank = 1

)

select * from final
