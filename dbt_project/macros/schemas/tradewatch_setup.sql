{#
    `dbt run-operation tradewatch_setup --target databricks`: the Unity Catalog objects
    Tradewatch needs, created if missing (safe to run again):

    - the catalog (DATABRICKS_CATALOG) and its schemas: the target's schema for bronze, silver
      and intermediate models, and `gold` and `monitoring` (see generate_schema_name);
    - the volume that holds the data home (TRADEWATCH_VOLUME, default
      /Volumes/<catalog>/<schema>/tradewatch);
    - read access for the analysts' group (`analysts`, default `tradewatch_analysts`) to gold
      and monitoring: USE CATALOG, USE SCHEMA and SELECT, nothing on bronze, silver or the volume.

    The folders inside the volume are made by the data home's Files API client the first time
    a file is written (a volume has no SQL statement that makes a folder).

    `dry_run: true` prints the statements instead of running them; a test compiles them
    offline.
#}
{% macro tradewatch_setup(analysts='tradewatch_analysts', dry_run=false) -%}
    {%- set statements = tradewatch_setup_statements(analysts) -%}
    {%- for statement in statements -%}
        {%- if dry_run -%}
            {{ print(statement ~ ';') }}
        {%- else -%}
            {{ log('tradewatch_setup: ' ~ statement, info=true) }}
            {%- do run_query(statement) -%}
        {%- endif -%}
    {%- endfor -%}
{%- endmacro %}

{% macro tradewatch_setup_statements(analysts) -%}
    {%- set catalog = env_var('DATABRICKS_CATALOG', 'tradewatch') -%}
    {%- set schema = env_var('DATABRICKS_SCHEMA', 'main') -%}
    {%- set volume_path = data_home().rstrip('/').split('/') -%}
    {%- if volume_path | length < 5 or volume_path[1] != 'Volumes' -%}
        {{ exceptions.raise_compiler_error(
            'TRADEWATCH_VOLUME must be /Volumes/<catalog>/<schema>/<volume>, not '
            ~ data_home()) }}
    {%- endif -%}
    {%- set volume = volume_path[2:5] -%}
    {%- set public_schemas = ['gold', 'monitoring'] -%}
    {%- set statements = ['create catalog if not exists `' ~ catalog ~ '`'] -%}
    {%- for name in [schema] + public_schemas -%}
        {%- do statements.append('create schema if not exists `' ~ catalog ~ '`.`' ~ name ~ '`') -%}
    {%- endfor -%}
    {%- if volume[0] != catalog -%}
        {%- do statements.append('create catalog if not exists `' ~ volume[0] ~ '`') -%}
    {%- endif -%}
    {%- if volume[0:2] != [catalog, schema] -%}
        {%- do statements.append('create schema if not exists `' ~ volume[0] ~ '`.`' ~ volume[1] ~ '`') -%}
    {%- endif -%}
    {%- do statements.append('create volume if not exists `' ~ volume | join('`.`') ~ '`') -%}
    {%- do statements.append('grant use catalog on catalog `' ~ catalog ~ '` to `' ~ analysts ~ '`') -%}
    {%- for name in public_schemas -%}
        {%- do statements.append('grant use schema, select on schema `' ~ catalog ~ '`.`' ~ name
            ~ '` to `' ~ analysts ~ '`') -%}
    {%- endfor -%}
    {{ return(statements) }}
{%- endmacro %}
