-- Shard names as Citus gives them: `<name>_<shardid>`, and for a name too long for that, its
-- first bytes (cut at a character boundary), `_`, PostgreSQL's hash_any of the whole name in
-- eight hex digits, and the suffix (hashtext(name) is hash_any of its bytes).
CREATE SCHEMA "Naming ""Ü""";
SET search_path = "Naming ""Ü""", public;
CREATE TABLE too_long_12345678901234567890123456789012345678901234567890 (k int PRIMARY KEY, v text);
CREATE TABLE "Ünïcödé_名前_a_rather_long_table_name_that_needs_hashing" (k int, v text);
SELECT create_distributed_table('too_long_12345678901234567890123456789012345678901234567890', 'k', shard_count => 2);
SELECT create_distributed_table('"Ünïcödé_名前_a_rather_long_table_name_that_needs_hashing"', 'k', shard_count => 2);
WITH expected AS (
  SELECT s.logicalrelid, s.shardid, c.relname,
         CASE WHEN octet_length(c.relname) + octet_length('_' || s.shardid) < 64
              THEN c.relname || '_' || s.shardid
              ELSE (SELECT string_agg(ch, '' ORDER BY i) FROM (
                      SELECT i, substr(c.relname, i, 1) AS ch,
                             sum(octet_length(substr(c.relname, i, 1))) OVER (ORDER BY i) AS upto
                        FROM generate_series(1, length(c.relname)) i) p
                     WHERE upto <= 64 - octet_length('_' || s.shardid) - 10)
                   || '_' || lpad(to_hex(hashtext(c.relname)), 8, '0') || '_' || s.shardid
         END AS name
    FROM pg_dist_shard s JOIN pg_class c ON c.oid = s.logicalrelid
   WHERE c.relnamespace = '"Naming ""Ü"""'::regnamespace)
SELECT e.relname, shard_name(e.logicalrelid, e.shardid) = quote_ident('Naming "Ü"') || '.' || quote_ident(e.name) AS citus_name,
       octet_length(e.name) <= 63 AS fits,
       (SELECT bool_and(result = '1') FROM run_command_on_workers(format(
          'SELECT count(*) FROM pg_class WHERE relname = %L', e.name))
         WHERE nodeport IN (SELECT nodeport FROM citus_shards WHERE shardid = e.shardid)) AS on_its_node
  FROM expected e ORDER BY e.relname, e.shardid;
-- The shards are the ones queries and writes reach.
INSERT INTO too_long_12345678901234567890123456789012345678901234567890 SELECT i, 'v' || i FROM generate_series(1, 10) i;
INSERT INTO "Ünïcödé_名前_a_rather_long_table_name_that_needs_hashing" SELECT i, 'w' || i FROM generate_series(1, 10) i;
SELECT count(*), sum(k) FROM too_long_12345678901234567890123456789012345678901234567890;
SELECT t.k, u.v FROM too_long_12345678901234567890123456789012345678901234567890 t
  JOIN "Ünïcödé_名前_a_rather_long_table_name_that_needs_hashing" u USING (k) WHERE k = 3;
DROP SCHEMA "Naming ""Ü""" CASCADE;
