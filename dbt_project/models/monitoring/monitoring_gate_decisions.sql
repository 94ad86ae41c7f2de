{#
    The champion/challenger gate's decisions, one row per decision, with both sides' metrics.
    The metrics stay JSON text (their set grows with the models); the ones the gate weighs are
    also columns: the primary metric's comparison (both values, the difference and its bootstrap
    interval), the event-level figures analysts read (event average precision, event recall,
    false alerts per day, median time to detect) and trade-level PR-AUC and ROC-AUC. Decisions
    written before the gate judged on events have nulls in the event-level columns.
#}
with events as (

    select * from {{ ref('monitoring_audit_events') }}

),

decisions as (

    select
        event_id,
        event_ts as decided_at,
        {{ json_field_text('payload', 'decision') }} as decision,
        {{ json_field_text('payload', 'reason_code') }} as reason_code,
        {{ json_field_text('payload', 'reason') }} as reason,
        {{ json_field_text('payload', 'champion_version') }} as champion_version,
        {{ json_field_text('payload', 'challenger_version') }} as challenger_version,
        {{ json_field_text('payload', 'champion_metrics') }} as champion_metrics,
        {{ json_field_text('payload', 'challenger_metrics') }} as challenger_metrics,
        {{ json_field_text('payload', 'primary_metric') }} as primary_metric,
        {{ json_field_text('payload', 'comparison') }} as comparison,
        {{ json_field_text('payload', 'events') }} as events_in_window,
        {{ json_field_text('payload', 'min_events') }} as min_events,
        {{ json_field_text('payload', 'min_improvement_threshold') }} as min_improvement_threshold,
        {{ json_field_text('payload', 'test_window_start') }} as test_window_start,
        {{ json_field_text('payload', 'test_window_end') }} as test_window_end
    from events
    where kind = 'gate_decision'

),

typed as (

    select
        cast(event_id as {{ warehouse_type('string') }}) as event_id,
        cast(decided_at as {{ dbt.type_timestamp() }}) as decided_at,
        cast(decision as {{ warehouse_type('string') }}) as decision,
        cast(reason_code as {{ warehouse_type('string') }}) as reason_code,
        cast(reason as {{ warehouse_type('string') }}) as reason,
        cast(champion_version as {{ warehouse_type('string') }}) as champion_version,
        cast(challenger_version as {{ warehouse_type('string') }}) as challenger_version,
        cast(primary_metric as {{ warehouse_type('string') }}) as primary_metric,
        {{ dbt.safe_cast(json_field_text('comparison', 'champion'), 'double') }}
            as champion_primary,
        {{ dbt.safe_cast(json_field_text('comparison', 'challenger'), 'double') }}
            as challenger_primary,
        {{ dbt.safe_cast(json_field_text('comparison', 'difference'), 'double') }}
            as primary_difference,
        {{ dbt.safe_cast(json_field_text('comparison', 'low'), 'double') }}
            as primary_difference_low,
        {{ dbt.safe_cast(json_field_text('comparison', 'high'), 'double') }}
            as primary_difference_high,
        {{ dbt.safe_cast(json_field_text('comparison', 'confidence'), 'double') }}
            as interval_confidence,
        {{ dbt.safe_cast(json_field_text('comparison', 'resamples'), 'bigint') }}
            as bootstrap_resamples,
        {{ dbt.safe_cast('min_improvement_threshold', 'double') }} as min_improvement_threshold,
        {{ dbt.safe_cast('events_in_window', 'bigint') }} as events_in_window,
        {{ dbt.safe_cast('min_events', 'bigint') }} as min_events,
        {{ dbt.safe_cast(
            json_field_text('champion_metrics', 'event_average_precision'), 'double'
        ) }}
            as champion_event_average_precision,
        {{ dbt.safe_cast(
            json_field_text('challenger_metrics', 'event_average_precision'), 'double'
        ) }}
            as challenger_event_average_precision,
        {{ dbt.safe_cast(json_field_text('champion_metrics', 'event_recall'), 'double') }}
            as champion_event_recall,
        {{ dbt.safe_cast(json_field_text('challenger_metrics', 'event_recall'), 'double') }}
            as challenger_event_recall,
        {{ dbt.safe_cast(json_field_text('champion_metrics', 'false_alerts_per_day'), 'double') }}
            as champion_false_alerts_per_day,
        {{ dbt.safe_cast(json_field_text('challenger_metrics', 'false_alerts_per_day'), 'double') }}
            as challenger_false_alerts_per_day,
        {{ dbt.safe_cast(
            json_field_text('champion_metrics', 'median_time_to_detect_s'), 'double'
        ) }}
            as champion_median_time_to_detect_s,
        {{ dbt.safe_cast(
            json_field_text('challenger_metrics', 'median_time_to_detect_s'), 'double'
        ) }}
            as challenger_median_time_to_detect_s,
        {{ dbt.safe_cast(json_field_text('champion_metrics', 'pr_auc'), 'double') }}
            as champion_pr_auc,
        {{ dbt.safe_cast(json_field_text('challenger_metrics', 'pr_auc'), 'double') }}
            as challenger_pr_auc,
        {{ dbt.safe_cast(json_field_text('champion_metrics', 'roc_auc'), 'double') }}
            as champion_roc_auc,
        {{ dbt.safe_cast(json_field_text('challenger_metrics', 'roc_auc'), 'double') }}
            as challenger_roc_auc,
        cast(champion_metrics as {{ warehouse_type('string') }}) as champion_metrics,
        cast(challenger_metrics as {{ warehouse_type('string') }}) as challenger_metrics,
        cast({{ parse_iso_utc('test_window_start') }} as {{ dbt.type_timestamp() }})
            as test_window_start,
        cast({{ parse_iso_utc('test_window_end') }} as {{ dbt.type_timestamp() }})
            as test_window_end
    from decisions

)

select * from typed
