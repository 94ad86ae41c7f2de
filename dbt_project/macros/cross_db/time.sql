{#
    Time handling. Every naive timestamp in the warehouse is UTC (the profiles pin the session
    time zone to UTC); New York wall-clock values are derived from it, DST-correct, with the
    IANA zone database of the engine.
#}

{# Epoch milliseconds (bigint) -> UTC timestamp with millisecond precision. #}
{% macro epoch_ms_to_timestamp(epoch_ms) -%}
    {{ return(adapter.dispatch('epoch_ms_to_timestamp', 'tradewatch')(epoch_ms)) }}
{%- endmacro %}

{% macro default__epoch_ms_to_timestamp(epoch_ms) -%}
    epoch_ms(cast({{ epoch_ms }} as bigint))
{%- endmacro %}

{% macro spark__epoch_ms_to_timestamp(epoch_ms) -%}
    timestamp_millis(cast({{ epoch_ms }} as bigint))
{%- endmacro %}


{# A UTC timestamp -> the wall-clock timestamp in `zone` (e.g. America/New_York). #}
{% macro utc_to_local(utc_ts, zone) -%}
    {{ return(adapter.dispatch('utc_to_local', 'tradewatch')(utc_ts, zone)) }}
{%- endmacro %}

{% macro default__utc_to_local(utc_ts, zone) -%}
    (({{ utc_ts }} at time zone 'UTC') at time zone '{{ zone }}')
{%- endmacro %}

{% macro spark__utc_to_local(utc_ts, zone) -%}
    from_utc_timestamp({{ utc_ts }}, '{{ zone }}')
{%- endmacro %}


{# A wall-clock timestamp in `zone` -> UTC (used for Alpha Vantage bars, which come in US/Eastern). #}
{% macro local_to_utc(local_ts, zone) -%}
    {{ return(adapter.dispatch('local_to_utc', 'tradewatch')(local_ts, zone)) }}
{%- endmacro %}

{% macro default__local_to_utc(local_ts, zone) -%}
    (({{ local_ts }} at time zone '{{ zone }}') at time zone 'UTC')
{%- endmacro %}

{% macro spark__local_to_utc(local_ts, zone) -%}
    to_utc_timestamp({{ local_ts }}, '{{ zone }}')
{%- endmacro %}


{# An ISO-8601 text with an offset or "Z" -> UTC timestamp; null when it does not parse. #}
{% macro parse_iso_utc(text) -%}
    {{ return(adapter.dispatch('parse_iso_utc', 'tradewatch')(text)) }}
{%- endmacro %}

{% macro default__parse_iso_utc(text) -%}
    (try_cast({{ text }} as timestamptz) at time zone 'UTC')
{%- endmacro %}

{% macro spark__parse_iso_utc(text) -%}
    {#- Spark's timestamp is session-zone based; the session zone is UTC (see profiles.yml). -#}
    try_cast({{ text }} as timestamp)
{%- endmacro %}


{# ISO day of week of a timestamp: 1 = Monday ... 7 = Sunday. #}
{% macro iso_day_of_week(ts) -%}
    {{ return(adapter.dispatch('iso_day_of_week', 'tradewatch')(ts)) }}
{%- endmacro %}

{% macro default__iso_day_of_week(ts) -%}
    cast(isodow({{ ts }}) as integer)
{%- endmacro %}

{% macro spark__iso_day_of_week(ts) -%}
    cast(extract(dow_iso from {{ ts }}) as int)
{%- endmacro %}


{# The timestamp truncated to its minute. #}
{% macro truncate_to_minute(ts) -%}
    {{ return(adapter.dispatch('truncate_to_minute', 'tradewatch')(ts)) }}
{%- endmacro %}

{% macro default__truncate_to_minute(ts) -%}
    date_trunc('minute', {{ ts }})
{%- endmacro %}

{% macro spark__truncate_to_minute(ts) -%}
    date_trunc('MINUTE', {{ ts }})
{%- endmacro %}
