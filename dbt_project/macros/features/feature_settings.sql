{#
    Window lengths of the trade features: the vars of dbt_project.yml (their defaults, the
    documented definitions of _gold__features_docs.md), which the flows override with the
    `features` block of project_config.yml. Changing one changes the meaning of the column, so
    rebuild gold with --full-refresh afterwards.
#}
{% macro feature_setting(name) -%}
    {%- set value = var(name, none) -%}
    {%- if value is none or not (name.endswith('_trades') or name.endswith('_seconds')) -%}
        {{ exceptions.raise_compiler_error("tradewatch: unknown feature setting '" ~ name ~ "': the feature windows are the vars of dbt_project.yml ending in _trades or _seconds") }}
    {%- endif -%}
    {{ return(value | int) }}
{%- endmacro %}
