{#
    Where the files that Python writes (landing, scores, monitoring) live.
    Locally it is the data home (TRADEWATCH_HOME, an absolute path set by the flows; relative
    paths would follow the process's working directory). On Databricks the same tree lives in
    a Unity Catalog volume, so databricks__ differs from spark__ here on purpose.
#}
{% macro data_home() -%}
    {{ return(adapter.dispatch('data_home', 'tradewatch')()) }}
{%- endmacro %}

{% macro default__data_home() -%}
    {{ return(env_var('TRADEWATCH_HOME', 'data') | replace('\\', '/') | trim) }}
{%- endmacro %}

{% macro databricks__data_home() -%}
    {%- set default_volume = '/Volumes/' ~ env_var('DATABRICKS_CATALOG', 'tradewatch') ~ '/'
        ~ env_var('DATABRICKS_SCHEMA', 'main') ~ '/tradewatch' -%}
    {{ return(env_var('TRADEWATCH_VOLUME', default_volume) | trim) }}
{%- endmacro %}
