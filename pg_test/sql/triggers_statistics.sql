-- Triggers and extended statistics on distributed tables, as an application role that owns
-- its tables. Triggers run on the shards (each shard's rows), so they are refused unless
-- citus.enable_unsafe_triggers is on, as in Citus; statistics objects are made on every shard
-- under the shard's name, so ANALYZE on the shards gathers them.
CREATE SCHEMA trg;
CREATE ROLE trg_app LOGIN;
GRANT USAGE, CREATE ON SCHEMA trg TO trg_app;
SET ROLE trg_app;
SET search_path = trg;
CREATE TABLE orders (tenant_id int NOT NULL, id int NOT NULL, qty int, total int, touched text,
                     PRIMARY KEY (tenant_id, id));
CREATE FUNCTION fill_total() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.total := NEW.qty * 10;
  NEW.touched := TG_OP;
  RETURN NEW;
END $$;
CREATE TRIGGER orders_total BEFORE INSERT OR UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION fill_total();
-- A table with a trigger is not distributed while the setting is off.
SELECT create_distributed_table('orders', 'tenant_id', shard_count => 4);
SET citus.enable_unsafe_triggers = on;
SELECT create_distributed_table('orders', 'tenant_id', shard_count => 4);
INSERT INTO orders (tenant_id, id, qty) SELECT t, i, i FROM generate_series(1, 4) t, generate_series(1, 5) i;
SELECT tenant_id, sum(total), min(touched) FROM orders GROUP BY 1 ORDER BY 1;
UPDATE orders SET qty = 100 WHERE tenant_id = 2 AND id = 1;
SELECT total, touched FROM orders WHERE tenant_id = 2 AND id = 1;
-- Each shard has the trigger.
SELECT sum(result::int) AS shard_triggers FROM run_command_on_workers($$
  SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
   WHERE c.relname ~ '^orders_[0-9]+$' AND t.tgname = 'orders_total'$$);
-- DISABLE / ENABLE, RENAME, CREATE OR REPLACE and DROP follow.
ALTER TABLE orders DISABLE TRIGGER orders_total;
INSERT INTO orders (tenant_id, id, qty) VALUES (1, 6, 3);
SELECT total, touched FROM orders WHERE tenant_id = 1 AND id = 6;
ALTER TABLE orders ENABLE TRIGGER orders_total;
ALTER TRIGGER orders_total ON orders RENAME TO orders_fill;
CREATE OR REPLACE TRIGGER orders_fill BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION fill_total();
UPDATE orders SET qty = 7 WHERE tenant_id = 1 AND id = 6;
INSERT INTO orders (tenant_id, id, qty) VALUES (1, 7, 3);
SELECT id, total, touched FROM orders WHERE tenant_id = 1 AND id IN (6, 7) ORDER BY id;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT string_agg(t.tgname || ':' || t.tgtype, ',' ORDER BY t.tgname) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
   WHERE c.relname ~ '^orders_[0-9]+$' AND NOT t.tgisinternal GROUP BY c.relname$$);
-- A trigger whose name holds the table's name.
CREATE TRIGGER " ON trg.orders " BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION fill_total();
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
   WHERE c.relname ~ '^orders_[0-9]+$' AND t.tgname = ' ON trg.orders '$$);
DROP TRIGGER " ON trg.orders " ON orders;
DROP TRIGGER orders_fill ON orders;
SELECT sum(result::int) AS shard_triggers FROM run_command_on_workers($$
  SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
   WHERE c.relname ~ '^orders_[0-9]+$' AND NOT t.tgisinternal$$);
RESET citus.enable_unsafe_triggers;
CREATE TRIGGER again BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION fill_total();

-- Extended statistics.
CREATE STATISTICS orders_qty_total (dependencies, ndistinct) ON qty, total FROM orders;
CREATE STATISTICS orders_expr ON (qty * 2), tenant_id FROM orders;
ALTER STATISTICS orders_qty_total SET STATISTICS 500;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT string_agg(regexp_replace(s.stxname, '_[0-9]+$', '') || ':' || array_to_string(s.stxkind, '') || ':' || coalesce(s.stxstattarget, -1), ',' ORDER BY s.stxname)
    FROM pg_statistic_ext s JOIN pg_class c ON c.oid = s.stxrelid
   WHERE c.relname ~ '^orders_[0-9]+$' GROUP BY c.relname$$);
CREATE FUNCTION plan_rows(q text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE j json;
BEGIN
  EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO j;
  RETURN (j->0->'Plan'->>'Plan Rows')::float8;
END $$;
-- Before ANALYZE the coordinator knows no row count; after it, the shards' sums.
SELECT reltuples FROM pg_class WHERE oid = 'orders'::regclass;
SELECT plan_rows('SELECT * FROM orders');
ANALYZE orders;
SELECT reltuples, relpages > 0 AS has_pages FROM pg_class WHERE oid = 'orders'::regclass;
SELECT count(*) FROM orders;
SELECT plan_rows('SELECT * FROM orders'), plan_rows('SELECT * FROM orders WHERE qty > 1'),
       plan_rows('SELECT * FROM orders WHERE tenant_id = 1'), plan_rows('SELECT qty, count(*) FROM orders GROUP BY qty');
-- The combine step over the shards' rows is planned for the count too.
EXPLAIN (COSTS OFF) SELECT qty, count(*) FROM orders GROUP BY qty;
SELECT plan_rows('SELECT * FROM orders ORDER BY qty LIMIT 100');
RESET ROLE;
-- A role that may not analyze the table changes nothing (PostgreSQL skips it with a
-- WARNING); a database-wide ANALYZE, which does not reach the shards, keeps the count.
CREATE ROLE trg_other;
GRANT USAGE ON SCHEMA trg TO trg_other;
INSERT INTO trg.orders (tenant_id, id, qty) SELECT 4, i, 1 FROM generate_series(100, 129) i;
SET ROLE trg_other;
ANALYZE trg.orders;
RESET ROLE;
SELECT reltuples FROM pg_class WHERE oid = 'trg.orders'::regclass;
ANALYZE;
SELECT reltuples FROM pg_class WHERE oid = 'trg.orders'::regclass;
SET ROLE trg_app;
ANALYZE orders;
SELECT reltuples FROM pg_class WHERE oid = 'orders'::regclass;
DELETE FROM orders WHERE id >= 100;
RESET ROLE;
SELECT sum(result::int) > 0 AS gathered FROM run_command_on_workers($$
  SELECT count(*) FROM pg_statistic_ext s JOIN pg_statistic_ext_data d ON d.stxoid = s.oid
   WHERE s.stxname ~ '^orders_qty_total_[0-9]+$'$$);
SET ROLE trg_app;
ALTER STATISTICS orders_expr RENAME TO orders_expr2;
DROP STATISTICS orders_expr;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT string_agg(regexp_replace(s.stxname, '_[0-9]+$', ''), ',' ORDER BY s.stxname) FROM pg_statistic_ext s JOIN pg_class c ON c.oid = s.stxrelid
   WHERE c.relname ~ '^orders_[0-9]+$' GROUP BY c.relname$$);
-- A table distributed with its statistics objects: they are made on its shards.
CREATE TABLE items (tenant_id int NOT NULL, a int, b int);
CREATE STATISTICS items_ab ON a, b FROM items;
SELECT create_distributed_table('items', 'tenant_id', colocate_with => 'orders');
SELECT sum(result::int) AS shard_statistics FROM run_command_on_workers($$
  SELECT count(*) FROM pg_statistic_ext WHERE stxname ~ '^items_ab_[0-9]+$'$$);
-- The shards' statistics objects have the coordinator's owner; ALTER ... OWNER TO follows.
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT string_agg(DISTINCT pg_get_userbyid(stxowner), ',') FROM pg_statistic_ext WHERE stxname ~ '^items_ab_[0-9]+$'$$);
RESET ROLE;
CREATE ROLE trg_stats_owner;
ALTER STATISTICS trg.items_ab OWNER TO trg_stats_owner;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT string_agg(DISTINCT pg_get_userbyid(stxowner), ',') FROM pg_statistic_ext WHERE stxname ~ '^items_ab_[0-9]+$'$$);
ALTER STATISTICS trg.items_ab OWNER TO trg_app;
DROP ROLE trg_stats_owner;
SET ROLE trg_app;
-- Default privileges reach the workers.
ALTER DEFAULT PRIVILEGES IN SCHEMA trg GRANT SELECT ON TABLES TO PUBLIC;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT count(*) FROM pg_default_acl d WHERE d.defaclnamespace = 'trg'::regnamespace$$);
-- A table that had the default privilege revoked: its shards have exactly its privileges,
-- not the workers' defaults.
CREATE TABLE dp (tenant_id int NOT NULL);
REVOKE SELECT ON dp FROM PUBLIC;
GRANT INSERT ON dp TO trg_other;
SELECT create_distributed_table('dp', 'tenant_id', colocate_with => 'orders');
SELECT relacl FROM pg_class WHERE oid = 'dp'::regclass;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT string_agg(DISTINCT relacl::text, ',') FROM pg_class WHERE relname ~ '^dp_[0-9]+$'$$);
DROP TABLE dp;
ALTER DEFAULT PRIVILEGES IN SCHEMA trg REVOKE SELECT ON TABLES FROM PUBLIC;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT count(*) FROM pg_default_acl d WHERE d.defaclnamespace = 'trg'::regnamespace$$);
-- A prepared INSERT ... SELECT through the coordinator, with a subquery that runs first,
-- from a generic plan again and again.
SET plan_cache_mode = force_generic_plan;
PREPARE copy_in(int) AS
  INSERT INTO items (tenant_id, a, b) SELECT tenant_id + 0, qty, $1 FROM orders
   WHERE qty >= (SELECT max(qty) FROM orders WHERE tenant_id = 1);
EXECUTE copy_in(1); EXECUTE copy_in(2); EXECUTE copy_in(3);
EXECUTE copy_in(4); EXECUTE copy_in(5); EXECUTE copy_in(6);
SELECT b, count(*) FROM items GROUP BY b ORDER BY b;
DEALLOCATE copy_in;
RESET plan_cache_mode;
-- Tessera writes its catalog as a superuser: none of the user's functions or operators can
-- stand in for the built-in ones there (these would fail if they ran as a superuser).
CREATE FUNCTION trg.nextval(regclass) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    RAISE EXCEPTION 'nextval ran as a superuser';
  END IF;
  RETURN pg_catalog.nextval($1);
END $$;
CREATE FUNCTION trg.eq8(bigint, bigint) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    RAISE EXCEPTION '= ran as a superuser';
  END IF;
  RETURN $1 OPERATOR(pg_catalog.=) $2;
END $$;
CREATE OPERATOR trg.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = trg.eq8);
SET search_path = trg, pg_catalog;
CREATE TABLE hostile (tenant_id int NOT NULL);
SELECT create_distributed_table('hostile', 'tenant_id', colocate_with => 'orders');
DROP TABLE hostile;
RESET search_path;
SET search_path = trg;
DROP OPERATOR trg.= (bigint, bigint);
DROP FUNCTION trg.eq8(bigint, bigint);
DROP FUNCTION trg.nextval(regclass);
-- The DDL event triggers run as whoever issues the DDL (here a superuser whose search_path
-- holds a schema another role writes to): they see only built-in operators.
CREATE FUNCTION trg.oideq(oid, regclass) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    RAISE EXCEPTION 'oid = regclass ran as a superuser';
  END IF;
  RETURN $1 OPERATOR(pg_catalog.=) $2::oid;
END $$;
CREATE OPERATOR trg.= (LEFTARG = oid, RIGHTARG = regclass, FUNCTION = trg.oideq);
RESET ROLE;
SET search_path = trg, public;
CREATE SCHEMA trg_probe;
CREATE TYPE trg_probe.t AS ENUM ('x');
ALTER SCHEMA trg_probe RENAME TO trg_probe2;
SELECT type, object_names FROM pg_dist_object WHERE object_names::text LIKE '%trg_probe%' ORDER BY 1, 2;
DROP SCHEMA trg_probe2 CASCADE;
SELECT count(*) FROM pg_dist_object WHERE object_names::text LIKE '%trg_probe%';
SET ROLE trg_app;
SET search_path = trg;
DROP OPERATOR trg.= (oid, regclass);
DROP FUNCTION trg.oideq(oid, regclass);
-- The owner drops its distributed tables.
DROP TABLE items;
DROP TABLE orders;
SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text IN ('orders', 'items');
DROP FUNCTION fill_total();
DROP FUNCTION plan_rows(text);
RESET ROLE;
RESET search_path;
DROP SCHEMA trg CASCADE;
DROP ROLE trg_app;
DROP ROLE trg_other;
