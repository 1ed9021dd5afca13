-- Aggregates across shards through PostgreSQL's partial aggregation (combine, serialize and
-- deserialize functions) and, for aggregates that cannot be combined, over the shards' rows:
-- every answer is compared with the same aggregate over a plain local table.
CREATE SCHEMA aggs;
SET search_path = aggs, public;
CREATE TABLE l (id int, g int, x float8, y float8, n numeric, t text, j jsonb, b bit(4));
INSERT INTO l SELECT i, i % 5, i * 1.5, (i % 7) * 2.0, i / 3.0, 'v' || i,
                     jsonb_build_object('k', i), (i % 16)::bit(4)
  FROM generate_series(1, 1000) i;
INSERT INTO l VALUES (1001, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE d AS SELECT * FROM l;
SELECT create_distributed_table('d', 'id');
-- Users' aggregates, created on the coordinator (schemas, functions and aggregates reach
-- every node):
--   sumsq: a SQL transition function with a numeric state and a combine function;
--   my_avg: an internal state with serialization functions (numeric avg's own);
--   accum: polymorphic (anycompatible, array state);
--   sum: a user's aggregate named like a built-in one (a product of bigints), so the built-in
--        sum's combine step must not be used for it;
--   concat_all: no combine function (runs over the shards' rows).
CREATE SCHEMA IF NOT EXISTS aggs_fn;
CREATE FUNCTION aggs_fn.sumsq_step(numeric, numeric) RETURNS numeric
  LANGUAGE sql IMMUTABLE STRICT AS 'SELECT $1 + $2 * $2';
CREATE AGGREGATE aggs_fn.sumsq(numeric) (SFUNC = aggs_fn.sumsq_step, STYPE = numeric,
  INITCOND = '0', COMBINEFUNC = numeric_add);
CREATE AGGREGATE aggs_fn.my_avg(numeric) (SFUNC = numeric_avg_accum, STYPE = internal,
  FINALFUNC = numeric_avg, COMBINEFUNC = numeric_avg_combine,
  SERIALFUNC = numeric_avg_serialize, DESERIALFUNC = numeric_avg_deserialize);
CREATE AGGREGATE aggs_fn.accum(anycompatible) (SFUNC = array_append,
  STYPE = anycompatiblearray, INITCOND = '{}', COMBINEFUNC = array_cat);
CREATE AGGREGATE aggs_fn.sum(bigint) (SFUNC = int8mul, STYPE = bigint, INITCOND = '1',
  COMBINEFUNC = int8mul);
CREATE AGGREGATE aggs_fn.concat_all(text) (SFUNC = textcat, STYPE = text, INITCOND = '');
-- Each query over d and over l; "same" when the answers are equal.
CREATE FUNCTION same(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE dist text; loc text;
BEGIN
  EXECUTE format('SELECT string_agg(r::text, E''\n'') FROM (%s) r', replace(q, '%T', 'aggs.d')) INTO dist;
  EXECUTE format('SELECT string_agg(r::text, E''\n'') FROM (%s) r', replace(q, '%T', 'aggs.l')) INTO loc;
  RETURN CASE WHEN dist IS NOT DISTINCT FROM loc THEN 'same' ELSE 'DIFFERENT: ' || coalesce(dist, '<null>') || ' <> ' || coalesce(loc, '<null>') END;
END $$;
-- accum's order is the order rows arrive in.
CREATE FUNCTION sorted(anyarray) RETURNS anyarray LANGUAGE sql IMMUTABLE AS
  $$ SELECT array_agg(e ORDER BY e) FROM unnest($1) e $$;
-- Floating-point sums depend on the order of addition (as in PostgreSQL's own parallel
-- aggregation), so float results are compared to 9 significant digits.
CREATE FUNCTION r9(float8) RETURNS numeric LANGUAGE sql IMMUTABLE AS
  $$ SELECT CASE WHEN $1 = 0 THEN 0 ELSE round($1::numeric, 8 - floor(log(abs($1::numeric)))::int) END $$;
SELECT q, same(q) FROM (VALUES
  ('SELECT r9(stddev(x)), var_samp(n), r9(regr_slope(y, x)), r9(regr_intercept(y, x)) FROM %T'),
  ('SELECT g, r9(stddev(x)), var_samp(n), r9(regr_slope(y, x)), stddev_pop(n) FROM %T GROUP BY g ORDER BY g'),
  ('SELECT r9(variance(x)), variance(id), var_pop(n), stddev_samp(id), r9(corr(x, y)), r9(covar_samp(x, y)), r9(covar_pop(x, y)) FROM %T'),
  ('SELECT regr_count(y, x), r9(regr_avgx(y, x)), r9(regr_avgy(y, x)), r9(regr_r2(y, x)), r9(regr_sxx(y, x)), r9(regr_sxy(y, x)), r9(regr_syy(y, x)) FROM %T'),
  ('SELECT g, bit_xor(id), bit_and(b), bit_or(b) FROM %T GROUP BY g ORDER BY g'),
  ('SELECT json_agg(id ORDER BY id) FILTER (WHERE id < 8), jsonb_agg(j ORDER BY id DESC) FILTER (WHERE id < 5) FROM %T'),
  ('SELECT g, json_agg(x ORDER BY x DESC) FILTER (WHERE id < 20), jsonb_agg(t ORDER BY t) FILTER (WHERE id < 20) FROM %T GROUP BY g ORDER BY g'),
  ('SELECT json_object_agg(id, t ORDER BY id) FILTER (WHERE id < 6), jsonb_object_agg(t, id) FILTER (WHERE id < 6) FROM %T'),
  ('SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x), percentile_disc(0.9) WITHIN GROUP (ORDER BY n), mode() WITHIN GROUP (ORDER BY g) FROM %T'),
  ('SELECT g, percentile_cont(ARRAY[0.1, 0.5]) WITHIN GROUP (ORDER BY id), rank(500) WITHIN GROUP (ORDER BY id) FROM %T GROUP BY g ORDER BY g'),
  ('SELECT g, string_agg(DISTINCT t, '','' ORDER BY t) FILTER (WHERE id < 30), array_agg(id ORDER BY id DESC) FILTER (WHERE id < 15) FROM %T GROUP BY g ORDER BY g'),
  ('SELECT string_agg(t, g::text ORDER BY id) FILTER (WHERE id < 12) FROM %T'),
  ('SELECT g, count(*), r9(stddev(x)), json_agg(id ORDER BY id) FILTER (WHERE id < 12) FROM %T GROUP BY g HAVING count(*) > 100 ORDER BY g'),
  ('SELECT aggs_fn.sumsq(n), aggs_fn.my_avg(n), aggs_fn.sum(id::bigint % 3 + 1) FILTER (WHERE id < 40), sum(id::bigint) FROM %T'),
  ('SELECT g, aggs_fn.sumsq(n), aggs_fn.my_avg(n), aggs_fn.sum(id::bigint % 2 + 1) FILTER (WHERE id < 30) FROM %T GROUP BY g ORDER BY g'),
  ('SELECT aggs.sorted(aggs_fn.accum(id) FILTER (WHERE id < 10)), aggs.sorted(aggs_fn.accum(t) FILTER (WHERE id < 5)) FROM %T'),
  ('SELECT g, aggs.sorted(aggs_fn.accum(x) FILTER (WHERE id < 30)) FROM %T GROUP BY g ORDER BY g'),
  ('SELECT length(aggs_fn.concat_all(t)), r9(stddev(x)) FROM %T'),
  ('SELECT r9(stddev(x)), regr_count(y, x), aggs_fn.sumsq(n), aggs_fn.my_avg(n), json_agg(id) FROM %T WHERE id < 0'),
  ('SELECT g, r9(stddev(x)), aggs_fn.sumsq(n) FROM %T WHERE id < 0 GROUP BY g')
) v(q);
-- A non-strict combine function sees a NULL state, as in PostgreSQL's parallel aggregation:
-- one NULL makes nullprop_sum NULL, across shards as on one table. An aggregate without
-- arguments (mycount(*)). A text state (timestamptz) travels in ISO form whatever the
-- session's DateStyle and TimeZone, also when the statement prints dates as text.
CREATE FUNCTION aggs_fn.nn_add(int, int) RETURNS int LANGUAGE sql CALLED ON NULL INPUT
  AS 'SELECT $1 + $2';
CREATE AGGREGATE aggs_fn.nullprop_sum(int) (SFUNC = aggs_fn.nn_add, STYPE = int, INITCOND = '0',
  COMBINEFUNC = aggs_fn.nn_add);
CREATE AGGREGATE aggs_fn.mycount(*) (SFUNC = int8inc, STYPE = int8, INITCOND = '0',
  COMBINEFUNC = int8pl);
CREATE AGGREGATE aggs_fn.tsmax(timestamptz) (SFUNC = timestamptz_larger, STYPE = timestamptz,
  COMBINEFUNC = timestamptz_larger);
ALTER TABLE d ADD COLUMN ts timestamptz;
ALTER TABLE l ADD COLUMN ts timestamptz;
UPDATE d SET ts = TIMESTAMPTZ '2026-01-01 00:00:00+00' + id * INTERVAL '1 hour';
UPDATE l SET ts = TIMESTAMPTZ '2026-01-01 00:00:00+00' + id * INTERVAL '1 hour';
SELECT q, same(q) FROM (VALUES
  ('SELECT aggs_fn.nullprop_sum(g), aggs_fn.nullprop_sum(id) FROM %T'),
  ('SELECT g, aggs_fn.nullprop_sum(g) FROM %T GROUP BY g ORDER BY g'),
  ('SELECT aggs_fn.mycount(*), count(*) FROM %T'),
  ('SELECT g, aggs_fn.mycount(*) FROM %T WHERE id > 500 GROUP BY g ORDER BY g')
) v(q);
SET DateStyle = 'SQL, DMY';
SET TimeZone = 'Asia/Kolkata';
SELECT aggs_fn.tsmax(ts), max(ts::text) FROM d;
SELECT aggs_fn.tsmax(ts), max(ts::text) FROM l;
RESET DateStyle;
RESET TimeZone;
-- The workers compute the state, the coordinator combines it; EXPLAIN shows both.
SET compute_query_id = off;
EXPLAIN (COSTS OFF, VERBOSE) SELECT g, stddev(x) FROM d GROUP BY g;
RESET compute_query_id;
-- An aggregate that cannot be combined: the shards send rows, the coordinator aggregates.
EXPLAIN (COSTS OFF) SELECT g, json_agg(id ORDER BY id) FROM d GROUP BY g;
-- Prepared, with a generic plan.
SET plan_cache_mode = force_generic_plan;
PREPARE p(int) AS SELECT r9(stddev(x)), aggs_fn.sumsq(n), json_agg(id ORDER BY id) FROM d WHERE id <= $1;
EXECUTE p(10);
EXECUTE p(20);
SELECT r9(stddev(x)), aggs_fn.sumsq(n), json_agg(id ORDER BY id) FROM l WHERE id <= 20;
RESET plan_cache_mode;
-- An application role with SELECT only.
CREATE ROLE aggs_reader LOGIN;
GRANT USAGE ON SCHEMA aggs, aggs_fn TO aggs_reader;
GRANT SELECT ON d TO aggs_reader;
SET ROLE aggs_reader;
SELECT r9(stddev(x)), var_samp(n), aggs_fn.my_avg(n), json_agg(id ORDER BY id) FILTER (WHERE id < 4) FROM d;
RESET ROLE;
-- The helper aggregates, called directly by an application role, check what they are given
-- as the executor would, and the combine step cannot be handed bytes at all: its state
-- argument is `internal`, which only the Tessera scan makes.
SET ROLE aggs_reader;
SELECT tessera_combine_agg('pg_catalog.sum(int8)'::regprocedure::oid, ARRAY['int8'::regtype::oid], '\x00'::bytea, NULL::numeric);
SELECT tessera_combine_agg('pg_catalog.sum(int8)'::regprocedure::oid, ARRAY['int8'::regtype::oid], NULL::internal, NULL::int);
SELECT tessera_combine_agg('pg_catalog.avg(numeric)'::regprocedure::oid, ARRAY['numeric'::regtype::oid], NULL::internal, NULL::numeric);
SELECT tessera_partial_agg('pg_catalog.sum(int8)'::regprocedure, 'x'::text);
SELECT tessera_partial_agg('pg_catalog.sum(int8)'::regprocedure, 'x');
SELECT tessera_partial_agg('pg_catalog.percentile_disc(float8, anyelement)'::regprocedure, 0.5::float8, 1);
RESET ROLE;
-- Polymorphic inputs must be the types a real call passes (the parser coerces those), and a
-- strict transition function without an initial value must take its state type (as
-- PostgreSQL's executor checks): otherwise C functions would read values of another type.
CREATE AGGREGATE aggs_fn.rep(anycompatible, anycompatible) (SFUNC = array_replace,
  STYPE = anycompatiblearray, INITCOND = '{abc}');
CREATE FUNCTION aggs_fn.pick(anyelement, anyarray) RETURNS anyelement STRICT LANGUAGE sql
  AS 'SELECT $2[1]';
CREATE AGGREGATE aggs_fn.weird(anyarray) (SFUNC = aggs_fn.pick, STYPE = anyelement);
GRANT EXECUTE ON FUNCTION aggs_fn.rep(anycompatible, anycompatible), aggs_fn.weird(anyarray) TO aggs_reader;
SET ROLE aggs_reader;
SELECT tessera_partial_agg('aggs_fn.rep(anycompatible,anycompatible)'::regprocedure, 'abc'::bytea, 'x');
SELECT tessera_partial_agg('aggs_fn.rep(anycompatible,anycompatible)'::regprocedure, 1.5::numeric, 12345);
SELECT tessera_partial_agg('aggs_fn.rep(anycompatible,anycompatible)'::regprocedure, 1.5::float8, 7);
SELECT tessera_partial_agg('aggs_fn.rep(anycompatible,anycompatible)'::regprocedure, 'abc'::text, 'dddd'::text) IS NOT NULL AS same_types_run;
SELECT tessera_partial_agg('aggs_fn.weird(anyarray)'::regprocedure, ARRAY[5::int8]);
RESET ROLE;
-- An aggregate created later, on the coordinator alone, reaches every node too.
CREATE AGGREGATE coordinator_only(int) (SFUNC = int4pl, STYPE = int, COMBINEFUNC = int4pl);
\set VERBOSITY terse
SELECT coordinator_only(id) FROM d;
\set VERBOSITY default
DROP SCHEMA aggs CASCADE;
DROP SCHEMA aggs_fn CASCADE;
SELECT DISTINCT result FROM run_command_on_workers($$SELECT count(*) FROM pg_namespace WHERE nspname IN ('aggs', 'aggs_fn')$$);
DROP ROLE aggs_reader;
