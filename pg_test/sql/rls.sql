-- Row-level security on distributed tables: the shards carry the flags and the policies, so
-- every query (through the coordinator, whose connections run as the current user, or
-- directly on a worker) is bound by them; the session's custom settings (app.tenant) reach
-- the shard queries, where the policies read them.
CREATE SCHEMA rls;
SET search_path = rls, public;
CREATE ROLE rls_all LOGIN;      -- SELECT, and a policy that shows everything
CREATE ROLE rls_none LOGIN;     -- no SELECT
CREATE ROLE rls_tenant LOGIN;   -- SELECT, limited to its tenant by a policy
GRANT USAGE ON SCHEMA rls TO rls_all, rls_none, rls_tenant;
CREATE TABLE docs (tenant_id int NOT NULL, id int NOT NULL, body text, PRIMARY KEY (tenant_id, id));
INSERT INTO docs SELECT t, i, 'doc ' || t || '/' || i FROM generate_series(1, 3) t, generate_series(1, 5) i;
ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
CREATE POLICY see_all ON docs TO rls_all USING (true);
GRANT SELECT ON docs TO rls_all;
-- Distributed with its policy: the shards get the flag and the policy.
SELECT create_distributed_table('docs', 'tenant_id', shard_count => 4);
-- A policy made afterwards reaches the shards too.
CREATE POLICY own_tenant ON docs TO rls_tenant
  USING (tenant_id = nullif(current_setting('app.tenant', true), '')::int)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant', true), '')::int);
GRANT SELECT, INSERT ON docs TO rls_tenant;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT coalesce(string_agg(DISTINCT c.relrowsecurity || ':' || p.polname, ',' ORDER BY c.relrowsecurity || ':' || p.polname), '-')
    FROM pg_class c JOIN pg_policy p ON p.polrelid = c.oid WHERE c.relname ~ '^docs_[0-9]+$'$$);
-- Through the coordinator.
SET ROLE rls_all;
SELECT count(*) FROM docs;
RESET ROLE;
SET ROLE rls_none;
SELECT count(*) FROM docs;
RESET ROLE;
SET ROLE rls_tenant;
SELECT count(*) FROM docs;
SET app.tenant = 2;
SELECT tenant_id, count(*) FROM docs GROUP BY tenant_id ORDER BY tenant_id;
SELECT body FROM docs WHERE tenant_id = 2 AND id = 3;
SELECT body FROM docs WHERE tenant_id = 3 AND id = 3;
SET app.tenant = 3;
SELECT tenant_id, count(*) FROM docs GROUP BY tenant_id ORDER BY tenant_id;
-- Prepared, with a generic plan: the setting is read at each execution.
SET plan_cache_mode = force_generic_plan;
PREPARE mine(int) AS SELECT count(*) FROM docs WHERE id <= $1;
EXECUTE mine(5);
SET app.tenant = 1;
EXECUTE mine(2);
RESET plan_cache_mode;
-- Inside a transaction, SET LOCAL.
BEGIN;
SET LOCAL app.tenant = 2;
SELECT count(*) FROM docs;
COMMIT;
SELECT count(*) FROM docs;
-- Writes are checked by the policy on the shard.
INSERT INTO docs VALUES (1, 6, 'mine');
INSERT INTO docs VALUES (2, 6, 'not mine');
RESET app.tenant;
SELECT count(*) FROM docs;
RESET ROLE;
-- Directly on the worker that holds tenant 2, as the same roles: the shard's policy and
-- privileges hold there too.
SELECT nodeport AS t2port FROM citus_shards
 WHERE shardid = get_shard_id_for_distribution_column('rls.docs', 2) \gset
\c postgres rls_tenant 127.0.0.1 :t2port
\set ECHO none
SET app.tenant = 2;
SELECT 'SELECT tenant_id, count(*) FROM (' ||
       string_agg(format('SELECT tenant_id FROM rls.%I', relname), ' UNION ALL ') || ') s GROUP BY 1 ORDER BY 1'
  FROM pg_class WHERE relname ~ '^docs_[0-9]+$' AND relkind = 'r' \gexec
RESET app.tenant;
SELECT 'SELECT count(*) AS without_the_setting FROM (' ||
       string_agg(format('SELECT tenant_id FROM rls.%I', relname), ' UNION ALL ') || ') s'
  FROM pg_class WHERE relname ~ '^docs_[0-9]+$' AND relkind = 'r' \gexec
\set ECHO all
SELECT bool_or(has_table_privilege('rls_none', oid, 'SELECT')) AS rls_none_may_read
  FROM pg_class WHERE relname ~ '^docs_[0-9]+$' AND relkind = 'r';
\c postgres postgres 127.0.0.1 9800
SET search_path = rls, public;
-- A policy's names are the coordinator's, whatever the worker's search_path: vis() here is
-- rls.vis (only tenant 1), not public.vis (everything).
CREATE FUNCTION rls.vis(int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1 = 1';
CREATE FUNCTION public.vis(int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT true';
CREATE ROLE rls_vis LOGIN;
GRANT USAGE ON SCHEMA rls TO rls_vis;
GRANT SELECT ON docs TO rls_vis;
CREATE POLICY by_vis ON docs TO rls_vis USING (vis(tenant_id));
SET ROLE rls_vis;
SELECT tenant_id, count(*) FROM docs GROUP BY tenant_id ORDER BY tenant_id;
RESET ROLE;
ALTER POLICY by_vis ON docs USING (vis(tenant_id) AND id <= 2);
SET ROLE rls_vis;
SELECT tenant_id, count(*) FROM docs GROUP BY tenant_id ORDER BY tenant_id;
RESET ROLE;
DROP POLICY by_vis ON docs;
DROP FUNCTION public.vis(int);
-- A setting the session resets goes back to its reset value on the nodes (not to an empty
-- string it may not take), and one only a superuser may set is not sent for other roles.
SET plpgsql.variable_conflict = use_column;
SELECT count(*) FROM docs;
RESET plpgsql.variable_conflict;
SELECT count(*) FROM docs;
SET pg_stat_statements.track = 'top';
SET ROLE rls_all;
SELECT count(*) FROM docs;
RESET ROLE;
RESET pg_stat_statements.track;
-- SESSION_USER in a GRANT would name another role on the workers under SET ROLE.
GRANT rls_all TO rls_tenant;
SET ROLE rls_all;
GRANT SELECT ON docs TO SESSION_USER;
RESET ROLE;
REVOKE rls_all FROM rls_tenant;
-- A policy that reads a reference table (who may see which tenant) works on the shards, where
-- it reads the reference table's shard: through the coordinator, in a generic plan, and on
-- a worker directly. A policy that reads a table the shards cannot read is refused.
CREATE ROLE rls_member LOGIN;
GRANT USAGE ON SCHEMA rls TO rls_member;
GRANT SELECT ON docs TO rls_member;
CREATE TABLE "Members ü" (user_name text, tenant_id int);
SELECT create_reference_table('"Members ü"');
INSERT INTO "Members ü" VALUES ('rls_member', 1), ('rls_member', 3), ('someone', 2);
GRANT SELECT ON "Members ü" TO rls_member;
CREATE POLICY by_membership ON docs TO rls_member
  USING (tenant_id IN (SELECT m.tenant_id FROM "Members ü" m WHERE m.user_name = current_user));
SET ROLE rls_member;
SELECT tenant_id, count(*) FROM docs GROUP BY tenant_id ORDER BY tenant_id;
SELECT count(*) FROM docs WHERE tenant_id = 2;
SET plan_cache_mode = force_generic_plan;
PREPARE member_docs(int) AS SELECT count(*) FROM docs WHERE tenant_id = $1;
EXECUTE member_docs(3);
EXECUTE member_docs(2);
DEALLOCATE member_docs;
RESET plan_cache_mode;
RESET ROLE;
INSERT INTO "Members ü" VALUES ('rls_member', 2);
SET ROLE rls_member;
SELECT count(*) FROM docs WHERE tenant_id = 2;
RESET ROLE;
SELECT nodeport AS t2port FROM citus_shards
 WHERE shardid = get_shard_id_for_distribution_column('rls.docs', 2) \gset
\c postgres rls_member 127.0.0.1 :t2port
\set ECHO none
SELECT 'SELECT tenant_id, count(*) AS on_the_worker FROM (' ||
       string_agg(format('SELECT tenant_id FROM rls.%I', relname), ' UNION ALL ') || ') s GROUP BY 1 ORDER BY 1'
  FROM pg_class WHERE relname ~ '^docs_[0-9]+$' AND relkind = 'r' \gexec
\set ECHO all
\c postgres postgres 127.0.0.1 9800
SET search_path = rls, public;
-- A policy that reads session_user: logged in as the role, the shards (whose session user is
-- the current role) allow the rows the table allows; under SET ROLE, where the shards would
-- see another session user, the query is refused, from a generic plan prepared before the
-- SET ROLE and for an INSERT's WITH CHECK too.
CREATE ROLE rls_session LOGIN;
GRANT USAGE ON SCHEMA rls TO rls_session;
GRANT SELECT, INSERT ON docs TO rls_session;
GRANT SELECT ON "Members ü" TO rls_session;
INSERT INTO "Members ü" VALUES ('rls_session', 2);
CREATE POLICY by_session ON docs TO rls_session
  USING (tenant_id IN (SELECT m.tenant_id FROM "Members ü" m WHERE m.user_name = session_user))
  WITH CHECK (tenant_id IN (SELECT m.tenant_id FROM "Members ü" m WHERE m.user_name = session_user));
\c postgres rls_session 127.0.0.1 9800
SET search_path = rls, public;
SELECT tenant_id, count(*) FROM docs GROUP BY tenant_id ORDER BY tenant_id;
INSERT INTO docs VALUES (2, 100, 'by session');
INSERT INTO docs VALUES (3, 100, 'not mine');
\c postgres postgres 127.0.0.1 9800
SET search_path = rls, public;
SET plan_cache_mode = force_generic_plan;
PREPARE session_docs AS SELECT count(*) FROM docs;
EXECUTE session_docs;
SET ROLE rls_session;
SELECT tenant_id, count(*) FROM docs GROUP BY tenant_id ORDER BY tenant_id;
EXECUTE session_docs;
INSERT INTO docs VALUES (2, 101, 'under SET ROLE');
RESET ROLE;
DEALLOCATE session_docs;
RESET plan_cache_mode;
DELETE FROM docs WHERE id >= 100;
DROP POLICY by_session ON docs;
-- Through a view owned by another role, PostgreSQL applies the view owner's policies; the
-- shards would apply the current role's: refused. A security_invoker view applies the
-- current role's, as the shards do.
CREATE VIEW docs_view AS SELECT tenant_id, id FROM docs;
ALTER VIEW docs_view OWNER TO rls_all;
GRANT SELECT ON docs_view TO rls_tenant;
SET ROLE rls_tenant;
SET app.tenant = 2;
SELECT count(*) FROM docs_view;
RESET ROLE;
ALTER VIEW docs_view SET (security_invoker = true);
SET ROLE rls_tenant;
SELECT tenant_id, count(*) FROM docs_view GROUP BY tenant_id ORDER BY tenant_id;
RESET app.tenant;
RESET ROLE;
DROP VIEW docs_view;
-- A view's CHECK OPTION: the shard statements name the table, so nothing would check the
-- view's condition: a write through it is refused (a plain table would refuse the row).
CREATE VIEW docs_tenant_1 AS SELECT * FROM docs WHERE tenant_id = 1 WITH CHECK OPTION;
INSERT INTO docs_tenant_1 VALUES (2, 200, 'outside the view');
SELECT count(*) FROM docs WHERE id = 200;
DROP VIEW docs_tenant_1;
CREATE TABLE plain_members (user_name text, tenant_id int);
CREATE POLICY by_plain ON docs USING (tenant_id IN (SELECT tenant_id FROM plain_members));
CREATE POLICY by_self ON docs USING (EXISTS (SELECT 1 FROM docs d2 WHERE d2.id = docs.id + 1));
ALTER POLICY by_membership ON docs USING (tenant_id IN (SELECT tenant_id FROM plain_members));
SELECT polname FROM pg_policy WHERE polrelid = 'docs'::regclass ORDER BY 1;
-- A table with such a policy is refused when distributed, and stays as it was.
CREATE TABLE undistributed (k int);
ALTER TABLE undistributed ENABLE ROW LEVEL SECURITY;
CREATE POLICY by_plain ON undistributed USING (k IN (SELECT tenant_id FROM plain_members));
SELECT create_distributed_table('undistributed', 'k');
SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = 'undistributed'::regclass;
DROP POLICY by_membership ON docs;
-- DISABLE and DROP POLICY follow.
DROP POLICY own_tenant ON docs;
ALTER TABLE docs DISABLE ROW LEVEL SECURITY;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT coalesce(string_agg(DISTINCT c.relrowsecurity || ':' || coalesce(p.polname, '-'), ','), '-')
    FROM pg_class c LEFT JOIN pg_policy p ON p.polrelid = c.oid WHERE c.relname ~ '^docs_[0-9]+$'$$);
SET ROLE rls_tenant;
SELECT count(*) FROM docs;
RESET ROLE;
DROP SCHEMA rls CASCADE;
DROP ROLE rls_all, rls_none, rls_tenant, rls_vis, rls_member, rls_session;
