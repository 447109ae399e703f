-- Queries a tenant ("attacker") might send to read another tenant's ("victim") rows. Each runs
-- through every interface (HTTP, Arrow Flight SQL, PostgreSQL wire); it may fail or return rows, but neither the
-- rows nor the error may mention the victim. One statement per line; lines starting with -- are
-- comments.
SELECT * FROM events WHERE tenant_id = 'victim'
SELECT * FROM raw_events WHERE tenant_id <> 'attacker'
SELECT url, tenant_id FROM events WHERE tenant_id IN (SELECT 'victim')
SELECT url FROM events UNION ALL SELECT url FROM raw_events WHERE tenant_id = 'victim'
WITH x AS (SELECT * FROM raw_events) SELECT tenant_id, url, event_id FROM x WHERE tenant_id <> 'attacker'
SELECT e.url FROM events e JOIN raw_events r ON e.event_id = r.event_id WHERE r.tenant_id = 'victim'
SELECT DISTINCT tenant_id FROM events
SELECT min(tenant_id), max(tenant_id), min(url), max(url) FROM raw_events
SELECT CAST(url AS INT) FROM events
SELECT CAST(tenant_id AS INT) FROM raw_events WHERE tenant_id = 'victim'
SELECT * FROM events WHERE CAST(url AS INT) > 0
SELECT * FROM information_schema.tables
SELECT * FROM information_schema.columns
SELECT * FROM information_schema.df_settings
SELECT * FROM system.files
SELECT * FROM system.partitions
SELECT * FROM system.nodes
SELECT * FROM 'raw_events/'
SELECT * FROM '/etc/passwd'
SELECT * FROM read_parquet('raw_events/')
SELECT * FROM datafusion.public.events WHERE tenant_id = 'victim'
EXPLAIN SELECT * FROM events WHERE tenant_id = 'victim'
EXPLAIN VERBOSE SELECT * FROM raw_events
EXPLAIN ANALYZE SELECT * FROM raw_events
CREATE EXTERNAL TABLE stolen STORED AS PARQUET LOCATION 'raw_events/'
COPY (SELECT * FROM raw_events) TO '/tmp/stolen.csv'
SET datafusion.execution.parquet.pushdown_filters = true
SELECT * FROM generate_series(1, 3)
SELECT * FROM pg_catalog.pg_class
SELECT a.attname, c.relname FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
SELECT * FROM pg_namespace
SELECT * FROM pg_catalog.pg_database
SELECT * FROM pg_catalog.pg_stat_activity
SELECT (SELECT url FROM events WHERE tenant_id = 'victim' LIMIT 1) FROM pg_catalog.pg_class
SELECT * FROM events e WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_description d WHERE e.tenant_id = 'victim')
SELECT * FROM rollups WHERE tenant_id = 'victim'
SELECT DISTINCT tenant_id, rollup_name FROM rollups
SELECT min(tenant_id), max(page) FROM rollups WHERE tenant_id <> 'attacker'
