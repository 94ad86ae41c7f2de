{#
    One row per trade of gold_trade_features: which rules of the surveillance deck fire on it,
    how many, and the first in deck order. The rules read the gold features (and, for
    pump-and-dump, the symbol's prices over two trailing time windows); their thresholds are
    the rule_* vars of dbt_project.yml (macros/rules/rule_deck.sql), documented in
    _gold__rules.yml and pinned by its unit tests.

    The deck is a baseline the models must beat (the tournament's `rules` entry) and never a
    training label. Rebuilt on every run: a changed threshold applies to the whole history.
#}

{%- set band_margin = rule_setting('rule_price_spike_band_margin') -%}
{%- set volume_multiple = rule_setting('rule_volume_burst_median_multiple') -%}
{%- set identical_prints = rule_setting('rule_wash_cluster_identical_prints') -%}
{%- set run_up_pct = rule_setting('rule_pump_run_up_pct') -%}
{%- set run_up_ms = rule_setting('rule_pump_run_up_seconds') * 1000 -%}
{%- set reversal_pct = rule_setting('rule_pump_reversal_pct') -%}
{%- set reversal_ms = rule_setting('rule_pump_reversal_seconds') * 1000 -%}
{%- set smoothing_trades = symbol_trade_order() ~ ' rows between '
    ~ (rule_setting('rule_pump_median_trades') | int - 1) ~ ' preceding and current row' -%}
{%- set rate_ratio = rule_setting('rule_intensity_rate_ratio') -%}
{%- set min_trades_1m = rule_setting('rule_intensity_min_trades_1m') -%}

with features as (

    select
        trade_id,
        symbol,
        trade_ts,
        trade_ts_ms,
        price,
        bollinger_pct_b,
        volume_to_median_100,
        same_print_count_2s,
        trade_rate_ratio_10s,
        trade_intensity_1m
    from {{ ref('gold_trade_features') }}

),

smoothed_prices as (

    -- the median price of the symbol's last trades: one price spike (a single print far off
    -- the market, the price_spike rule's business) barely moves it, a drift of minutes does
    select
        trade_id,
        symbol,
        trade_ts_ms,
        {{ window_median('price', smoothing_trades) }} as smoothed_price
    from features

),

run_up_lows as (

    -- the lowest smoothed price of the symbol's trailing run-up window
    select
        trade_id,
        symbol,
        trade_ts_ms,
        smoothed_price,
        min(smoothed_price) over ({{ symbol_trailing_time(run_up_ms) }}) as run_up_low
    from smoothed_prices

),

run_ups as (

    select
        trade_id,
        symbol,
        trade_ts_ms,
        smoothed_price,
        (smoothed_price - run_up_low) / run_up_low * 100 as run_up_pct
    from run_up_lows

),

reversal_windows as (

    -- over the trailing reversal window: the largest run-up reached and the highest price
    select
        trade_id,
        smoothed_price,
        max(run_up_pct) over ({{ symbol_trailing_time(reversal_ms) }}) as pump_run_up_pct,
        max(smoothed_price) over ({{ symbol_trailing_time(reversal_ms) }}) as reversal_high
    from run_ups

),

reversals as (

    select
        trade_id,
        pump_run_up_pct,
        (reversal_high - smoothed_price) / reversal_high * 100 as pump_reversal_pct
    from reversal_windows

),

flags as (

    select
        features.trade_id,
        features.symbol,
        features.trade_ts,
        features.trade_ts_ms,
        coalesce(
            features.bollinger_pct_b < -{{ band_margin }}
            or features.bollinger_pct_b > 1 + {{ band_margin }},
            false
        ) as rule_price_spike,
        coalesce(features.volume_to_median_100 >= {{ volume_multiple }}, false)
            as rule_volume_burst,
        coalesce(features.same_print_count_2s >= {{ identical_prints }}, false)
            as rule_wash_cluster,
        coalesce(
            reversals.pump_run_up_pct >= {{ run_up_pct }}
            and reversals.pump_reversal_pct >= {{ reversal_pct }},
            false
        ) as rule_pump_and_dump,
        coalesce(
            features.trade_rate_ratio_10s >= {{ rate_ratio }}
            and features.trade_intensity_1m >= {{ min_trades_1m }},
            false
        ) as rule_intensity_burst,
        reversals.pump_run_up_pct,
        reversals.pump_reversal_pct
    from features
    inner join reversals
        on features.trade_id = reversals.trade_id

),

counted as (

    select
        flags.*,
        (
            {%- for rule in rule_names() %}
            case when rule_{{ rule }} then 1 else 0 end{{ ' +' if not loop.last }}
            {%- endfor %}
        ) as rules_fired,
        case
            {%- for rule in rule_names() %}
            when rule_{{ rule }} then '{{ rule }}'
            {%- endfor %}
        end as first_rule
    from flags

),

final as (

    select
        cast(trade_id as {{ warehouse_type('string') }}) as trade_id,
        cast(symbol as {{ warehouse_type('string') }}) as symbol,
        trade_ts,
        cast(trade_ts_ms as bigint) as trade_ts_ms,
        {%- for rule in rule_names() %}
        rule_{{ rule }},
        {%- endfor %}
        cast(rules_fired as integer) as rules_fired,
        cast(rules_fired as double) / {{ rule_names() | length }} as rule_score,
        cast(first_rule as {{ warehouse_type('string') }}) as first_rule,
        cast(pump_run_up_pct as double) as pump_run_up_pct,
        cast(pump_reversal_pct as double) as pump_reversal_pct
    from counted

)

select * from final
