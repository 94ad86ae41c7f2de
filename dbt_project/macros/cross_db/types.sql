{#
    Logical column types used in YAML (sources, monitoring files) mapped to each warehouse's
    spelling. One place for the mapping, so a source declares its columns once.
#}
{% macro warehouse_type(logical_type) -%}
    {{ return(adapter.dispatch('warehouse_type', 'tradewatch')(logical_type)) }}
{%- endmacro %}

{% macro default__warehouse_type(logical_type) -%}
    {%- set types = {
        'string': 'varchar',
        'double': 'double',
        'bigint': 'bigint',
        'integer': 'integer',
        'boolean': 'boolean',
        'timestamp': 'timestamp',
        'date': 'date',
        'string_array': 'varchar[]',
    } -%}
    {{ return(types[logical_type | lower]) }}
{%- endmacro %}

{% macro spark__warehouse_type(logical_type) -%}
    {%- set types = {
        'string': 'string',
        'double': 'double',
        'bigint': 'bigint',
        'integer': 'int',
        'boolean': 'boolean',
        'timestamp': 'timestamp',
        'date': 'date',
        'string_array': 'array<string>',
    } -%}
    {{ return(types[logical_type | lower]) }}
{%- endmacro %}
