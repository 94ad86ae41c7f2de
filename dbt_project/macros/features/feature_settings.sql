{#
    Window lengths of the trade features. The defaults are the documented definitions
    (_gold__features_docs.md); the flows may pass the `features` block of project_config.yml as
    vars. Changing one changes the meaning of
    the column, so rebuild gold with --full-refresh afterwards.
#}
{% macro feature_setting(name) -%}
    {%- set defaults = {
        'zscore_window_trades': 50,
        'volatility_window_seconds': 3600,
        'intensity_window_seconds': 60,
        'bollinger_window_trades': 20,
        'roll_window_trades': 100,
        'volume_median_window_trades': 100,
        'rate_window_seconds': 10,
        'rate_baseline_seconds': 600,
        'same_print_window_seconds': 2,
    } -%}
    {%- if name not in defaults -%}
        {{ exceptions.raise_compiler_error("tradewatch: unknown feature setting '" ~ name ~ "'; known: " ~ (defaults.keys() | join(', '))) }}
    {%- endif -%}
    {{ return(var(name, defaults[name]) | int) }}
{%- endmacro %}
