{{ config(materialized='table') }}

{#
    The label store as landed: one row per line of labels/decisions/decisions-*.ndjson, every
    field as text, and a line that does not parse kept with its parse error. A table rebuilt on
    every run (the store is small: one line per analyst decision). Empty, with its columns,
    before the first decision.
#}
with landed as (

    {{ landed_files('labels', 'decisions') }}

)

select * from landed
