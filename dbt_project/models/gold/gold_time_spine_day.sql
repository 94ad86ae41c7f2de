{#
    One row per calendar day from 2020-01-01 to 2035-12-31: the time spine the semantic layer
    (MetricFlow) joins metrics to by day. Public because `mf query` reads it from the analysts'
    database like every other model it uses. Built from a series of day numbers, not
    dbt.date_spine, which queries the warehouse at compile time (the Databricks SQL is
    compiled offline).
#}

{%- set first_day = "cast('2020-01-01' as date)" -%}
{%- set days = 5844 -%}  {#- 2020-01-01 .. 2035-12-31 -#}

with numbers as (

    {{ dbt.generate_series(days) }}

),

final as (

    select
        cast({{ dbt.dateadd('day', 'generated_number - 1', first_day) }} as date) as date_day
    from numbers

)

select * from final
