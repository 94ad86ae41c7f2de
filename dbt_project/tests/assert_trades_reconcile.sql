{#
    Every bronze trade row is accounted for exactly once:
        bronze = silver + quarantine + duplicates
    where duplicates are the extra copies of valid trade_ids (valid rows minus distinct valid
    trade_ids, counted from bronze through the one definition of the rules). A row lost or
    doubled by an incremental run shows up here. Returns one row, with the counts, on failure.
#}
with bronze as (

    select count(*) as bronze_rows from {{ ref('bronze_trades') }}

),

validated as (

    select
        sum(case when quarantine_rule is null then 1 else 0 end) as valid_rows,
        count(distinct case when quarantine_rule is null then trade_id end)
            as distinct_valid_trade_ids
    from {{ ref('silver_trades_validated') }}

),

silver as (

    select count(*) as silver_rows from {{ ref('silver_trades') }}

),

quarantine as (

    select count(*) as quarantine_rows from {{ ref('silver_trades_quarantine') }}

),

accounted as (

    select
        bronze.bronze_rows,
        silver.silver_rows,
        quarantine.quarantine_rows,
        coalesce(validated.valid_rows, 0) - validated.distinct_valid_trade_ids as duplicate_rows
    from bronze
    cross join validated
    cross join silver
    cross join quarantine

)

select *
from accounted
where bronze_rows != silver_rows + quarantine_rows + duplicate_rows
