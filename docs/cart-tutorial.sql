-- The shopping cart, event-sourced: the tutorial in docs/event-sourcing.md, runnable as
-- `scripts/sluice shell -f docs/cart-tutorial.sql`.

-- The write side: every change to a cart is an event, stored under the cart's id.
CREATE STREAM cart_events (cart_id STRING KEY, kind STRING, item STRING, qty INT)
  WITH (kafka_topic='cart_events', value_format='JSON', partitions=2);

-- The read side: views kept current as each event is appended.
CREATE TABLE carts AS
  SELECT cart_id,
         SUM(CASE WHEN kind = 'removed' THEN -qty ELSE qty END) AS items,
         COUNT(*) AS events,
         LATEST_BY_OFFSET(item) AS last_item
  FROM cart_events GROUP BY cart_id EMIT CHANGES;
-- Two key columns need a key format that holds several (KAFKA holds one).
CREATE TABLE cart_lines WITH (key_format='JSON') AS
  SELECT cart_id, item, SUM(CASE WHEN kind = 'removed' THEN -qty ELSE qty END) AS qty
  FROM cart_events GROUP BY cart_id, item EMIT CHANGES;

-- Command 1: a new cart (version 0: the cart must not exist yet).
INSERT INTO cart_events (cart_id, kind, item, qty) VALUES ('c1', 'added', 'apple', 3)
  WITH (EXPECTED_VERSION = 0, EVENT_ID = 'cmd-1');
SELECT * FROM carts WHERE cart_id = 'c1';

-- Command 2, decided on version 1 of the cart.
INSERT INTO cart_events (cart_id, kind, item, qty) VALUES ('c1', 'added', 'pear', 1)
  WITH (EXPECTED_VERSION = 1, EVENT_ID = 'cmd-2');
SELECT * FROM carts WHERE cart_id = 'c1';

-- The client timed out and retries command 2: acknowledged again, appended once.
INSERT INTO cart_events (cart_id, kind, item, qty) VALUES ('c1', 'added', 'pear', 1)
  WITH (EXPECTED_VERSION = 1, EVENT_ID = 'cmd-2');

-- Command 3 removes an apple, on version 2.
INSERT INTO cart_events (cart_id, kind, item, qty) VALUES ('c1', 'removed', 'apple', 1)
  WITH (EXPECTED_VERSION = 2, EVENT_ID = 'cmd-3');
SELECT * FROM carts WHERE cart_id = 'c1';
SELECT item, qty FROM cart_lines WHERE cart_id = 'c1' AND item = 'apple';

-- The aggregate's history, in the order it happened, from the stream's key index.
SELECT kind, item, qty, ROWOFFSET FROM cart_events WHERE cart_id = 'c1';
