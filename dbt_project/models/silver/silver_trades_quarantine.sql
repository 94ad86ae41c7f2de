{{ config(incremental_strategy='append', on_schema_change='append_new_columns') }}

{#
    Append-only: each run adds the newly ingested bronze rows that broke a rule. A landed line
    that did not parse arrives with its line number, the reason and its raw text.
#}
with validated as (

    select * from {{ ref('silver_trades_validated') }}

),

rejected as (

    select
        raw_trade_id as trade_id,
        raw_symbol as symbol,
        raw_price as price,
        raw_volume as volume,
        raw_trade_ts_ms as trade_ts_ms,
        raw_conditions as conditions,
        raw_exchange as exchange,
        raw_received_at as received_at,
        raw_source as source,
        quarantine_rule,
        _line_number as line_number,
        _parse_error as parse_error,
        _raw_line as raw_line,
        _source_file,
        _ingested_at
    from validated
    where quarantine_rule is not null
    {% if is_incremental() %}
      and _ingested_at > (select coalesce(max(_ingested_at), {{ before_all_data() }}) from {{ this }})
    {% endif %}

)

select * from rejected
