-- Roles reach every node: the connections to the workers run as the current user. A password
-- travels as the verifier the coordinator stored, never as typed. Connections are kept per
-- user: SET ROLE and SECURITY DEFINER functions never reuse another role's connection.
CREATE SCHEMA roles_t;
SET search_path = roles_t, public;
CREATE TABLE sec_t (k int PRIMARY KEY, v text);
SELECT create_distributed_table('sec_t', 'k', shard_count => 4);
INSERT INTO sec_t SELECT i, 'v' || i FROM generate_series(1, 20) i;
CREATE ROLE "Alice ü" LOGIN PASSWORD 'correct horse' CONNECTION LIMIT 7;
CREATE ROLE bob LOGIN;
-- Every worker has the roles, with the coordinator's attributes and password verifier.
SELECT nodeport, result FROM run_command_on_workers($$
  SELECT string_agg(format('%s login=%s limit=%s', rolname, rolcanlogin, rolconnlimit), '; ' ORDER BY rolname)
    FROM pg_roles WHERE rolname IN ('Alice ü', 'bob')$$) ORDER BY nodeport;
SELECT DISTINCT result = (SELECT rolpassword FROM pg_authid WHERE rolname = 'Alice ü') AS same_verifier
  FROM run_command_on_workers($$SELECT rolpassword FROM pg_authid WHERE rolname = 'Alice ü'$$);
SELECT DISTINCT result LIKE 'SCRAM-SHA-256$%' AS hashed
  FROM run_command_on_workers($$SELECT rolpassword FROM pg_authid WHERE rolname = 'Alice ü'$$);
-- The schema's and the table's grants reach the workers.
GRANT USAGE ON SCHEMA roles_t TO "Alice ü", bob;
GRANT SELECT ON sec_t TO "Alice ü";
SET ROLE "Alice ü";
SELECT count(*), min(k), max(k) FROM sec_t;
SELECT v FROM sec_t WHERE k = 3;
SELECT DISTINCT result FROM run_command_on_workers('SELECT current_user');
RESET ROLE;
-- bob has no SELECT: refused on the coordinator, and on the shards themselves too.
SET ROLE bob;
SELECT count(*) FROM sec_t;
SELECT DISTINCT w.success, regexp_replace(w.result, '[0-9]+', 'N') AS result
  FROM pg_dist_shard s
  JOIN citus_shards cs ON cs.shardid = s.shardid,
  LATERAL run_command_on_workers(format('SELECT count(*) FROM %s', shard_name(s.logicalrelid, s.shardid))) w
 WHERE s.logicalrelid = 'roles_t.sec_t'::regclass AND w.nodeport = cs.nodeport;
RESET ROLE;
-- A SECURITY DEFINER function runs on the workers as its owner, and the caller's own
-- connections stay the caller's, before and after.
CREATE FUNCTION worker_user() RETURNS text LANGUAGE sql SECURITY DEFINER
  AS $$ SELECT string_agg(DISTINCT result, ',') FROM run_command_on_workers('SELECT current_user') $$;
GRANT EXECUTE ON FUNCTION worker_user() TO "Alice ü";
SET ROLE "Alice ü";
SELECT DISTINCT result FROM run_command_on_workers('SELECT current_user');
SELECT worker_user();
SELECT DISTINCT result FROM run_command_on_workers('SELECT current_user');
SELECT count(*) FROM sec_t;
RESET ROLE;
-- Privileges given before the table is distributed reach its shards too (table and column
-- privileges), and the shards belong to the table's owner; ALTER TABLE ... OWNER TO follows.
CREATE TABLE pre_granted (k int PRIMARY KEY, v text, secret text);
GRANT SELECT (k, v) ON pre_granted TO bob;
GRANT SELECT, INSERT ON pre_granted TO "Alice ü";
SELECT create_distributed_table('pre_granted', 'k', shard_count => 2);
INSERT INTO pre_granted VALUES (1, 'one', 's1'), (2, 'two', 's2');
SET ROLE bob;
SELECT k, v FROM pre_granted ORDER BY k;
SELECT secret FROM pre_granted;
RESET ROLE;
SET ROLE "Alice ü";
INSERT INTO pre_granted VALUES (3, 'three', 's3');
SELECT count(*) FROM pre_granted;
RESET ROLE;
ALTER TABLE pre_granted OWNER TO "Alice ü";
SELECT DISTINCT pg_get_userbyid(relowner) = 'Alice ü' AS shards_owned FROM pg_class WHERE relname = 'pre_granted';
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT coalesce(string_agg(DISTINCT pg_get_userbyid(relowner), ','), '-') FROM pg_class WHERE relname ~ '^pre_granted_[0-9]+$'$$);
-- ALTER ROLE: the attributes as the coordinator has them afterwards; a new password too.
ALTER ROLE "Alice ü" CONNECTION LIMIT 3 VALID UNTIL '2030-01-01 00:00:00+00';
ALTER ROLE "Alice ü" PASSWORD 'battery staple';
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT rolconnlimit || ' ' || (rolvaliduntil = '2030-01-01 00:00:00+00') FROM pg_roles WHERE rolname = 'Alice ü'$$);
SELECT DISTINCT result = (SELECT rolpassword FROM pg_authid WHERE rolname = 'Alice ü') AS same_verifier
  FROM run_command_on_workers($$SELECT rolpassword FROM pg_authid WHERE rolname = 'Alice ü'$$);
-- A role changes its own password (no CREATEROLE needed): only the password is sent.
SET ROLE "Alice ü";
ALTER ROLE "Alice ü" PASSWORD 'my own choice';
RESET ROLE;
SELECT DISTINCT result = (SELECT rolpassword FROM pg_authid WHERE rolname = 'Alice ü') AS same_verifier
  FROM run_command_on_workers($$SELECT rolpassword FROM pg_authid WHERE rolname = 'Alice ü'$$);
-- SESSION_USER would name another role on the workers (they log in as the current user).
CREATE ROLE readers_s NOLOGIN;
GRANT readers_s TO "Alice ü" WITH ADMIN OPTION;
SET ROLE "Alice ü";
GRANT readers_s TO SESSION_USER;
RESET ROLE;
DROP ROLE readers_s;
-- A role a worker lacks (made there before, or dropped there by hand): ALTER makes it there,
-- DROP is no error there.
CREATE ROLE lacking;
SELECT count(*) FROM run_command_on_workers($cmd$
  DO $do$ BEGIN IF current_setting('port') = '9801' THEN DROP ROLE lacking; END IF; END $do$$cmd$) WHERE success;
ALTER ROLE lacking CONNECTION LIMIT 4;
SELECT nodeport, result FROM run_command_on_workers($$SELECT rolconnlimit FROM pg_roles WHERE rolname = 'lacking'$$) ORDER BY nodeport;
DROP ROLE lacking;
CREATE ROLE gone_somewhere;
SELECT count(*) FROM run_command_on_workers($cmd$
  DO $do$ BEGIN IF current_setting('port') = '9803' THEN DROP ROLE gone_somewhere; END IF; END $do$$cmd$) WHERE success;
DROP ROLE gone_somewhere;
SELECT DISTINCT result FROM run_command_on_workers($$SELECT count(*) FROM pg_roles WHERE rolname = 'gone_somewhere'$$);
-- ANALYZE in a transaction after DDL on the same table runs in the remote transaction (its
-- locks are that transaction's), and a column added there is known to it.
SET statement_timeout = '20s';
BEGIN;
ALTER TABLE sec_t ADD COLUMN z int;
ANALYZE sec_t (z);
COMMIT;
RESET statement_timeout;
SELECT sum(result::int) AS shards_with_stats_on_z FROM run_command_on_workers($$
  SELECT count(DISTINCT tablename) FROM pg_stats WHERE tablename ~ '^sec_t_[0-9]+$' AND attname = 'z'$$);
-- The relation decides, not the statement's word for it: ALTER INDEX renames a distributed
-- table and ALTER TABLE one of its indexes, shards included; an index's options through
-- ALTER TABLE are refused as through ALTER INDEX.
ALTER INDEX sec_t RENAME TO sec_t2;
ALTER TABLE sec_t_pkey RENAME TO sec_t_pk2;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT coalesce(string_agg(DISTINCT regexp_replace(relname, '_[0-9]+$', '_N'), ','), '-')
    FROM pg_class WHERE relnamespace = 'roles_t'::regnamespace AND relname ~ '^sec_t'$$);
ALTER TABLE sec_t2 RENAME TO sec_t;
ALTER INDEX sec_t_pk2 RENAME TO sec_t_pkey;
ALTER TABLE sec_t_pkey SET (fillfactor = 50);
-- Memberships, renames, settings.
CREATE ROLE readers NOLOGIN;
GRANT readers TO bob;
ALTER ROLE bob SET work_mem = '8MB';
ALTER ROLE bob RENAME TO "Bob";
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT string_agg(r.rolname || '>' || m.rolname, ',') FROM pg_auth_members a
    JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
   WHERE r.rolname = 'readers'$$);
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = 'Bob'$$);
-- A role a worker has already: the statement fails with that worker's reason, and no node
-- (the coordinator included) keeps the role.
SELECT count(*) FROM run_command_on_workers($cmd$
  DO $do$ BEGIN IF current_setting('port') = '9802' THEN CREATE ROLE clash; END IF; END $do$$cmd$) WHERE success;
\set VERBOSITY terse
CREATE ROLE clash;
\set VERBOSITY default
SELECT count(*) AS coordinator_has_it FROM pg_roles WHERE rolname = 'clash';
SELECT nodeport, result FROM run_command_on_workers($$SELECT count(*) FROM pg_roles WHERE rolname = 'clash'$$) ORDER BY nodeport;
SELECT count(*) FROM run_command_on_workers('DROP ROLE IF EXISTS clash') WHERE success;
-- The coordinator's DROP ROLE reaches the nodes that have the role; one that lacks it fails
-- the statement (as with CREATE): DROP ROLE IF EXISTS is the form for a role only some have.
-- DROP OWNED and DROP ROLE reach every node.
DROP SCHEMA roles_t CASCADE;
DROP OWNED BY "Alice ü", "Bob";
DROP ROLE "Alice ü", "Bob", readers;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT count(*) FROM pg_roles WHERE rolname IN ('Alice ü', 'Bob', 'bob', 'readers')$$);
-- pg_dist_object records the roles Tessera made on every node (as Citus records them), under
-- their current names, and forgets dropped ones.
CREATE ROLE "Recorded ü";
SELECT type, object_names FROM pg_dist_object WHERE classid = 'pg_authid'::regclass
   AND objid = (SELECT oid FROM pg_roles WHERE rolname = 'Recorded ü');
ALTER ROLE "Recorded ü" RENAME TO recorded_renamed;
SELECT type, object_names FROM pg_dist_object WHERE classid = 'pg_authid'::regclass
   AND objid = (SELECT oid FROM pg_roles WHERE rolname = 'recorded_renamed');
SELECT DISTINCT result FROM run_command_on_workers($$SELECT count(*) FROM pg_roles WHERE rolname = 'recorded_renamed'$$);
DROP ROLE recorded_renamed;
SELECT count(*) FROM pg_dist_object WHERE classid = 'pg_authid'::regclass
   AND NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.oid = objid);
-- Grantors: a privilege granted through a grant option is granted by the same role on the
-- shards, so REVOKE ... CASCADE takes back on every shard what it takes back on the table.
CREATE SCHEMA grant_s;
CREATE ROLE grant_owner LOGIN;
CREATE ROLE "Grant mid ü" LOGIN;
CREATE ROLE grant_leaf LOGIN;
GRANT USAGE ON SCHEMA grant_s TO grant_owner, "Grant mid ü", grant_leaf;
GRANT CREATE ON SCHEMA grant_s TO grant_owner;
SET ROLE grant_owner;
CREATE TABLE grant_s.granted (k int PRIMARY KEY, v text);
INSERT INTO grant_s.granted SELECT i, 'v' || i FROM generate_series(1, 8) i;
GRANT SELECT ON grant_s.granted TO "Grant mid ü" WITH GRANT OPTION;
SET ROLE "Grant mid ü";
GRANT SELECT ON grant_s.granted TO grant_leaf;
-- (the owner cannot recreate the middle role's grants: refused, the table stays local)
SET ROLE grant_owner;
SELECT create_distributed_table('grant_s.granted', 'k', shard_count => 4);
SELECT count(*) AS distributed FROM pg_dist_partition WHERE logicalrelid = 'grant_s.granted'::regclass;
RESET ROLE;
SELECT create_distributed_table('grant_s.granted', 'k', shard_count => 4);
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT string_agg(DISTINCT pg_get_userbyid(a.grantor) || '>' || CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END
                    || ':' || a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END, ' ')
    FROM pg_class c, aclexplode(c.relacl) a WHERE c.relname ~ '^granted_[0-9]+$' AND a.grantee <> c.relowner$$);
SET ROLE grant_leaf;
SELECT count(*) FROM grant_s.granted;
RESET ROLE;
-- The owner takes the middle role's privilege back, with what it granted.
SET ROLE grant_owner;
REVOKE SELECT ON grant_s.granted FROM "Grant mid ü" CASCADE;
RESET ROLE;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT coalesce(string_agg(DISTINCT pg_get_userbyid(a.grantor) || '>' || pg_get_userbyid(a.grantee), ' '), 'none')
    FROM pg_class c, aclexplode(c.relacl) a WHERE c.relname ~ '^granted_[0-9]+$' AND a.grantee <> c.relowner AND a.grantee <> 0$$);
SELECT nodeport AS leaf_port FROM citus_shards
 WHERE shardid = get_shard_id_for_distribution_column('grant_s.granted', 1) \gset
\c postgres grant_leaf 127.0.0.1 :leaf_port
SELECT 'SELECT count(*) FROM grant_s.' || quote_ident(relname) FROM pg_class WHERE relname ~ '^granted_[0-9]+$' LIMIT 1 \gexec
\c postgres postgres 127.0.0.1 9800
SET ROLE grant_leaf;
SELECT count(*) FROM grant_s.granted;
RESET ROLE;
-- The same on a reference table, whose placement on the coordinator gets its grants there.
SET ROLE grant_owner;
CREATE TABLE grant_s.ref_granted (k int PRIMARY KEY);
GRANT SELECT ON grant_s.ref_granted TO "Grant mid ü" WITH GRANT OPTION;
SET ROLE "Grant mid ü";
GRANT SELECT ON grant_s.ref_granted TO grant_leaf;
RESET ROLE;
SELECT create_reference_table('grant_s.ref_granted');
SELECT count(*) AS placements, count(DISTINCT result) AS kinds, min(result) AS grants FROM run_command_on_all_nodes($$
  SELECT string_agg(DISTINCT pg_get_userbyid(a.grantor) || '>' || pg_get_userbyid(a.grantee), ' ')
    FROM pg_class c, aclexplode(c.relacl) a WHERE c.relname ~ '^ref_granted_[0-9]+$' AND a.grantee <> c.relowner$$);
SET ROLE grant_owner;
REVOKE SELECT ON grant_s.ref_granted FROM "Grant mid ü" CASCADE;
RESET ROLE;
SELECT count(*) AS placements, count(DISTINCT result) AS kinds, min(result) AS grants FROM run_command_on_all_nodes($$
  SELECT coalesce(string_agg(DISTINCT pg_get_userbyid(a.grantor) || '>' || pg_get_userbyid(a.grantee), ' '), 'none')
    FROM pg_class c, aclexplode(c.relacl) a WHERE c.relname ~ '^ref_granted_[0-9]+$' AND a.grantee <> c.relowner$$);
DROP SCHEMA grant_s CASCADE;
DROP ROLE grant_owner, "Grant mid ü", grant_leaf;
