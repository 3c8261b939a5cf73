CREATE STREAM pageviews (user_id STRING KEY, page STRING, ms BIGINT)
  WITH (kafka_topic='pageviews', value_format='JSON', partitions=1);
CREATE TABLE users (id STRING PRIMARY KEY, name STRING)
  WITH (kafka_topic='users', value_format='JSON');
-- As in ksqlDB, pull queries read tables derived by a query (or CREATE SOURCE TABLE),
-- not ones declared with CREATE TABLE: derive a queryable one.
CREATE TABLE queryable_users AS SELECT * FROM users;

-- A view, maintained incrementally as events arrive.
CREATE TABLE views_per_user AS
  SELECT user_id, COUNT(*) AS views, SUM(ms) AS total_ms, LATEST_BY_OFFSET(page) AS last_page
  FROM pageviews GROUP BY user_id EMIT CHANGES;
-- A derived stream.
CREATE STREAM slow_views AS
  SELECT user_id, page, ms * 2 AS double_ms FROM pageviews WHERE ms > 100 EMIT CHANGES;

INSERT INTO pageviews (user_id, page, ms) VALUES ('u1', '/a', 120);
INSERT INTO pageviews (user_id, page, ms) VALUES ('u1', '/b', 80);
INSERT INTO pageviews (user_id, page, ms) VALUES ('u2', '/c', 300);
INSERT INTO users (id, name) VALUES ('u1', 'Alice');

-- Pull queries: current state.
SELECT * FROM views_per_user WHERE user_id = 'u1';
SELECT * FROM views_per_user WHERE user_id >= 'u1' AND user_id < 'u9';
SELECT user_id, total_ms FROM views_per_user WHERE total_ms > 100;
SELECT * FROM queryable_users WHERE id = 'u1';
-- A pull query on a stream: the events it holds now.
SELECT * FROM pageviews WHERE ms > 100;

-- Push queries: every change, from the beginning, until LIMIT (or Ctrl-C).
SET 'auto.offset.reset'='earliest';
SELECT * FROM slow_views EMIT CHANGES LIMIT 2;
SELECT * FROM views_per_user EMIT CHANGES LIMIT 3;

SHOW STREAMS; SHOW TABLES; SHOW QUERIES; SHOW TOPICS;
DESCRIBE views_per_user;
PRINT 'pageviews' FROM BEGINNING LIMIT 3;
