{#
    The analysts' labels, one row per trade: the decisions of the label store (labels/decisions/,
    written by `tradewatch review` and the review page) and the analyst_labels seed (bulk
    imports of labels from elsewhere), the latest per trade by when it was decided. A store file
    with any line that does not parse or is not a whole, valid decision is left out as a whole
    (flows/review.py names it): a bad file changes no label.
#}

with landed_decisions as (

    select
        decision_id,
        trade_id,
        decision,
        is_anomaly,
        anomaly_kind,
        reviewer,
        reason,
        decided_at,
        _parse_error,
        _source_file
    from {{ ref('bronze_label_decisions') }}

),

typed_decisions as (

    select
        decision_id,
        trade_id,
        decision,
        {{ dbt.safe_cast('is_anomaly', 'boolean') }} as is_anomaly,
        nullif(trim(anomaly_kind), '') as anomaly_kind,
        reviewer,
        reason,
        {{ parse_iso_utc('decided_at') }} as decided_at,
        _parse_error,
        _source_file
    from landed_decisions

),

malformed_files as (

    select distinct _source_file
    from typed_decisions
    where
        _parse_error is not null
        or decision_id is null
        or trade_id is null
        or decided_at is null
        or is_anomaly is null
        or coalesce(decision, '') not in ('confirm', 'dismiss')
        or (decision = 'confirm') != is_anomaly
        or (decision = 'confirm' and anomaly_kind is null)

),

store_labels as (

    select
        trade_id,
        is_anomaly,
        case when is_anomaly then anomaly_kind end as anomaly_kind,
        reviewer as labelled_by,
        decided_at as labelled_at,
        reason,
        'review' as label_origin,
        decision_id
    from typed_decisions
    where _source_file not in (select malformed_files._source_file from malformed_files)

),

seed_labels as (

    select
        trade_id,
        is_anomaly,
        case when is_anomaly then nullif(trim(anomaly_kind), '') end as anomaly_kind,
        labelled_by,
        {{ parse_iso_utc('labelled_at') }} as labelled_at,
        note as reason,
        'seed' as label_origin,
        cast(null as {{ warehouse_type('string') }}) as decision_id
    from {{ ref('analyst_labels') }}
    where trade_id is not null and is_anomaly is not null

),

all_labels as (

    select * from store_labels
    union all
    select * from seed_labels

),

ranked as (

    select
        all_labels.*,
        row_number() over (
            partition by trade_id
            order by
                labelled_at desc nulls last,
                case when label_origin = 'review' then 0 else 1 end,
                decision_id desc
        ) as recency
    from all_labels

)

select
    cast(trade_id as {{ warehouse_type('string') }}) as trade_id,
    cast(is_anomaly as boolean) as is_anomaly,
    cast(anomaly_kind as {{ warehouse_type('string') }}) as anomaly_kind,
    cast(labelled_by as {{ warehouse_type('string') }}) as labelled_by,
    cast(labelled_at as {{ dbt.type_timestamp() }}) as labelled_at,
    cast(reason as {{ warehouse_type('string') }}) as reason,
    cast(label_origin as {{ warehouse_type('string') }}) as label_origin,
    cast(decision_id as {{ warehouse_type('string') }}) as decision_id
from ranked
where recency = 1
