{# The model has at least one row (for tables that must never be empty once data landed). #}
{% test at_least_one_row(model, where_clause=none) %}

select 'no rows' as problem
from (
    select count(*) as row_count
    from {{ model }}
    {%- if where_clause %}
    where {{ where_clause }}
    {%- endif %}
) as counted
where row_count = 0

{% endtest %}
