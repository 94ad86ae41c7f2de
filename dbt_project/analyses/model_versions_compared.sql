{#
    Model versions compared on the same trades: each challenger that scored in the shadow of
    the champion, against the champion on exactly the trades both scored, with how often they
    agree and, where a trusted label exists (an analyst's or the simulator's), how precise
    each one's flags are.
#}

select
    challenger_version,
    champion_version,
    count(*) as trades_scored_by_both,
    sum(case when challenger_flag then 1 else 0 end) as challenger_flags,
    sum(case when champion_flag then 1 else 0 end) as champion_flags,
    avg(case when challenger_flag = champion_flag then 1.0 else 0.0 end) as flag_agreement,
    corr(challenger_score, champion_score) as score_correlation,
    sum(case when challenger_flag and trusted_label then 1 else 0 end)
    / nullif(sum(case when challenger_flag and trusted_label is not null then 1 else 0 end), 0)
        as challenger_precision,
    sum(case when champion_flag and trusted_label then 1 else 0 end)
    / nullif(sum(case when champion_flag and trusted_label is not null then 1 else 0 end), 0)
        as champion_precision
from {{ ref('monitoring_shadow_scores') }}
group by
    challenger_version,
    champion_version
order by challenger_version
