-- Rollup `event_props`: events by (name, key, value); sessions by every (name, key, value) they had.
--
-- Run by the rollup job once per UTC hour over that hour's facts (see docs/architecture.md,
-- "Rollups"): `event_facts` holds each event of the hour with its session's labels,
-- `session_facts` each session that starts in the hour. Event counts are of events in the
-- hour; session sums are of sessions starting in it. `visitor_set` keeps the exact visitors,
-- `hll` a HyperLogLog sketch; their `_union` forms merge the two halves.

SELECT tenant_id, hour, rules, name, prop_key, prop_value,
       sum(events) AS events, sum(pageviews) AS pageviews, sum(revenue) AS revenue,
       sum(visits) AS visits, sum(bounces) AS bounces, sum(duration) AS duration,
       sum(session_pageviews) AS session_pageviews, sum(engaged) AS engaged,
       visitor_set_union(visitors) AS visitors,
       hll_union(visitors_hll) AS visitors_hll,
       hll_union(sessions_hll) AS sessions_hll
FROM (
    SELECT tenant_id, hour, rules, name, prop_key, prop_value,
           count(*) AS events, sum(is_pageview) AS pageviews, sum(revenue) AS revenue,
           0 AS visits, 0 AS bounces, 0 AS duration, 0 AS session_pageviews, 0 AS engaged,
           NULL AS visitors, NULL AS visitors_hll, NULL AS sessions_hll
    FROM event_prop_facts
    GROUP BY tenant_id, hour, rules, name, prop_key, prop_value
    UNION ALL
    SELECT tenant_id, hour, rules, name, prop_key, prop_value,
           0, 0, 0.0,
           count(*), sum(is_bounce), sum(duration), sum(pageviews), sum(is_engaged),
           visitor_set(visitor_id), hll(visitor_id), hll(session_key)
    FROM session_prop_facts
    GROUP BY tenant_id, hour, rules, name, prop_key, prop_value
) halves
GROUP BY tenant_id, hour, rules, name, prop_key, prop_value
