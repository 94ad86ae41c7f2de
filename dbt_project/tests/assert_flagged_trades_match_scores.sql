{#
    gold_flagged_trades has exactly the trades the current champion flags: none lost in the
    joins to features and minute bars (trade_ts must match too), none left over from an older
    champion. Fails with the flagged trade ids on one side only.
#}
with flagged_scores as (

    select trade_id
    from {{ ref('gold_anomaly_scores') }}
    where flag

),

mart as (

    select trade_id
    from {{ ref('gold_flagged_trades') }}

)

select coalesce(flagged_scores.trade_id, mart.trade_id) as trade_id
from flagged_scores
full outer join mart
    on flagged_scores.trade_id = mart.trade_id
where flagged_scores.trade_id is null
    or mart.trade_id is null
