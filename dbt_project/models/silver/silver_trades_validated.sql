{{ config(materialized='view') }}

{#
    Every bronze row, typed, with the first quarantine rule it breaks (null when it breaks
    none). The single definition of the rules: silver_trades takes the rows with no rule,
    silver_trades_quarantine the rest, and the reconciliation test counts both against bronze.
#}
with bronze as (

    select * from {{ ref('bronze_trades') }}

),

symbol_reference as (

    select * from {{ ref('symbol_reference') }}

),

asset_classes as (

    select * from {{ ref('asset_classes') }}

),

calendar_days as (

    select * from {{ ref('market_calendar_days') }}

),

typed as (

    select
        trade_id as raw_trade_id,
        symbol as raw_symbol,
        price as raw_price,
        volume as raw_volume,
        trade_ts_ms as raw_trade_ts_ms,
        conditions as raw_conditions,
        exchange as raw_exchange,
        received_at as raw_received_at,
        source as raw_source,
        trim(trade_id) as trade_id,
        trim(symbol) as symbol,
        {{ dbt.safe_cast('price', warehouse_type('double')) }} as price,
        {{ dbt.safe_cast('volume', warehouse_type('double')) }} as volume,
        {{ dbt.safe_cast('trade_ts_ms', warehouse_type('double')) }} as trade_ts_ms_number,
        {{ parse_string_array('conditions') }} as conditions,
        nullif(trim(exchange), '') as exchange,
        {{ parse_iso_utc('received_at') }} as received_at,
        source,
        _line_number,
        _parse_error,
        _raw_line,
        _source_file,
        _ingested_at
    from bronze

),

checked as (

    select
        typed.*,
        case
            when _parse_error is not null then 'unparseable_line'
            when trade_id is null or trade_id = '' then 'missing_trade_id'
            when symbol is null or symbol = '' then 'empty_symbol'
            when raw_trade_ts_ms is null or trim(raw_trade_ts_ms) = '' then 'missing_timestamp'
            when trade_ts_ms_number is null
                or not {{ is_finite('trade_ts_ms_number') }} then 'uncastable_timestamp'
            when trade_ts_ms_number < 0
                or trade_ts_ms_number > 253402300799999 then 'timestamp_out_of_range'
            when trade_ts_ms_number != floor(trade_ts_ms_number) then 'uncastable_timestamp'
            when raw_price is null then 'missing_price'
            when price is null then 'uncastable_price'
            when not {{ is_finite('price') }} then 'price_not_finite'
            when price <= 0 then 'price_not_positive'
            when raw_volume is null then 'missing_volume'
            when volume is null then 'uncastable_volume'
            when not {{ is_finite('volume') }} then 'volume_not_finite'
            when volume < 0 then 'negative_volume'
            when raw_conditions is not null and conditions is null then 'uncastable_conditions'
            when raw_received_at is not null and received_at is null then 'uncastable_received_at'
        end as quarantine_rule
    from typed

),

enriched as (

    select
        checked.*,
        case
            when quarantine_rule is null then cast(trade_ts_ms_number as {{ dbt.type_bigint() }})
        end as trade_ts_ms
    from checked

),

localized as (

    select
        enriched.*,
        {{ epoch_ms_to_timestamp('trade_ts_ms') }} as trade_ts
    from enriched

),

with_local_time as (

    select
        localized.*,
        {{ utc_to_local('trade_ts', var('exchange_time_zone')) }} as ts_ny
    from localized

),

referenced as (

    {#- A symbol without a reference row is treated as a US equity (the flows refuse to collect
        one). -#}
    select
        with_local_time.*,
        cast(with_local_time.ts_ny as date) as trade_date_ny,
        coalesce(symbol_reference.asset_class, 'us_equity') as asset_class,
        coalesce(symbol_reference.calendar, 'XNYS') as market_calendar
    from with_local_time
    left join symbol_reference
        on with_local_time.symbol = symbol_reference.symbol

),

classified as (

    select
        referenced.*,
        {{ session_type(
            'referenced.ts_ny',
            calendar='referenced.market_calendar',
            day_kind='calendar_days.day_kind',
            regular_close_minute='calendar_days.regular_close_minute',
            after_hours_close_minute='calendar_days.after_hours_close_minute',
        ) }} as session_type,
        {{ trade_type(
            'referenced.volume',
            price='referenced.price',
            size_measure='asset_classes.size_measure',
            standard_from='asset_classes.standard_from',
            block_from='asset_classes.block_from',
        ) }} as trade_type
    from referenced
    left join asset_classes
        on referenced.asset_class = asset_classes.asset_class
    left join calendar_days
        on referenced.market_calendar = calendar_days.calendar
        and referenced.trade_date_ny = calendar_days.session_date

)

select * from classified
