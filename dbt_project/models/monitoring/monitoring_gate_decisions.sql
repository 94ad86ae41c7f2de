{#
    The champion/challenger gate's decisions, one row per decision, with both sides' metrics.
    The metrics stay JSON text (their set grows with the models); PR-AUC and ROC-AUC, the ones
    the gate weighs first, are also columns.
#}
with events as (

    select * from {{ ref('monitoring_audit_events') }}

),

decisions as (

    select
        event_id,
        event_ts as decided_at,
        {{ json_field_text('payload', 'decision') }} as decision,
        {{ json_field_text('payload', 'reason') }} as reason,
        {{ json_field_text('payload', 'champion_version') }} as champion_version,
        {{ json_field_text('payload', 'challenger_version') }} as challenger_version,
        {{ json_field_text('payload', 'champion_metrics') }} as champion_metrics,
        {{ json_field_text('payload', 'challenger_metrics') }} as challenger_metrics,
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
        cast(reason as {{ warehouse_type('string') }}) as reason,
        cast(champion_version as {{ warehouse_type('string') }}) as champion_version,
        cast(challenger_version as {{ warehouse_type('string') }}) as challenger_version,
        {{ dbt.safe_cast(json_field_text('champion_metrics', 'pr_auc'), 'double') }} as champion_pr_auc,
        {{ dbt.safe_cast(json_field_text('challenger_metrics', 'pr_auc'), 'double') }} as challenger_pr_auc,
        {{ dbt.safe_cast(json_field_text('champion_metrics', 'roc_auc'), 'double') }} as champion_roc_auc,
        {{ dbt.safe_cast(json_field_text('challenger_metrics', 'roc_auc'), 'double') }} as challenger_roc_auc,
        cast(champion_metrics as {{ warehouse_type('string') }}) as champion_metrics,
        cast(challenger_metrics as {{ warehouse_type('string') }}) as challenger_metrics,
        cast({{ parse_iso_utc('test_window_start') }} as {{ dbt.type_timestamp() }}) as test_window_start,
        cast({{ parse_iso_utc('test_window_end') }} as {{ dbt.type_timestamp() }}) as test_window_end
    from decisions

)

select * from typed
