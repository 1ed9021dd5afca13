//! Differential test of the distributed query engine: the same data in plain local tables and
//! in distributed / reference tables, the same queries on both, the results compared exactly.
//! Every tier runs here: fast-path router, router (co-located joins, reference joins,
//! subqueries pinned to one tenant, prepared statements), multi-shard (filters, projections,
//! two-phase aggregates, GROUP BY / HAVING / ORDER BY / LIMIT / DISTINCT, window functions by
//! the distribution column, co-located and reference joins), and DML.
//!
//! How two results are compared:
//! - rows: in order when the query has a top-level ORDER BY (a corpus entry whose ORDER BY is
//!   not total is marked with a leading `~ ` and compared sorted), otherwise sorted;
//! - errors: a statement that fails on both sides passes only when both carry the same
//!   SQLSTATE; failing on one side only is a difference. An error without a SQLSTATE (a lost
//!   connection) never passes.
//!
//! The SELECT corpus runs in several sessions ("variants"): plain, inside one transaction
//! block, under `DateStyle = 'SQL, DMY'`, `TimeZone = 'Asia/Kathmandu'` (+05:45),
//! `extra_float_digits = 0`, and as a login role with only SELECT/INSERT/UPDATE/DELETE grants.
//! Each variant is its own test on a freshly made schema, so one can fail alone.

use std::sync::Mutex;

use tessera_integration::{connect_as, coordinator, coordinator_port, Client};

const SETUP: &str = "
DROP SCHEMA IF EXISTS diff CASCADE;
CREATE SCHEMA diff;
SET search_path = diff, public;
CREATE TABLE l_events (tenant_id int NOT NULL, event_id int NOT NULL, kind text, amount numeric(10,2),
                       score float8, flag bool, created date, tags text[],
                       created_at timestamptz, took interval, ratio float8,
                       PRIMARY KEY (tenant_id, event_id));
CREATE TABLE l_messages (tenant_id int NOT NULL, event_id int NOT NULL, msg_id int NOT NULL, body text, len int,
                         PRIMARY KEY (tenant_id, msg_id));
CREATE TABLE l_kinds (kind text PRIMARY KEY, label text, weight int);
-- created_at steps 37 min 13 s from 2026-01-01 00:00 UTC (about 51 days, across local
-- midnights of any zone); ratio = i / 7 has no short decimal form.
INSERT INTO l_events
SELECT i % 20 + 1, i, (ARRAY['click','view','buy','share',NULL])[i % 5 + 1],
       CASE WHEN i % 11 = 0 THEN NULL ELSE ((i * 37) % 1000) / 10.0 END,
       ((i * 7919) % 1000) / 8.0, i % 3 = 0, DATE '2026-01-01' + (i % 90),
       ARRAY['t' || (i % 4), 't' || (i % 7)],
       TIMESTAMPTZ '2026-01-01 00:00:00+00' + i * INTERVAL '37 minutes 13 seconds',
       make_interval(days => i % 3, mins => i % 50, secs => (i % 7) * 1.5),
       i::float8 / 7
  FROM generate_series(1, 2000) i;
INSERT INTO l_messages
SELECT i % 20 + 1, (i * 3) % 2000 + 1, i, 'message ' || i || CASE WHEN i % 9 = 0 THEN ' urgent' ELSE '' END,
       (i * 13) % 200
  FROM generate_series(1, 5000) i;
-- Messages whose event lives in another tenant make the join condition matter; replies to
-- every third event (msg_id 10001..12000) make the co-located joins find rows.
INSERT INTO l_messages
SELECT tenant_id, event_id, 10000 + event_id, 'reply ' || event_id, event_id % 50
  FROM l_events WHERE event_id % 3 = 0;
INSERT INTO l_kinds VALUES ('click', 'Click', 1), ('view', 'View', 2), ('buy', 'Purchase', 10), ('refund', 'Refund', -5);
CREATE TABLE d_events AS SELECT * FROM l_events;
ALTER TABLE d_events ADD PRIMARY KEY (tenant_id, event_id);
CREATE TABLE d_messages AS SELECT * FROM l_messages;
ALTER TABLE d_messages ADD PRIMARY KEY (tenant_id, msg_id);
CREATE TABLE d_kinds AS SELECT * FROM l_kinds;
ALTER TABLE d_kinds ADD PRIMARY KEY (kind);
SELECT create_distributed_table('d_events', 'tenant_id', shard_count => 16);
SELECT create_distributed_table('d_messages', 'tenant_id', colocate_with => 'd_events');
SELECT create_reference_table('d_kinds');
";

/// Queries with `E`, `M`, `K` for the events, messages and kinds tables.
fn corpus() -> Vec<String> {
    let mut q: Vec<String> = [
        // Fast-path router.
        "SELECT * FROM E WHERE tenant_id = 3",
        "SELECT event_id, kind FROM E WHERE tenant_id = 5 AND event_id < 200",
        "SELECT count(*) FROM E WHERE tenant_id = 7",
        "SELECT kind, count(*), sum(amount) FROM E WHERE tenant_id = 2 GROUP BY kind",
        "SELECT * FROM E WHERE tenant_id = 4 ORDER BY score DESC, event_id LIMIT 5",
        "SELECT * FROM E WHERE 9 = tenant_id AND flag",
        "SELECT event_id FROM E WHERE tenant_id = 11 AND kind IS NULL",
        "SELECT DISTINCT kind FROM E WHERE tenant_id = 12",
        "SELECT avg(score), min(created), max(created) FROM E WHERE tenant_id = 13",
        "SELECT event_id, row_number() OVER (ORDER BY event_id) FROM E WHERE tenant_id = 14",
        "SELECT * FROM E WHERE tenant_id = 99",
        "SELECT * FROM E WHERE tenant_id = 3 AND tenant_id = 4",
        "SELECT tags[1], count(*) FROM E WHERE tenant_id = 6 GROUP BY 1",
        "SELECT event_id, amount * 2 AS double, upper(kind) FROM E WHERE tenant_id = 8 AND amount > 50",
        // Router: co-located joins and reference tables pinned to one tenant.
        "SELECT e.event_id, m.msg_id FROM E e JOIN M m ON m.tenant_id = e.tenant_id AND m.event_id = e.event_id WHERE e.tenant_id = 3",
        "SELECT e.kind, count(m.msg_id) FROM E e LEFT JOIN M m USING (tenant_id, event_id) WHERE e.tenant_id = 5 GROUP BY e.kind",
        "SELECT e.event_id, k.label FROM E e JOIN K k ON k.kind = e.kind WHERE e.tenant_id = 2",
        "SELECT e.event_id, k.label FROM E e LEFT JOIN K k ON k.kind = e.kind WHERE e.tenant_id = 6",
        "SELECT * FROM E WHERE tenant_id = 4 AND event_id IN (SELECT event_id FROM M WHERE tenant_id = 4 AND len > 100)",
        "SELECT * FROM E e WHERE tenant_id = 7 AND EXISTS (SELECT 1 FROM M m WHERE m.tenant_id = 7 AND m.event_id = e.event_id)",
        "WITH t AS (SELECT * FROM E WHERE tenant_id = 8) SELECT kind, count(*) FROM t GROUP BY kind",
        "SELECT s.kind, s.n FROM (SELECT kind, count(*) AS n FROM E WHERE tenant_id = 9 GROUP BY kind) s WHERE s.n > 5",
        "SELECT e.event_id FROM E e, M m WHERE e.tenant_id = m.tenant_id AND e.event_id = m.event_id AND m.tenant_id = 10",
        "SELECT k.kind, (SELECT count(*) FROM E e WHERE e.tenant_id = 1 AND e.kind = k.kind) FROM K k",
        // Reference tables alone.
        "SELECT * FROM K",
        "SELECT kind, weight * 2 FROM K WHERE weight > 1",
        "SELECT count(*), sum(weight) FROM K",
        // Multi-shard without a combine step.
        "SELECT * FROM E",
        "SELECT tenant_id, event_id FROM E WHERE flag AND amount > 90",
        "SELECT event_id, kind FROM E WHERE kind = 'buy' AND score < 10",
        "SELECT tenant_id, event_id FROM E WHERE kind IS NULL",
        "SELECT e.tenant_id, e.event_id, m.msg_id FROM E e JOIN M m USING (tenant_id, event_id)",
        "SELECT e.tenant_id, e.event_id, m.msg_id FROM E e LEFT JOIN M m ON m.tenant_id = e.tenant_id AND m.event_id = e.event_id WHERE e.event_id < 300",
        "SELECT e.event_id, k.label FROM E e JOIN K k ON k.kind = e.kind WHERE e.amount > 95",
        "SELECT e.event_id, k.label FROM E e LEFT JOIN K k ON k.kind = e.kind WHERE e.score > 120",
        "SELECT tenant_id, event_id, lower(kind) || '-' || event_id FROM E WHERE event_id % 97 = 0",
        "SELECT tenant_id, event_id, CASE WHEN amount > 50 THEN 'big' ELSE 'small' END FROM E WHERE created = DATE '2026-02-01'",
        "SELECT tenant_id, msg_id FROM M WHERE body LIKE '%urgent' AND len < 20",
        "SELECT tenant_id, event_id, row_number() OVER (PARTITION BY tenant_id ORDER BY event_id) FROM E WHERE event_id < 400",
        "SELECT tenant_id, event_id, sum(amount) OVER (PARTITION BY tenant_id ORDER BY event_id) FROM E WHERE event_id < 300",
        // Window functions over the whole result: computed on the coordinator, over every
        // shard's top rows when the window ranks by the query's ORDER BY.
        "SELECT event_id, rank() OVER (ORDER BY score DESC, event_id) FROM E ORDER BY score DESC, event_id LIMIT 15",
        "SELECT event_id, score, rank() OVER (ORDER BY score DESC), dense_rank() OVER (ORDER BY score DESC) FROM E ORDER BY score DESC, event_id LIMIT 40",
        "SELECT event_id, row_number() OVER (ORDER BY event_id) FROM E ORDER BY event_id LIMIT 10 OFFSET 5",
        "SELECT event_id, rank() OVER (PARTITION BY kind ORDER BY amount, event_id) FROM E ORDER BY amount, event_id LIMIT 25",
        "SELECT event_id, sum(amount) OVER (ORDER BY event_id) FROM E WHERE event_id < 500 ORDER BY event_id LIMIT 30",
        "SELECT event_id, count(*) OVER (), lag(event_id) OVER (ORDER BY event_id) FROM E WHERE event_id < 200",
        "SELECT kind, event_id, 1.0 / (60 + rank() OVER (PARTITION BY kind ORDER BY score, event_id)) AS s FROM E WHERE event_id % 7 = 0 ORDER BY s DESC, event_id LIMIT 20",
        "SELECT event_id, percent_rank() OVER (ORDER BY score, event_id) FROM E ORDER BY score, event_id LIMIT 12",
        // Multi-shard aggregates (two phases).
        "SELECT count(*) FROM E",
        "SELECT count(*), count(kind), count(amount) FROM E",
        "SELECT sum(amount), min(amount), max(amount) FROM E",
        "SELECT sum(event_id), sum(tenant_id::bigint), sum(len) FROM E JOIN M USING (tenant_id, event_id)",
        "SELECT avg(amount) FROM E",
        "SELECT avg(event_id), avg(tenant_id) FROM E",
        "SELECT round(avg(score)::numeric, 6), round(sum(score)::numeric, 6) FROM E",
        "SELECT min(kind), max(kind), min(created), max(created) FROM E",
        "SELECT bool_and(flag), bool_or(flag), every(amount > 0) FROM E",
        "SELECT kind, count(*) FROM E GROUP BY kind",
        "SELECT kind, sum(amount), avg(amount), min(score), max(score) FROM E GROUP BY kind",
        "SELECT kind, flag, count(*) FROM E GROUP BY kind, flag",
        "SELECT created, count(*) FROM E GROUP BY created",
        "SELECT kind, count(*) FROM E GROUP BY kind HAVING count(*) > 390",
        "SELECT kind, count(*) FROM E GROUP BY kind HAVING sum(amount) > 1000 AND min(score) >= 0",
        "SELECT kind, count(*) AS n FROM E GROUP BY kind ORDER BY n DESC, kind LIMIT 2",
        "SELECT kind, count(*) * 2 + 1, sum(amount) / count(*) FROM E GROUP BY kind",
        "SELECT upper(kind), count(*) FROM E GROUP BY upper(kind)",
        "SELECT kind IS NULL, count(*) FROM E GROUP BY 1",
        "SELECT count(*) FILTER (WHERE flag), sum(amount) FILTER (WHERE kind = 'buy') FROM E",
        "SELECT kind, string_agg(event_id::text, ',') IS NOT NULL FROM E GROUP BY kind",
        "SELECT length(string_agg(kind, '')) FROM E",
        "SELECT kind, cardinality(array_agg(event_id)) FROM E GROUP BY kind",
        "SELECT k.label, count(*) FROM E e JOIN K k ON k.kind = e.kind GROUP BY k.label",
        "SELECT e.kind, count(m.msg_id), sum(m.len) FROM E e JOIN M m USING (tenant_id, event_id) GROUP BY e.kind",
        "SELECT count(*) FROM E WHERE event_id > 5000",
        "SELECT kind, count(*) FROM E WHERE event_id > 5000 GROUP BY kind",
        "SELECT sum(amount), avg(amount), max(kind) FROM E WHERE event_id > 5000",
        "SELECT bit_and(event_id), bit_or(event_id) FROM E WHERE event_id < 64",
        // Simple subqueries and views over one distributed table run per shard group.
        "SELECT count(*) FROM (SELECT * FROM E WHERE flag) s",
        "SELECT s.kind, count(*) FROM (SELECT kind, tenant_id FROM E WHERE amount > 10) s GROUP BY s.kind",
        "SELECT kind, count(*) FROM (SELECT kind, tenant_id FROM E) s GROUP BY kind ORDER BY 2 DESC, 1 LIMIT 3",
        "SELECT s.k, count(*) FROM (SELECT tenant_id AS k, event_id FROM E) s GROUP BY s.k",
        "SELECT s.event_id, k.label FROM (SELECT * FROM E WHERE amount > 90) s JOIN K k ON k.kind = s.kind",
        "SELECT * FROM (SELECT tenant_id, event_id FROM E WHERE kind = 'buy') s WHERE s.event_id < 100",
        // DISTINCT aggregates across shards: the workers group by the argument too.
        "SELECT kind, count(DISTINCT tenant_id) FROM E GROUP BY kind",
        "SELECT count(DISTINCT kind), count(DISTINCT tenant_id), count(*), sum(amount) FROM E",
        "SELECT flag, count(DISTINCT created), avg(amount), max(score) FROM E GROUP BY flag",
        "SELECT count(DISTINCT kind) FROM E WHERE event_id > 5000",
        "SELECT kind, count(DISTINCT flag) FROM E GROUP BY kind HAVING count(DISTINCT tenant_id) = 20",
        // Grouped by the distribution column: pushed down whole.
        "SELECT tenant_id, count(*) FROM E GROUP BY tenant_id",
        "SELECT tenant_id, count(DISTINCT kind) FROM E GROUP BY tenant_id",
        "SELECT tenant_id, sum(amount), avg(score) FROM E GROUP BY tenant_id HAVING count(*) > 99",
        "SELECT tenant_id, count(*) FROM E GROUP BY tenant_id ORDER BY count(*) DESC, tenant_id LIMIT 3",
        "SELECT tenant_id, kind, count(*) FROM E GROUP BY tenant_id, kind",
        "SELECT tenant_id, string_agg(kind, ',' ORDER BY event_id) FROM E WHERE event_id < 100 GROUP BY tenant_id",
        "SELECT e.tenant_id, count(*) FROM E e JOIN M m USING (tenant_id, event_id) GROUP BY e.tenant_id",
        "SELECT tenant_id, rank() OVER (PARTITION BY tenant_id ORDER BY count(*) DESC) FROM E GROUP BY tenant_id",
        // GROUPING SETS, ROLLUP and CUBE: the shards group by every key, the coordinator makes
        // the sets (GROUPING() included).
        "SELECT kind, flag, count(*), sum(amount) FROM E GROUP BY ROLLUP (kind, flag) ORDER BY GROUPING(kind, flag), kind, flag",
        "SELECT tenant_id, count(*), max(score) FROM E GROUP BY ROLLUP (tenant_id) ORDER BY GROUPING(tenant_id), tenant_id",
        "SELECT kind, flag, GROUPING(kind, flag), round(avg(score)::numeric, 6), round(stddev(score)::numeric, 6) FROM E GROUP BY CUBE (kind, flag) ORDER BY 3, kind, flag",
        "SELECT kind, created, count(DISTINCT tenant_id) FROM E WHERE created < DATE '2026-01-05' GROUP BY GROUPING SETS ((kind), (created), ()) ORDER BY GROUPING(kind, created), kind, created",
        "SELECT flag, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY score) FROM E GROUP BY ROLLUP (flag) ORDER BY GROUPING(flag), flag",
        "SELECT kind, count(*) FROM E GROUP BY ROLLUP (kind) HAVING count(*) > 300 ORDER BY GROUPING(kind), kind",
        "SELECT kind, count(*), regr_count(score, ratio), max(created) FROM E WHERE event_id < 0 GROUP BY ROLLUP (kind)",
        "SELECT count(*), sum(amount) FROM E GROUP BY GROUPING SETS (())",
        "SELECT tenant_id, kind, sum(amount) FROM E GROUP BY GROUPING SETS ((tenant_id, kind), (kind)) ORDER BY GROUPING(tenant_id), tenant_id, kind",
        "SELECT kind, count(*) FROM E GROUP BY DISTINCT ROLLUP (kind), ROLLUP (kind) ORDER BY GROUPING(kind), kind",
        "SELECT kind, flag, count(*), rank() OVER (PARTITION BY GROUPING(kind, flag) ORDER BY count(*) DESC, kind, flag) FROM E GROUP BY CUBE (kind, flag) ORDER BY GROUPING(kind, flag), kind, flag",
        "SELECT e.kind, k.label, count(m.msg_id) FROM E e JOIN M m USING (tenant_id, event_id) LEFT JOIN K k ON k.kind = e.kind GROUP BY ROLLUP (e.kind, k.label) ORDER BY GROUPING(e.kind, k.label), e.kind, k.label",
        // Whole rows: the shards send each as an anonymous record, the coordinator reads it
        // as the table's row type.
        "SELECT e FROM E e WHERE tenant_id = 3 ORDER BY event_id",
        "SELECT e, e.event_id FROM E e WHERE event_id < 60 ORDER BY e LIMIT 20",
        "SELECT m FROM M m WHERE len < 5",
        "SELECT row_to_json(m), to_jsonb(m) - 'body' FROM M m WHERE tenant_id = 2 AND msg_id < 400",
        "SELECT jsonb_agg(k ORDER BY kind), count(DISTINCT k) FROM K k",
        "SELECT count(DISTINCT m), max(m) FROM M m",
        "SELECT k, e.event_id FROM E e JOIN K k USING (kind) WHERE e.tenant_id = 4 AND e.event_id < 300",
        "SELECT e.tenant_id, m FROM E e JOIN M m USING (tenant_id, event_id) WHERE e.event_id < 30",
        "SELECT (e).kind, (e).took FROM E e WHERE tenant_id = 7 ORDER BY e",
        "SELECT e.event_id, m FROM E e LEFT JOIN M m USING (tenant_id, event_id) WHERE e.tenant_id = 5 AND e.event_id < 400",
        "SELECT count(DISTINCT m), count(m) FROM E e LEFT JOIN M m USING (tenant_id, event_id) WHERE e.tenant_id = 6",
        // Subqueries in the select list or HAVING of a query whose aggregates the coordinator
        // combines: they run first, the shards and the combine step read their values.
        "SELECT kind, count(*) FROM E GROUP BY kind HAVING count(*) > (SELECT count(*) / 10 FROM M)",
        "SELECT kind, count(*) * 100.0 / (SELECT count(*) FROM E) AS pct FROM E GROUP BY kind ORDER BY kind",
        "SELECT flag, count(*), (SELECT max(len) FROM M), (SELECT label FROM K WHERE kind = 'buy') FROM E GROUP BY flag",
        "SELECT kind, sum(amount) FILTER (WHERE score > (SELECT avg(score) FROM E)) FROM E GROUP BY kind",
        "SELECT kind, count(*) FROM E GROUP BY kind HAVING count(*) > ALL (SELECT count(*) / 2 FROM E GROUP BY tenant_id) AND sum(amount) < (SELECT sum(amount) FROM E)",
        "SELECT count(*), (SELECT count(*) FROM M WHERE len > 150) - count(*) FROM E WHERE event_id < 0",
        "SELECT kind, count(*), rank() OVER (ORDER BY count(*) * (SELECT count(*) FROM K), kind) FROM E GROUP BY kind",
        "SELECT kind, count(*) FROM E GROUP BY ROLLUP (kind) HAVING count(*) >= (SELECT count(*) / 5 FROM E) ORDER BY GROUPING(kind), kind",
        "SELECT DISTINCT count(*) > (SELECT count(*) / 25 FROM E) FROM E GROUP BY tenant_id",
        // Window functions over aggregates, computed on the coordinator: over the groups the
        // shards finished (grouped by the distribution column) or over the combined ones.
        "SELECT tenant_id, rank() OVER (ORDER BY count(*) DESC, tenant_id) FROM E GROUP BY tenant_id",
        "WITH r AS (SELECT tenant_id, rank() OVER (ORDER BY count(*) DESC, tenant_id) AS rk FROM E GROUP BY tenant_id) SELECT * FROM r WHERE rk <= 5",
        "SELECT tenant_id, count(*), row_number() OVER (ORDER BY count(*) DESC, tenant_id) AS rn FROM E GROUP BY tenant_id ORDER BY rn LIMIT 5",
        "SELECT tenant_id, avg(score), avg(avg(score)) OVER () FROM E GROUP BY tenant_id ORDER BY tenant_id",
        "SELECT tenant_id, sum(amount) FROM E GROUP BY tenant_id HAVING count(*) > 99 ORDER BY rank() OVER (ORDER BY sum(amount) DESC NULLS LAST), tenant_id LIMIT 5",
        "SELECT tenant_id, flag, count(*), sum(count(*)) OVER (PARTITION BY flag ORDER BY tenant_id) FROM E GROUP BY tenant_id, flag ORDER BY flag, tenant_id",
        "SELECT kind, count(*), rank() OVER (ORDER BY count(*) DESC, kind) FROM E GROUP BY kind",
        "SELECT kind, flag, sum(amount), sum(sum(amount)) OVER (PARTITION BY kind) FROM E GROUP BY kind, flag ORDER BY kind, flag",
        "SELECT kind, count(DISTINCT tenant_id), dense_rank() OVER (ORDER BY count(DISTINCT tenant_id)) FROM E GROUP BY kind ORDER BY kind",
        "SELECT kind, percentile_cont(0.5) WITHIN GROUP (ORDER BY score), rank() OVER (ORDER BY kind) FROM E GROUP BY kind ORDER BY kind",
        "SELECT flag, max(created), lag(max(created)) OVER (ORDER BY flag) FROM E GROUP BY flag ORDER BY flag",
        "SELECT kind, count(*) FROM E GROUP BY kind HAVING count(*) > 300 ORDER BY row_number() OVER (ORDER BY count(*) DESC, kind) LIMIT 3",
        "SELECT created, count(*), sum(count(*)) OVER (ORDER BY created ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) FROM E WHERE created < DATE '2026-01-20' GROUP BY created ORDER BY created",
        "SELECT DISTINCT count(*) OVER (PARTITION BY kind) FROM E GROUP BY kind, flag",
        // ORDER BY, LIMIT, OFFSET, DISTINCT across shards.
        "SELECT tenant_id, event_id FROM E ORDER BY event_id LIMIT 10",
        "SELECT tenant_id, event_id FROM E ORDER BY score DESC, event_id LIMIT 7 OFFSET 3",
        "SELECT event_id, amount FROM E ORDER BY amount DESC NULLS LAST, event_id LIMIT 5",
        "SELECT event_id FROM E ORDER BY amount NULLS FIRST, event_id LIMIT 12",
        "SELECT event_id, kind FROM E WHERE flag ORDER BY kind, event_id DESC LIMIT 20",
        "SELECT event_id FROM E ORDER BY event_id OFFSET 1990",
        "SELECT DISTINCT kind FROM E",
        "SELECT DISTINCT tenant_id FROM E",
        "SELECT DISTINCT kind, flag FROM E ORDER BY kind, flag",
        "SELECT DISTINCT created FROM E ORDER BY created DESC LIMIT 4",
        // DISTINCT ON across shards: on each shard group, then again over their rows.
        "SELECT DISTINCT ON (kind) kind, event_id, score FROM E ORDER BY kind, score DESC, event_id",
        "SELECT DISTINCT ON (tenant_id) tenant_id, event_id, amount FROM E ORDER BY tenant_id, amount DESC NULLS LAST, event_id",
        "SELECT DISTINCT ON (created) created, event_id FROM E ORDER BY created DESC, event_id LIMIT 5",
        "SELECT DISTINCT ON (kind, flag) kind, flag, event_id FROM E ORDER BY kind, flag, event_id DESC LIMIT 4 OFFSET 2",
        "SELECT DISTINCT ON (kind) event_id FROM E ORDER BY kind, score, event_id",
        "SELECT DISTINCT ON (event_id % 7) event_id % 7 AS r, event_id FROM E WHERE flag ORDER BY event_id % 7, score, event_id",
        "SELECT DISTINCT ON (tenant_id) tenant_id, kind, count(*) FROM E GROUP BY tenant_id, kind ORDER BY tenant_id, count(*) DESC, kind",
        "SELECT DISTINCT ON (e.kind) e.kind, m.msg_id FROM E e JOIN M m USING (tenant_id, event_id) ORDER BY e.kind, m.msg_id",
        "SELECT DISTINCT ON (e.kind) e.kind, k.label, e.event_id FROM E e LEFT JOIN K k USING (kind) ORDER BY e.kind, e.event_id DESC",
        "SELECT count(*), count(DISTINCT kind) FROM (SELECT DISTINCT ON (kind) kind, event_id FROM E) d",
        "SELECT DISTINCT ON (k) k, flag, n FROM (SELECT kind AS k, flag, count(*) AS n FROM E GROUP BY kind, flag) s ORDER BY k, n DESC, flag",
        "SELECT e.event_id, m.msg_id FROM E e JOIN M m USING (tenant_id, event_id) ORDER BY m.msg_id LIMIT 10",
        "SELECT tenant_id, event_id, score FROM E ORDER BY score * -1, event_id LIMIT 3",
        "SELECT event_id FROM E ORDER BY tenant_id, event_id LIMIT 25",
        // Parameters in constants and expressions.
        "SELECT count(*) FROM E WHERE created BETWEEN DATE '2026-01-10' AND DATE '2026-01-20'",
        "SELECT tenant_id, event_id FROM E WHERE tags @> ARRAY['t1'] AND event_id < 100",
        "SELECT tenant_id, event_id FROM E WHERE kind IN ('buy', 'share') AND event_id < 150",
        "SELECT tenant_id, event_id FROM E WHERE kind = ANY (ARRAY['view']) AND event_id < 120",
        "SELECT tenant_id, event_id FROM E WHERE coalesce(amount, 0) = 0",
        "SELECT tenant_id, event_id FROM E WHERE (tenant_id, event_id) IN ((1, 20), (2, 1), (3, 42))",
        "SELECT count(*) FROM E WHERE tenant_id IN (1, 2, 3)",
        "SELECT tenant_id, count(*) FROM E WHERE tenant_id IN (4, 5) GROUP BY tenant_id",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    // Each tenant, routed.
    for t in [1, 2, 3, 5, 8, 13, 17, 20] {
        q.push(format!(
            "SELECT kind, count(*), sum(amount) FROM E WHERE tenant_id = {t} GROUP BY kind"
        ));
        q.push(format!(
            "SELECT e.event_id, count(m.msg_id) FROM E e JOIN M m USING (tenant_id, event_id) WHERE e.tenant_id = {t} GROUP BY e.event_id"
        ));
        q.push(format!(
            "SELECT event_id, score FROM E WHERE tenant_id = {t} ORDER BY score, event_id LIMIT 3"
        ));
    }
    // Each aggregate, across shards, whole and grouped.
    for agg in [
        "count(*)",
        "count(amount)",
        "sum(amount)",
        "avg(amount)",
        "min(amount)",
        "max(amount)",
        "sum(event_id)",
        "avg(event_id)",
        "min(score)",
        "max(score)",
        "min(created)",
        "max(tags)",
        "bool_or(flag)",
        "bool_and(flag)",
        "round(avg(score)::numeric, 6)",
        // Through PostgreSQL's partial aggregation (combine / serialize functions); floats
        // rounded, as their sums depend on the order of addition.
        "round(stddev(score)::numeric, 6)",
        "var_samp(amount)",
        "variance(event_id)",
        "stddev_pop(amount)",
        "round(regr_slope(score, event_id)::numeric, 12)",
        "regr_count(score, amount)",
        "bit_xor(event_id)",
        "sum(took)",
        "avg(took)",
        // Aggregates that cannot be combined, over the shards' rows.
        "json_agg(event_id ORDER BY event_id)",
        "jsonb_agg(kind ORDER BY event_id)",
        "string_agg(DISTINCT kind, ',' ORDER BY kind)",
        "array_agg(amount ORDER BY event_id) FILTER (WHERE event_id % 10 = 0)",
        "percentile_disc(0.5) WITHIN GROUP (ORDER BY amount)",
        "mode() WITHIN GROUP (ORDER BY kind)",
    ] {
        q.push(format!("SELECT {agg} FROM E"));
        q.push(format!("SELECT flag, {agg} FROM E GROUP BY flag"));
        q.push(format!("SELECT tenant_id, {agg} FROM E GROUP BY tenant_id"));
    }
    // Subqueries in WHERE that cannot run inside the shard queries: run first on the
    // coordinator, their result a parameter of the shard queries.
    for w in [
        "event_id IN (SELECT event_id FROM M WHERE len > 100)",
        "tenant_id IN (SELECT tenant_id FROM M WHERE len > 190)",
        "amount > (SELECT avg(amount) FROM E)",
        "event_id NOT IN (SELECT event_id FROM M WHERE event_id IS NOT NULL)",
        "tenant_id NOT IN (SELECT CASE WHEN msg_id = 1 THEN NULL ELSE len END FROM M)",
        "EXISTS (SELECT 1 FROM M WHERE len > 198)",
        "NOT EXISTS (SELECT 1 FROM M WHERE len > 500)",
        "tenant_id = (SELECT max(tenant_id) FROM M)",
        "event_id > ALL (SELECT len FROM M WHERE msg_id < 10)",
        "kind IN (SELECT body FROM M WHERE msg_id < 5) OR kind = 'buy'",
        "kind IN (SELECT kind FROM l_kinds WHERE weight > 1)",
        "event_id = ANY (ARRAY(SELECT msg_id FROM M WHERE len = 3))",
        "tenant_id = 3 AND event_id IN (SELECT event_id FROM M WHERE tenant_id = 4)",
    ] {
        q.push(format!("SELECT event_id, kind FROM E WHERE {w}"));
        q.push(format!(
            "SELECT kind, count(*), sum(amount) FROM E WHERE {w} GROUP BY kind"
        ));
    }
    // Subqueries and CTEs in FROM that cannot run per shard group: each runs as its own
    // distributed query first, the coordinator finishes the query.
    for sql in [
        "SELECT * FROM (SELECT * FROM E) a JOIN (SELECT * FROM M) b USING (tenant_id, event_id)",
        "WITH t AS (SELECT tenant_id, count(*) AS c FROM E GROUP BY tenant_id) SELECT max(c), min(c), count(*) FROM t",
        "SELECT k.label, s.n FROM (SELECT kind, count(*) n FROM E GROUP BY kind) s JOIN l_kinds k USING (kind)",
        "WITH a AS (SELECT tenant_id, sum(amount) s FROM E GROUP BY 1), b AS (SELECT tenant_id, count(*) c FROM M GROUP BY 1) SELECT a.tenant_id, a.s, b.c FROM a JOIN b USING (tenant_id)",
        "SELECT * FROM (SELECT kind, count(*) c FROM E GROUP BY kind ORDER BY 2 DESC, 1 LIMIT 2) x",
        "SELECT avg(c) FROM (SELECT tenant_id, count(*) c FROM M GROUP BY tenant_id HAVING count(*) > 200) s",
        "WITH big AS (SELECT * FROM E WHERE amount > 90) SELECT kind, count(*), sum(amount) FROM big GROUP BY kind",
        "SELECT s.kind, s.c, r.c FROM (SELECT kind, count(*) c FROM E GROUP BY kind) s LEFT JOIN (SELECT body AS kind, count(*) c FROM M GROUP BY body) r USING (kind)",
        "SELECT count(*) FROM (SELECT DISTINCT tenant_id, kind FROM E) d",
        "WITH x AS (SELECT tenant_id, max(event_id) m FROM E GROUP BY 1) SELECT count(*) FROM x JOIN x AS y ON x.m < y.m",
        "SELECT tenant_id FROM E UNION SELECT tenant_id FROM M",
        // Joined with a distributed table: the subquery's rows go to the shards as parameters.
        "WITH top AS (SELECT tenant_id, count(*) c FROM M GROUP BY tenant_id ORDER BY c DESC, tenant_id LIMIT 5) SELECT e.tenant_id, count(*), max(t.c) FROM E e JOIN top t USING (tenant_id) GROUP BY e.tenant_id",
        "SELECT e.event_id, s.n FROM E e JOIN (SELECT event_id, count(*) n FROM M GROUP BY event_id) s USING (event_id) WHERE e.tenant_id = 3",
        "SELECT count(*), sum(e.amount) FROM E e JOIN (SELECT kind FROM l_kinds WHERE weight > 1) k USING (kind)",
        "SELECT e.kind, count(*) FROM E e JOIN (SELECT DISTINCT body FROM M WHERE len < 3) b ON b.body LIKE '%' || e.event_id GROUP BY e.kind",
        "WITH empty AS (SELECT tenant_id FROM M WHERE len > 1000) SELECT count(*) FROM E JOIN empty USING (tenant_id)",
        "SELECT * FROM E e JOIN l_kinds k ON k.kind = e.kind",
        // Subqueries in the SELECT list and HAVING, when the query then runs whole on the workers.
        "SELECT event_id, (SELECT max(len) FROM M) AS m FROM E WHERE tenant_id = 3",
        "SELECT event_id, amount - (SELECT avg(amount) FROM E) AS d FROM E WHERE amount > 95",
        "SELECT tenant_id, count(*) FROM E GROUP BY tenant_id HAVING count(*) > (SELECT count(*) / 25 FROM E)",
        "SELECT k.label, count(*), sum(e.amount) FROM E e JOIN l_kinds k USING (kind) WHERE k.weight > 0 GROUP BY k.label",
        "SELECT kind FROM E WHERE amount > 50 UNION ALL SELECT body FROM M WHERE len > 195",
        // An arm that is not a distributed table's rows comes back once, not once per shard.
        "SELECT tenant_id FROM E WHERE event_id < 5 UNION ALL SELECT 1",
        "SELECT count(*) FROM (SELECT event_id FROM E UNION ALL SELECT 7) s",
        "SELECT count(*) FROM E UNION ALL SELECT count(*) FROM M",
        "SELECT kind FROM K UNION ALL SELECT kind FROM E WHERE event_id < 4",
        "SELECT DISTINCT kind FROM E UNION ALL SELECT kind FROM K",
        "SELECT tenant_id FROM E WHERE event_id < 10 UNION ALL SELECT tenant_id FROM M WHERE msg_id < 10",
        "SELECT tenant_id FROM E INTERSECT SELECT tenant_id FROM M",
        "SELECT tenant_id FROM E EXCEPT SELECT len FROM M",
        "SELECT count(*) FROM (SELECT tenant_id, event_id FROM E UNION SELECT tenant_id, event_id FROM M) u",
    ] {
        q.push(sql.to_string());
    }
    for sql in [
        // Row order: a top-level ORDER BY is compared in order.
        "SELECT tenant_id, count(*) FROM E GROUP BY tenant_id ORDER BY tenant_id",
        "SELECT tenant_id, count(*) FROM E GROUP BY tenant_id ORDER BY tenant_id DESC",
        "SELECT kind, count(*) FROM E GROUP BY kind ORDER BY kind NULLS FIRST",
        "SELECT created, count(*) FROM E GROUP BY created ORDER BY created DESC",
        "SELECT event_id, created_at FROM E WHERE tenant_id = 3 ORDER BY created_at DESC",
        "SELECT e.event_id, m.msg_id FROM E e JOIN M m USING (tenant_id, event_id) WHERE e.tenant_id = 3 ORDER BY m.msg_id DESC",
        "SELECT tenant_id, event_id FROM E WHERE event_id < 300 ORDER BY ratio DESC",
        "SELECT tenant_id FROM E UNION SELECT tenant_id FROM M ORDER BY 1 DESC",
        "SELECT event_id FROM E UNION ALL SELECT 1 ORDER BY 1 LIMIT 5",
        "SELECT event_id FROM E WHERE event_id < 20 UNION ALL SELECT len FROM M WHERE len < 5 ORDER BY 1 DESC LIMIT 7",
        "WITH t AS (SELECT tenant_id, count(*) AS c FROM M GROUP BY tenant_id) SELECT * FROM t ORDER BY c, tenant_id",
        "~ SELECT kind, event_id FROM E WHERE tenant_id = 2 ORDER BY kind",
        "~ SELECT flag, event_id FROM E WHERE event_id < 200 ORDER BY flag",
        // timestamptz, interval and float8 values: through the shards, cast to text on the
        // workers, grouped by expressions that depend on TimeZone, compared with literals
        // whose reading depends on DateStyle.
        "SELECT event_id, created_at, took, ratio FROM E WHERE tenant_id = 3",
        "SELECT tenant_id, event_id, created_at, took, ratio FROM E WHERE event_id % 50 = 0",
        "SELECT created_at::text, took::text, ratio::text, created::text FROM E WHERE tenant_id = 4",
        "SELECT tenant_id, event_id, created_at::text, created::text FROM E WHERE event_id % 40 = 0",
        "SELECT date_trunc('day', created_at), count(*) FROM E GROUP BY 1",
        "SELECT date_trunc('day', created_at) AS d, count(*) FROM E WHERE tenant_id = 5 GROUP BY 1",
        "SELECT date_trunc('hour', created_at) AS h, count(*) FROM E GROUP BY 1 ORDER BY 1 LIMIT 30",
        "SELECT created_at::date, count(*) FROM E GROUP BY 1",
        "SELECT created::text, count(*) FROM E GROUP BY 1",
        "SELECT extract(hour FROM created_at) AS h, count(*) FROM E GROUP BY 1",
        "SELECT to_char(created_at, 'YYYY-MM-DD HH24:MI:SS TZH:TZM') FROM E WHERE tenant_id = 7",
        "SELECT count(*) FROM E WHERE created = '02/01/2026'",
        "SELECT count(*) FROM E WHERE created = '02/01/2026' AND tenant_id = 3",
        "SELECT count(*) FROM E WHERE created_at < '02/01/2026'",
        "SELECT count(*) FROM E WHERE created_at >= '02/01/2026 10:30' AND tenant_id = 6",
        "SELECT event_id FROM E WHERE created_at::date = '02/01/2026'",
        "SELECT event_id FROM E WHERE created_at::text LIKE '2026-01-02%'",
        "SELECT count(*) FROM E WHERE created_at + took > '2026-02-01 12:00'",
        "SELECT count(*) FROM E WHERE created_at AT TIME ZONE 'UTC' < '2026-01-15 06:00'",
        "SELECT event_id, created_at + took FROM E WHERE tenant_id = 8 AND took < '00:10:00'",
        "SELECT min(created_at), max(created_at), max(created_at) - min(created_at) FROM E",
        "SELECT tenant_id, min(created_at), max(took) FROM E GROUP BY tenant_id",
        "SELECT kind, min(created_at), max(created_at) FROM E GROUP BY kind",
        "SELECT sum(took), min(took), max(took) FROM E",
        "SELECT kind, sum(took), max(took) FROM E GROUP BY kind",
        "SELECT avg(took) FROM E",
        "SELECT kind, avg(took) FROM E GROUP BY kind",
        "SELECT tenant_id, avg(took) FROM E GROUP BY tenant_id",
        "SELECT count(*) FROM E WHERE took > interval '1 day 20 minutes'",
        "SELECT event_id, ratio, ratio::text, ratio * 3 FROM E WHERE tenant_id = 9",
        "SELECT event_id FROM E WHERE ratio >= '14.2857142857142857'::float8 AND ratio < 15",
        "SELECT event_id FROM E WHERE tenant_id = 1 AND ratio >= '14.2857142857142857'::float8 AND ratio < 30",
        "SELECT max(ratio) = 2000::float8 / 7, min(ratio) = 1::float8 / 7 FROM E",
        "SELECT kind, max(ratio), min(ratio) FROM E GROUP BY kind",
        "SELECT count(*) FROM E WHERE ratio = 100::float8 / 7",
        // Outer joins whose ON clause holds a constant: the constant filters only the
        // nullable side (or which rows find a partner); it pins nothing to one shard.
        "SELECT count(*) FROM E e LEFT JOIN M m ON m.tenant_id = e.tenant_id AND m.tenant_id = 5 AND m.event_id = e.event_id",
        "SELECT count(*), count(m.msg_id) FROM E e LEFT JOIN M m ON m.tenant_id = e.tenant_id AND m.event_id = e.event_id AND e.tenant_id = 5",
        "SELECT e.tenant_id, count(m.msg_id) FROM E e LEFT JOIN M m ON m.tenant_id = e.tenant_id AND m.event_id = e.event_id AND m.tenant_id = 5 GROUP BY e.tenant_id",
        "SELECT e.event_id, m.msg_id FROM E e LEFT JOIN M m ON m.tenant_id = e.tenant_id AND m.event_id = e.event_id AND m.tenant_id = 5 WHERE e.event_id < 60",
        "SELECT count(*), count(e.event_id) FROM E e RIGHT JOIN M m ON m.tenant_id = e.tenant_id AND m.event_id = e.event_id AND e.tenant_id = 5",
        "SELECT count(*), count(e.event_id) FROM E e RIGHT JOIN M m ON m.tenant_id = e.tenant_id AND m.event_id = e.event_id AND m.tenant_id = 5",
        "SELECT count(*), count(e.event_id), count(m.msg_id) FROM E e FULL JOIN M m ON m.tenant_id = e.tenant_id AND m.event_id = e.event_id AND m.tenant_id = 5",
        "SELECT count(*), count(e.event_id), count(m.msg_id) FROM E e FULL JOIN M m ON m.tenant_id = e.tenant_id AND m.event_id = e.event_id AND e.tenant_id = 5",
        "SELECT count(*) FROM E e LEFT JOIN M m ON m.tenant_id = e.tenant_id AND m.event_id = e.event_id AND m.tenant_id IN (5, 6)",
        "SELECT count(*) FROM E e LEFT JOIN M m ON m.tenant_id = e.tenant_id AND m.event_id = e.event_id AND m.tenant_id = NULL::int",
        "SELECT count(*), count(k.label) FROM E e LEFT JOIN K k ON k.kind = e.kind AND e.tenant_id = 5",
        // ... and the same pinned by WHERE, which does restrict the query to one tenant.
        "SELECT count(*), count(m.msg_id) FROM E e LEFT JOIN M m ON m.tenant_id = e.tenant_id AND m.event_id = e.event_id AND m.tenant_id = 5 WHERE e.tenant_id = 5",
        "SELECT count(*) FROM E e LEFT JOIN M m ON m.tenant_id = e.tenant_id AND m.event_id = e.event_id WHERE m.tenant_id = 5",
        // Aggregates without GROUP BY return one row even when no shard can match.
        "SELECT count(*), sum(amount), max(event_id) FROM E WHERE tenant_id = NULL::int",
        "SELECT count(*) FROM E WHERE tenant_id = NULL",
        "SELECT count(*) FROM E WHERE tenant_id = (SELECT NULL::int)",
        "SELECT count(*), min(created_at) FROM E WHERE tenant_id = NULL::int AND kind = 'buy'",
        "SELECT bool_and(flag), string_agg(kind, ','), max(took), avg(score) FROM E WHERE tenant_id = NULL::int",
        "SELECT count(*) FROM E e JOIN M m USING (tenant_id, event_id) WHERE e.tenant_id = NULL::int",
        "SELECT count(*) FROM E WHERE tenant_id IS NULL",
        "SELECT count(*), sum(amount) FROM E WHERE tenant_id = 3 AND tenant_id = 4",
        "SELECT count(*) FROM E WHERE false",
        "SELECT count(*) FROM E WHERE tenant_id IN (NULL::int)",
        "SELECT sum(amount) FROM E WHERE tenant_id = ANY ('{}'::int[])",
        // Stable functions: now(), current_user and current_setting() mean the coordinator
        // session's values, wherever they are evaluated.
        "SELECT count(*) FROM E WHERE created_at < now()",
        "SELECT count(*) FROM E WHERE created_at < now() AND tenant_id = 3",
        "SELECT count(*) FROM E WHERE created_at > now() - interval '20 years'",
        "SELECT now() = (SELECT max(now()) FROM E WHERE tenant_id = 3)",
        "SELECT now() = (SELECT max(now()) FROM E)",
        "SELECT count(*) FROM E WHERE tenant_id = 3 AND now() = transaction_timestamp()",
        "SELECT current_user, count(*) FROM E",
        "SELECT current_user, count(*) FROM E WHERE tenant_id = 2",
        "SELECT current_user, event_id FROM E WHERE tenant_id = 2 AND event_id < 100",
        "SELECT current_setting('TimeZone'), current_setting('DateStyle'), count(*) FROM E",
        "SELECT current_setting('TimeZone'), count(*) FROM E WHERE tenant_id = 3",
        "SELECT count(*) FROM E WHERE kind = 'buy' AND current_setting('extra_float_digits') <> '3'",
        "SELECT event_id FROM E WHERE tenant_id = 4 AND current_setting('DateStyle') LIKE 'ISO%'",
        // Found by scripts/fuzz.sh (SQLsmith): internal errors on shapes the corpus lacked.
        // A query without a distributed table in FROM whose sublink reads shards.
        "SELECT (SELECT max(event_id) FROM E)",
        "SELECT kind, weight FROM l_kinds WHERE weight < (SELECT count(*) / 500 FROM E)",
        "SELECT kind FROM l_kinds WHERE kind IN (SELECT kind FROM E WHERE amount > 50)",
        // A subquery run first whose scan the coordinator's plan folds away.
        "SELECT * FROM (SELECT kind, count(*) FROM E GROUP BY kind) s WHERE false",
        "SELECT * FROM (SELECT * FROM E LIMIT 3) s WHERE NULL::bool",
        // A CTE over shards read by a sublink inside a FROM subquery.
        // A CTE read in FROM and in a sublink: it runs first, once, and both read its rows.
        "WITH c AS (SELECT tenant_id, count(*) AS n FROM E GROUP BY tenant_id) SELECT count(*) FROM c WHERE n >= (SELECT min(n) FROM c)",
        "WITH c AS (SELECT tenant_id, count(*) AS n FROM E GROUP BY tenant_id) SELECT tenant_id FROM c WHERE n = (SELECT max(n) FROM c) ORDER BY tenant_id",
        "WITH c AS (SELECT score FROM E) SELECT count(*) FROM (SELECT * FROM l_kinds WHERE EXISTS (SELECT 1 FROM c)) s",
    ] {
        q.push(sql.to_string());
    }
    q
}

/// Statements that change data; the check after each compares the tables whole.
const DML: &[&str] = &[
    "INSERT INTO E VALUES (1, 5001, 'buy', 12.5, 1, true, DATE '2026-03-01', ARRAY['x'])",
    "INSERT INTO E VALUES (2, 5002, 'view', NULL, 2, false, DATE '2026-03-02', NULL), (3, 5003, NULL, 7, 3, NULL, NULL, ARRAY['y','z']), (2, 5004, 'click', 1, 4, true, DATE '2026-03-03', '{}')",
    "INSERT INTO E (tenant_id, event_id) VALUES (4, 5005)",
    "INSERT INTO E VALUES (1, 5001, 'buy', 1, 1, true, NULL, NULL) ON CONFLICT DO NOTHING",
    "INSERT INTO E VALUES (1, 5001, 'sell', 1, 1, true, NULL, NULL) ON CONFLICT (tenant_id, event_id) DO UPDATE SET kind = excluded.kind",
    "UPDATE E SET amount = amount + 1 WHERE tenant_id = 5",
    "UPDATE E SET kind = 'viewed' WHERE kind = 'view' AND event_id < 500",
    "UPDATE E SET score = score * 2 WHERE flag",
    "DELETE FROM E WHERE tenant_id = 6 AND event_id > 1500",
    "DELETE FROM E WHERE kind IS NULL AND event_id % 2 = 0",
    "UPDATE M SET len = len + 1 WHERE tenant_id = 7 AND msg_id < 1000",
    "DELETE FROM M WHERE body LIKE '%urgent' AND tenant_id = 8",
    "INSERT INTO M SELECT tenant_id, event_id, event_id + 100000, 'copy ' || kind, 1 FROM E WHERE kind = 'buy'",
    "INSERT INTO M (tenant_id, event_id, msg_id, body) SELECT e.tenant_id, e.event_id, e.event_id + 200000, k.label FROM E e JOIN K k ON k.kind = e.kind WHERE e.tenant_id = 3",
    "INSERT INTO M SELECT tenant_id, min(event_id), max(event_id) + 300000, 'agg', count(*) FROM E GROUP BY tenant_id",
    // Through the coordinator: the distribution column from another column, ORDER BY/LIMIT
    // across shards, into a reference table, ON CONFLICT, aggregates across shards.
    "INSERT INTO M (tenant_id, event_id, msg_id) SELECT event_id % 20 + 1, tenant_id, event_id + 500000 FROM E WHERE kind = 'click'",
    "INSERT INTO M SELECT e.tenant_id, e.event_id, e.event_id + 400000, 'top', 1 FROM E e JOIN K k ON k.kind = e.kind ORDER BY e.event_id LIMIT 5",
    "INSERT INTO K SELECT DISTINCT 'k_' || kind, 'copied', 0 FROM E WHERE kind IS NOT NULL",
    "INSERT INTO E (tenant_id, event_id, kind) SELECT len % 20 + 1, msg_id, 'conflict' FROM M WHERE msg_id < 3000 ON CONFLICT (tenant_id, event_id) DO UPDATE SET kind = excluded.kind",
    "INSERT INTO E (tenant_id, event_id, amount) SELECT 21, count(*) + 900000, sum(amount) FROM E",
    "UPDATE E SET amount = 1 WHERE event_id IN (SELECT event_id FROM M WHERE len = 7)",
    "DELETE FROM M WHERE tenant_id = 2 AND msg_id IN (SELECT event_id FROM E WHERE amount > 90)",
    "UPDATE E SET amount = amount + 1 FROM l_kinds k WHERE k.kind = E.kind AND k.weight > 5",
    "DELETE FROM M USING l_kinds k WHERE M.body = k.label",
    "UPDATE E SET score = (SELECT max(len) FROM M) WHERE tenant_id = 4",
    "UPDATE K SET weight = weight + 1 WHERE kind = 'buy'",
    "INSERT INTO K VALUES ('share', 'Share', 3)",
    "DELETE FROM K WHERE kind = 'refund'",
];

fn tables(sql: &str, local: bool) -> String {
    let p = if local { "l_" } else { "d_" };
    // Replace the one-letter table markers (upper-case words E, M, K only).
    let mut out = String::new();
    let b = sql.as_bytes();
    for (i, c) in sql.char_indices() {
        let standalone = |j: usize| {
            (j == 0 || !b[j - 1].is_ascii_alphanumeric() && b[j - 1] != b'_')
                && (j + 1 >= b.len() || !b[j + 1].is_ascii_alphanumeric() && b[j + 1] != b'_')
        };
        match c {
            'E' if standalone(i) => out.push_str(&format!("{p}events")),
            'M' if standalone(i) => out.push_str(&format!("{p}messages")),
            'K' if standalone(i) => out.push_str(&format!("{p}kinds")),
            _ => out.push(c),
        }
    }
    out
}

/// What the engine refuses, each with SQLSTATE 0A000 (feature not supported) and a hint.
const REFUSED: &[&str] = &[
    "SELECT unnest(tags), count(*) OVER () FROM E",
    "SELECT DISTINCT ON (kind) kind, count(*) FROM E GROUP BY kind, flag ORDER BY kind, count(*) DESC",
    "SELECT DISTINCT ON (kind) kind, rank() OVER (ORDER BY score) FROM E ORDER BY kind",
    "SELECT k.kind, count(e.event_id) FROM (SELECT kind FROM l_kinds) k LEFT JOIN E e USING (kind) GROUP BY k.kind",
    "SELECT count(*) FROM E HAVING (SELECT count(*) > 0 FROM M)",
    "SELECT count(*) FROM E WHERE (SELECT ROW(1, 'a')) IS NOT NULL",
    "SELECT ROW(kind, score) FROM E ORDER BY 1 LIMIT 2",
    "SELECT e.event_id FROM E e JOIN M m ON m.event_id = e.event_id",
    "UPDATE E SET tenant_id = 2 WHERE tenant_id = 1",
    "UPDATE E SET score = random() WHERE tenant_id = 1",
    "SELECT k.kind, e.event_id FROM K k LEFT JOIN E e ON e.kind = k.kind",
    "SELECT k.kind, s.event_id FROM K k LEFT JOIN (SELECT * FROM E) s ON s.kind = k.kind",
    "INSERT INTO M (tenant_id, event_id, msg_id) SELECT e.tenant_id, e.event_id, e.event_id + 600000 FROM E e JOIN M m ON m.event_id = e.event_id",
];

/// The outcome of one statement, rows rendered as text by the server (so in the session's
/// DateStyle, TimeZone and extra_float_digits).
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Rows(Vec<String>),
    Failed {
        code: Option<String>,
        message: String,
    },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Rows(r) if r.len() <= 12 => write!(f, "{} rows {:?}", r.len(), r),
            Outcome::Rows(r) => write!(f, "{} rows, first {:?}", r.len(), &r[..12]),
            Outcome::Failed { code, message } => write!(
                f,
                "ERROR {}: {message}",
                code.as_deref().unwrap_or("(no SQLSTATE)")
            ),
        }
    }
}

fn failed(e: &postgres::Error) -> Outcome {
    match e.as_db_error() {
        Some(db) => Outcome::Failed {
            code: Some(db.code().code().to_string()),
            message: match db.detail() {
                Some(d) => format!("{} (DETAIL: {d})", db.message()),
                None => db.message().to_string(),
            },
        },
        None => Outcome::Failed {
            code: e.code().map(|c| c.code().to_string()),
            message: e.to_string(),
        },
    }
}

/// A corpus entry: `~ ` in front marks an ORDER BY that is not total (compare sorted).
fn parse_entry(entry: &str) -> (&str, bool) {
    match entry.strip_prefix("~ ") {
        Some(sql) => (sql, false),
        None => (entry, has_top_level_order_by(entry)),
    }
}

/// Whether `sql` has an ORDER BY outside every parenthesis and quote: the one that orders
/// the result (not a window's, an aggregate's or a subquery's).
fn has_top_level_order_by(sql: &str) -> bool {
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut top = String::new();
    for ch in sql.chars() {
        match quote {
            Some(q) if ch == q => quote = None,
            Some(_) => {}
            None => match ch {
                '\'' | '"' => quote = Some(ch),
                '(' => depth += 1,
                ')' => depth -= 1,
                _ if depth == 0 => top.push(ch.to_ascii_uppercase()),
                _ => top.push(' '),
            },
        }
    }
    let words: Vec<&str> = top.split_whitespace().collect();
    words.windows(2).any(|w| w == ["ORDER", "BY"])
}

/// Why two outcomes differ, or None when they agree.
fn difference(local: &Outcome, dist: &Outcome, ordered: bool) -> Option<String> {
    match (local, dist) {
        (Outcome::Rows(l), Outcome::Rows(d)) => {
            let (mut ls, mut ds) = (l.clone(), d.clone());
            ls.sort();
            ds.sort();
            if ls != ds {
                let (only_l, only_d) = multiset_difference(&ls, &ds);
                return Some(format!(
                    "different rows: only local {}: {:?}; only distributed {}: {:?}",
                    only_l.len(),
                    &only_l[..only_l.len().min(10)],
                    only_d.len(),
                    &only_d[..only_d.len().min(10)]
                ));
            }
            if ordered && l != d {
                let i = l.iter().zip(d).position(|(a, b)| a != b).unwrap_or(0);
                return Some(format!(
                    "same rows, different order (ORDER BY compared in order): first at row {i}: local {:?}, distributed {:?}",
                    l[i], d[i]
                ));
            }
            None
        }
        (Outcome::Failed { code: Some(a), .. }, Outcome::Failed { code: Some(b), .. })
            if a == b =>
        {
            None
        }
        (Outcome::Failed { .. }, Outcome::Failed { .. }) => {
            Some("both failed, but not with the same SQLSTATE".into())
        }
        (Outcome::Failed { .. }, _) => Some("fails on the local tables only".into()),
        (_, Outcome::Failed { .. }) => Some("fails on the distributed tables only".into()),
    }
}

/// Rows of sorted `a` missing from sorted `b`, and of `b` missing from `a` (with repeats).
fn multiset_difference(a: &[String], b: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut i, mut j) = (0, 0);
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    while i < a.len() || j < b.len() {
        if j == b.len() || (i < a.len() && a[i] < b[j]) {
            only_a.push(a[i].clone());
            i += 1;
        } else if i == a.len() || b[j] < a[i] {
            only_b.push(b[j].clone());
            j += 1;
        } else {
            i += 1;
            j += 1;
        }
    }
    (only_a, only_b)
}

/// The login role of the `role` variant: it may read and write the test tables, nothing more.
const APP_ROLE: &str = "tessera_diff_app";

/// A session the corpus runs in.
struct Variant {
    name: &'static str,
    /// The login role; the superuser `postgres` when None.
    user: Option<&'static str>,
    /// Run after connecting, before the first query.
    settings: &'static str,
    /// Every statement inside one transaction block (BEGIN once, COMMIT at the end; after an
    /// error, ROLLBACK and BEGIN again).
    in_transaction: bool,
}

static PLAIN: Variant = Variant {
    name: "plain",
    user: None,
    settings: "",
    in_transaction: false,
};

struct Session {
    client: Client,
    variant: &'static Variant,
}

impl Session {
    fn open(variant: &'static Variant) -> Session {
        let mut client = connect_as(coordinator_port(), variant.user.unwrap_or("postgres"));
        client
            .batch_execute(&format!(
                "SET search_path = diff, public; {}",
                variant.settings
            ))
            .unwrap_or_else(|e| panic!("[{}] session settings: {e}", variant.name));
        if variant.in_transaction {
            client.batch_execute("BEGIN").expect("BEGIN");
        }
        Session { client, variant }
    }

    fn run(&mut self, sql: &str) -> Outcome {
        match self.client.simple_query(sql) {
            Ok(msgs) => Outcome::Rows(
                msgs.into_iter()
                    .filter_map(|m| match m {
                        postgres::SimpleQueryMessage::Row(r) => Some(
                            (0..r.len())
                                .map(|i| r.get(i).unwrap_or("NULL"))
                                .collect::<Vec<_>>()
                                .join("|"),
                        ),
                        _ => None,
                    })
                    .collect(),
            ),
            Err(e) => {
                let out = failed(&e);
                if self.client.is_closed() {
                    // A crashed backend: go on in a new session (prepared statements are lost).
                    *self = Session::open(self.variant);
                } else if self.variant.in_transaction {
                    self.client
                        .batch_execute("ROLLBACK; BEGIN")
                        .expect("ROLLBACK; BEGIN");
                }
                out
            }
        }
    }

    fn finish(mut self) {
        if self.variant.in_transaction {
            self.client.batch_execute("COMMIT").expect("COMMIT");
        }
    }
}

/// Differences found by one test, each with the statement, the variant and both outcomes.
struct Failures {
    variant: &'static str,
    checked: usize,
    list: Vec<String>,
}

impl Failures {
    fn new(variant: &'static str) -> Failures {
        Failures {
            variant,
            checked: 0,
            list: Vec::new(),
        }
    }

    fn check(&mut self, what: &str, local: &Outcome, dist: &Outcome, ordered: bool) {
        self.checked += 1;
        if let Some(why) = difference(local, dist, ordered) {
            self.list.push(format!(
                "[{}] {what}\n  {why}\n  local:       {local}\n  distributed: {dist}",
                self.variant
            ));
        }
    }

    fn assert_none(self) {
        assert!(
            self.list.is_empty(),
            "[{}] {} of {} comparisons differ:\n{}",
            self.variant,
            self.list.len(),
            self.checked,
            self.list.join("\n")
        );
    }
}

/// Runs `entry` on the local and on the distributed tables of `s` and compares.
fn compare(s: &mut Session, entry: &str, failures: &mut Failures) {
    let (sql, ordered) = parse_entry(entry);
    let local = s.run(&tables(sql, true));
    let dist = s.run(&tables(sql, false));
    failures.check(sql, &local, &dist, ordered);
}

/// Prepared statements: custom plans first, then the generic plan (6th execution on).
const PREPARED: &[(&str, &str, &[&str])] = &[
    ("p_router", "SELECT event_id, kind FROM E WHERE tenant_id = $1 AND event_id < $2", &["3, 500", "4, 900", "5, 100", "6, 2000", "7, 50", "3, 500", "8, 1000", "20, 2000"]),
    ("p_join", "SELECT e.event_id, m.msg_id FROM E e JOIN M m USING (tenant_id, event_id) WHERE e.tenant_id = $1", &["1", "2", "3", "4", "5", "6", "7", "9"]),
    ("p_multi", "SELECT kind, count(*) FROM E WHERE amount > $1 GROUP BY kind", &["10", "20", "30", "40", "50", "60", "70", "80"]),
    ("p_sub", "SELECT count(*), sum(amount) FROM E WHERE amount > $1 AND event_id IN (SELECT event_id FROM M WHERE len < $2)", &["10, 50", "20, 100", "0, 10", "50, 150", "5, 5", "30, 199", "1, 200", "90, 20"]),
    ("p_text", "SELECT count(*) FROM E WHERE tenant_id = $1 AND kind = $2", &["1, 'buy'", "2, 'view'", "3, NULL", "4, 'click'", "5, 'share'", "6, 'buy'", "7, 'buy'"]),
    // An aggregate pinned to a NULL distribution value still returns its one row.
    ("p_null", "SELECT count(*), sum(amount) FROM E WHERE tenant_id = $1", &["NULL", "3", "NULL", "4", "5", "NULL", "NULL", "6", "NULL"]),
    ("p_null_join", "SELECT count(*) FROM E e JOIN M m USING (tenant_id, event_id) WHERE e.tenant_id = $1", &["NULL", "2", "3", "4", "5", "6", "NULL"]),
    ("p_having", "SELECT kind, count(*) FROM E WHERE amount > $1 GROUP BY kind HAVING count(*) > (SELECT count(*) / 8 FROM E WHERE amount > $1)", &["10", "50", "0", "90", "20", "30", "70", "99"]),
    ("p_time", "SELECT count(*) FROM E WHERE created_at < $1 AND created = $2", &["'2026-01-20', '2026-01-05'", "'02/01/2026', '02/01/2026'", "'2026-02-10 12:00', '2026-01-30'", "'2026-01-05', '2026-01-02'", "'2026-01-06', '2026-01-03'", "'03/01/2026 10:00', '02/01/2026'", "'2026-01-15', '2026-01-11'"]),
];

fn compare_prepared(s: &mut Session, failures: &mut Failures) {
    s.run("DEALLOCATE ALL");
    for (name, sql, args) in PREPARED {
        for local in [true, false] {
            let side = if local { "l" } else { "d" };
            let prepared = s.run(&format!("PREPARE {name}_{side} AS {}", tables(sql, local)));
            if let Outcome::Failed { .. } = prepared {
                failures.list.push(format!(
                    "[{}] PREPARE {name}_{side} AS {sql}\n  {prepared}",
                    failures.variant
                ));
            }
        }
        for a in args.iter() {
            let l = s.run(&format!("EXECUTE {name}_l({a})"));
            let d = s.run(&format!("EXECUTE {name}_d({a})"));
            failures.check(
                &format!("EXECUTE {name}({a}) of {sql}"),
                &l,
                &d,
                has_top_level_order_by(sql),
            );
        }
    }
}

/// One test at a time in this file: they share the schema `diff`.
static SERIAL: Mutex<()> = Mutex::new(());

/// The schema made afresh for one test, dropped at its end whatever the outcome.
struct Fixture {
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Fixture {
    fn new() -> Fixture {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        coordinator().batch_execute(SETUP).expect("setup");
        Fixture { _serial: serial }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = coordinator().batch_execute("DROP SCHEMA IF EXISTS diff CASCADE");
    }
}

/// The SELECT corpus and the prepared statements in one variant's session.
fn select_corpus_in(variant: &'static Variant) -> Failures {
    let queries = corpus();
    assert!(queries.len() >= 150, "corpus has {} queries", queries.len());
    let mut failures = Failures::new(variant.name);
    let mut s = Session::open(variant);
    for q in &queries {
        compare(&mut s, q, &mut failures);
    }
    compare_prepared(&mut s, &mut failures);
    s.finish();
    failures
}

#[test]
fn select_corpus_plain() {
    let _f = Fixture::new();
    let mut failures = select_corpus_in(&PLAIN);
    // The same multi-shard queries with several connections per node.
    let mut s = Session::open(&PLAIN);
    s.run("SET citus.max_adaptive_executor_pool_size = 3");
    for q in corpus()
        .iter()
        .filter(|q| !q.contains("tenant_id ="))
        .take(60)
    {
        compare(&mut s, q, &mut failures);
    }
    s.run("RESET citus.max_adaptive_executor_pool_size");
    // What the engine refuses: each with SQLSTATE 0A000 (feature not supported) and a hint.
    for q in REFUSED {
        failures.checked += 1;
        match s.client.simple_query(&tables(q, false)) {
            Ok(_) => failures
                .list
                .push(format!("[plain] {q}\n  ran, but should be refused")),
            Err(e) => {
                let ok = e.as_db_error().is_some_and(|d| {
                    d.code() == &postgres::error::SqlState::FEATURE_NOT_SUPPORTED
                        && d.hint().is_some()
                });
                if !ok {
                    failures.list.push(format!(
                        "[plain] {q}\n  refused without 0A000 and a hint: {}",
                        failed(&e)
                    ));
                }
            }
        }
    }
    failures.assert_none();
}

#[test]
fn select_corpus_in_a_transaction_block() {
    static V: Variant = Variant {
        name: "transaction block",
        user: None,
        settings: "",
        in_transaction: true,
    };
    let _f = Fixture::new();
    let mut failures = select_corpus_in(&V);
    // Stable functions mean the coordinator's transaction: now() of a statement run on the
    // workers later in the transaction is still the time of BEGIN on the coordinator.
    let mut s = Session::open(&V);
    s.run("SELECT pg_sleep(0.05)");
    let now = s.run("SELECT now()::text");
    for sql in [
        "SELECT max(now())::text FROM d_events WHERE tenant_id = 3",
        "SELECT max(now())::text FROM d_events",
        "SELECT now()::text FROM d_events WHERE tenant_id = 4 LIMIT 1",
        "SELECT (SELECT max(now()) FROM d_events WHERE tenant_id = 5)::text",
        "SELECT max(transaction_timestamp())::text FROM d_messages m JOIN d_events e USING (tenant_id, event_id)",
    ] {
        let got = s.run(sql);
        failures.check(&format!("{sql} (against SELECT now() in the same transaction)"), &now, &got, false);
    }
    s.finish();
    failures.assert_none();
}

#[test]
fn select_corpus_under_datestyle_sql_dmy() {
    static V: Variant = Variant {
        name: "DateStyle = 'SQL, DMY'",
        user: None,
        settings: "SET DateStyle = 'SQL, DMY'",
        in_transaction: false,
    };
    let _f = Fixture::new();
    select_corpus_in(&V).assert_none();
}

#[test]
fn select_corpus_under_timezone_kathmandu() {
    static V: Variant = Variant {
        name: "TimeZone = 'Asia/Kathmandu'",
        user: None,
        settings: "SET TimeZone = 'Asia/Kathmandu'",
        in_transaction: false,
    };
    let _f = Fixture::new();
    select_corpus_in(&V).assert_none();
}

#[test]
fn select_corpus_under_extra_float_digits_0() {
    static V: Variant = Variant {
        name: "extra_float_digits = 0",
        user: None,
        settings: "SET extra_float_digits = 0",
        in_transaction: false,
    };
    let _f = Fixture::new();
    select_corpus_in(&V).assert_none();
}

/// Runs `cmd` on every worker; panics naming the worker where it failed.
fn on_workers(c: &mut Client, cmd: &str) {
    for row in c
        .query(
            "SELECT nodeport, success, result FROM run_command_on_workers($1)",
            &[&cmd],
        )
        .expect("run_command_on_workers")
    {
        let (port, ok, result): (i32, bool, String) = (row.get(0), row.get(1), row.get(2));
        assert!(ok, "{cmd} on worker {port}: {result}");
    }
}

/// Every node gets the login role (if it has not already) and USAGE on the schema; the
/// tables are granted on the coordinator only, and whether that reached the shards is
/// checked (a failure when not). Then the shards get the grants on each worker anyway, so the
/// corpus runs either way.
fn grant_app_role(c: &mut Client, failures: &mut Failures) {
    let create = format!(
        "DO $do$ BEGIN CREATE ROLE {APP_ROLE} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $do$"
    );
    let usage = format!("GRANT USAGE ON SCHEMA diff TO {APP_ROLE}");
    for cmd in [&create, &usage] {
        c.batch_execute(cmd).expect("on the coordinator");
        on_workers(c, cmd);
    }
    // One table per statement: a GRANT on one distributed table reaches its shards (one
    // naming several distributed tables is refused).
    for t in [
        "l_events",
        "l_messages",
        "l_kinds",
        "d_events",
        "d_messages",
        "d_kinds",
    ] {
        c.batch_execute(&format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON diff.{t} TO {APP_ROLE}"
        ))
        .expect("GRANT on the coordinator");
    }
    let mut s = Session::open(&ROLE);
    for sql in [
        "SELECT count(*) FROM d_events",
        "SELECT count(*) FROM d_messages WHERE tenant_id = 3",
        "SELECT count(*) FROM d_kinds",
    ] {
        failures.checked += 1;
        if let out @ Outcome::Failed { .. } = s.run(sql) {
            failures.list.push(format!(
                "[{}] {sql} after GRANT on the coordinator only (does GRANT reach the shards?)\n  distributed: {out}",
                failures.variant
            ));
        }
    }
    on_workers(
        c,
        &format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA diff TO {APP_ROLE}"),
    );
}

static ROLE: Variant = Variant {
    name: "role with table grants only",
    user: Some(APP_ROLE),
    settings: "",
    in_transaction: false,
};

#[test]
fn select_corpus_as_a_role_with_table_grants_only() {
    let _f = Fixture::new();
    let mut failures = Failures::new(ROLE.name);
    grant_app_role(&mut coordinator(), &mut failures);
    let corpus = select_corpus_in(&ROLE);
    failures.checked += corpus.checked;
    failures.list.extend(corpus.list);
    failures.assert_none();
}

#[test]
fn writes_leave_the_same_rows() {
    let _f = Fixture::new();
    let mut failures = Failures::new("plain");
    let mut s = Session::open(&PLAIN);
    // After each statement both sides hold the same rows.
    for stmt in DML {
        let l = s.run(&tables(stmt, true));
        let d = s.run(&tables(stmt, false));
        let (l, d) = match (l, d) {
            // Writes return no rows; only whether and how they failed counts.
            (Outcome::Rows(_), Outcome::Rows(_)) => (Outcome::Rows(vec![]), Outcome::Rows(vec![])),
            other => other,
        };
        failures.check(stmt, &l, &d, false);
        for t in ["SELECT * FROM E", "SELECT * FROM M", "SELECT * FROM K"] {
            let (local, dist) = (s.run(&tables(t, true)), s.run(&tables(t, false)));
            failures.check(&format!("{t} after {stmt}"), &local, &dist, false);
        }
    }
    // RETURNING gives the same rows.
    for stmt in [
        "INSERT INTO E VALUES (9, 6001, 'buy', 1, 1, true, NULL, NULL), (10, 6002, 'buy', 2, 2, false, NULL, NULL) RETURNING tenant_id, event_id, kind",
        "INSERT INTO E (tenant_id, event_id, kind) SELECT event_id % 20 + 1, msg_id + 800000, 'ret' FROM M WHERE msg_id < 20 RETURNING tenant_id, event_id, kind",
        "UPDATE E SET amount = 0 WHERE event_id > 6000 RETURNING tenant_id, event_id, amount",
        "DELETE FROM E WHERE event_id > 6000 RETURNING *",
    ] {
        compare(&mut s, stmt, &mut failures);
    }
    failures.assert_none();
}

/// The comparison rules themselves, without a cluster: a difference of order counts only
/// under a top-level ORDER BY, errors pass only with equal SQLSTATEs.
#[test]
fn comparison_rules() {
    let rows = |r: &[&str]| Outcome::Rows(r.iter().map(|s| s.to_string()).collect());
    let err = |code: Option<&str>| Outcome::Failed {
        code: code.map(String::from),
        message: "m".into(),
    };
    assert!(has_top_level_order_by("SELECT a FROM t ORDER BY a"));
    assert!(has_top_level_order_by(
        "select a from t union select b from u order  by 1"
    ));
    assert!(!has_top_level_order_by(
        "SELECT string_agg(a, ',' ORDER BY b), row_number() OVER (ORDER BY c) FROM t"
    ));
    assert!(!has_top_level_order_by(
        "SELECT * FROM (SELECT a FROM t ORDER BY a LIMIT 3) s"
    ));
    assert!(!has_top_level_order_by("SELECT 'ORDER BY' FROM t"));
    assert_eq!(
        parse_entry("~ SELECT a FROM t ORDER BY a"),
        ("SELECT a FROM t ORDER BY a", false)
    );
    let (ab, ba) = (rows(&["a", "b"]), rows(&["b", "a"]));
    assert!(difference(&ab, &ba, false).is_none());
    assert!(difference(&ab, &ba, true).is_some());
    assert!(difference(&ab, &rows(&["a", "b", "b"]), false).is_some());
    assert!(difference(&err(Some("22012")), &err(Some("22012")), false).is_none());
    assert!(difference(&err(Some("22012")), &err(Some("XX000")), false).is_some());
    assert!(difference(&err(None), &err(None), false).is_some());
    assert!(difference(&ab, &err(Some("0A000")), false).is_some());
    assert!(difference(&err(Some("0A000")), &ab, false).is_some());
}
