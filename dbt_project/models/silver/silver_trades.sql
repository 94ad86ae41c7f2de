{{
    config(
        unique_key='trade_id',
        incremental_strategy=keyed_incremental_strategy(),
    )
}}

{#
    The first copy of each trade_id wins: earliest ingested, then by file name. Later copies
    (a replayed message, the same file landed twice) are duplicates; the reconciliation test
    accounts for them.
#}
with validated as (

    select * from {{ ref('silver_trades_validated') }}

),

new_valid_rows as (

    select *
    from validated
    where quarantine_rule is null
    {% if is_incremental() %}
      and _ingested_at > (select coalesce(max(_ingested_at), {{ before_all_data() }}) from {{ this }})
      and trade_id not in (select trade_id from {{ this }})
    {% endif %}

),

ranked as (

    select
        new_valid_rows.*,
        row_number() over (
            partition by trade_id
            order by _ingested_at, _source_file, received_at, raw_price, raw_volume
        ) as copy_number
    from new_valid_rows

),

deduplicated as (

    select
        trade_id,
        symbol,
        price,
        volume,
        trade_ts,
        trade_ts_ms,
        conditions,
        exchange,
        received_at,
        source,
        trade_date_ny,
        ts_ny,
        asset_class,
        market_calendar,
        session_type,
        trade_type,
        _source_file,
        _ingested_at
    from ranked
    where copy_number = 1

)

select * from deduplicated
