{#
    The simulator's answer key, one row per anomalous trade it sent (bronze keeps the lines as
    re-runs appended them). Empty, with its types, when there is no answer key (a real feed).
#}
with landed as (

    select * from {{ ref('bronze_ground_truth_trades') }}

),

deduplicated as (

    select
        trade_id,
        min(event_id) as event_id,
        min(kind) as anomaly_kind
    from landed
    where trade_id is not null
    group by trade_id

)

select
    cast(trade_id as {{ warehouse_type('string') }}) as trade_id,
    cast(event_id as {{ warehouse_type('string') }}) as event_id,
    cast(anomaly_kind as {{ warehouse_type('string') }}) as anomaly_kind
from deduplicated
