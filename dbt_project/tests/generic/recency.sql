{#
    The newest value of a timestamp column is no older than `interval` `datepart`s before now
    (UTC). An empty table fails unless allow_empty is true. Meant for scheduled production
    runs, where stale data means a collector has stopped.
#}
{% test recency(model, column_name, datepart, interval, allow_empty=false) %}

with newest as (

    select max({{ column_name }}) as newest_value
    from {{ model }}

)

select newest_value
from newest
where
    {%- if allow_empty %}
    newest_value is not null and
    {%- endif %}
    coalesce(
        newest_value < {{ dbt.dateadd(datepart, -1 * interval, 'cast(' ~ dbt.current_timestamp() ~ ' as ' ~ dbt.type_timestamp() ~ ')') }},
        true
    )

{% endtest %}
