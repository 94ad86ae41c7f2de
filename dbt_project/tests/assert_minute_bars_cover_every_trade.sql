{#
    Every silver trade is in exactly one minute bar: the bars' trade counts and volumes add up
    to silver's, per symbol. Returns the symbols that do not add up.
#}
with trades as (

    select
        symbol,
        count(*) as trades,
        sum(volume) as volume
    from {{ ref('silver_trades') }}
    group by symbol

),

bars as (

    select
        symbol,
        sum(trade_count) as trades,
        sum(volume) as volume
    from {{ ref('gold_minute_bars') }}
    group by symbol

)

select
    coalesce(trades.symbol, bars.symbol) as symbol,
    trades.trades as silver_trades,
    bars.trades as bar_trades
from trades
full outer join bars
    on trades.symbol = bars.symbol
where trades.trades is null
    or bars.trades is null
    or trades.trades != bars.trades
    or abs(trades.volume - bars.volume) > 1e-9 * greatest(abs(trades.volume), 1)
