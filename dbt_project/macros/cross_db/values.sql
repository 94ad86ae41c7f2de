{# Value checks and JSON access that the engines spell differently. #}

{# True when a double is neither NaN nor +/-infinity (null stays null). #}
{% macro is_finite(value) -%}
    {{ return(adapter.dispatch('is_finite', 'tradewatch')(value)) }}
{%- endmacro %}

{% macro default__is_finite(value) -%}
    isfinite({{ value }})
{%- endmacro %}

{% macro spark__is_finite(value) -%}
    (not isnan({{ value }}) and abs({{ value }}) != double('infinity'))
{%- endmacro %}


{# JSON text holding a list of strings -> an array of strings; null when it is not one. #}
{% macro parse_string_array(json_text) -%}
    {{ return(adapter.dispatch('parse_string_array', 'tradewatch')(json_text)) }}
{%- endmacro %}

{% macro default__parse_string_array(json_text) -%}
    try_cast({{ json_text }} as varchar[])
{%- endmacro %}

{% macro spark__parse_string_array(json_text) -%}
    from_json({{ json_text }}, 'array<string>')
{%- endmacro %}


{# One field of a JSON object held as text, as text (null when absent). #}
{% macro json_field_text(json_text, field) -%}
    {{ return(adapter.dispatch('json_field_text', 'tradewatch')(json_text, field)) }}
{%- endmacro %}

{% macro default__json_field_text(json_text, field) -%}
    json_extract_string({{ json_text }}, '$.{{ field }}')
{%- endmacro %}

{% macro spark__json_field_text(json_text, field) -%}
    get_json_object({{ json_text }}, '$.{{ field }}')
{%- endmacro %}
