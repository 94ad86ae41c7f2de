{{ config(materialized='table') }}

{#
    The simulator's answer key as landed: one row per line of
    simulator/ground_truth/trades.ndjson (re-runs append the same lines again), every field as
    text. A table rebuilt on every run, not appended per file like the other bronze models:
    the simulator appends to one file in place. Empty, with its columns, on a real feed.
#}
with landed as (

    {{ landed_files('simulator', 'ground_truth_trades') }}

)

select * from landed
