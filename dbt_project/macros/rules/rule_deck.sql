{#
    The surveillance rule deck's thresholds: the vars of dbt_project.yml whose names start with
    `rule_` (their defaults, documented in _gold__rules.yml), which the flows override with the
    `rules` block of project_config.yml. gold_rule_flags is rebuilt on every run, so a changed
    threshold takes effect on the next build.
#}
{% macro rule_setting(name) -%}
    {%- set value = var(name, none) -%}
    {%- if value is none or not name.startswith('rule_') -%}
        {{ exceptions.raise_compiler_error("tradewatch: unknown rule setting '" ~ name ~ "': the rule deck's thresholds are the vars of dbt_project.yml starting with rule_") }}
    {%- endif -%}
    {{ return(value | float) }}
{%- endmacro %}


{#
    The rules of the deck, in the order they are tried: the first that fires names the trade's
    first_rule. Each is a boolean column rule_<name> of gold_rule_flags.
#}
{% macro rule_names() -%}
    {{ return(['price_spike', 'volume_burst', 'wash_cluster', 'pump_and_dump', 'intensity_burst']) }}
{%- endmacro %}


{#
    The symbol's trades from `window_ms` milliseconds before the current one's millisecond up
    to the end of it (a time-range frame: trades sharing the millisecond are one instant here).
    Range frames over the epoch milliseconds read the same on DuckDB, Spark and Databricks.
#}
{% macro symbol_trailing_time(window_ms) -%}
    partition by symbol order by trade_ts_ms range between {{ window_ms | int }} preceding and current row
{%- endmacro %}
