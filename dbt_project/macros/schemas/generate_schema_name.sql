{#
    Which schema a model is built in (dbt calls this for every node).

    Gold and monitoring models live in schemas of their own, named as configured in
    dbt_project.yml (`gold`, `monitoring`) on every target, so that a table's layer says where
    it is: core/layers.py maps layers to schemas for every Python reader. Bronze, silver, seeds
    and intermediate models stay in the target's schema (`main` on DuckDB). Intermediate
    models (`int_*`) sit in the gold folder beside the models they feed, but they are not gold:
    they stay in the target's schema with the other internal layers.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none or node.name.startswith('int_') -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
