{#
    A boolean SQL expression holds on every row (rows where it is false or null fail).
    Optional `where` narrows the rows checked.
#}
{% test expression_is_true(model, expression, where_clause=none) %}

select *
from {{ model }}
where not coalesce({{ expression }}, false)
{%- if where_clause %}
  and ({{ where_clause }})
{%- endif %}

{% endtest %}
