#!/usr/bin/env bash
# Re-create tests/data/plans/postgres/*.json: real EXPLAIN (ANALYZE, BUFFERS, VERBOSE,
# FORMAT JSON) output of a local PostgreSQL, for plan shapes the parser must keep whole:
# a materialised CTE with an InitPlan, a semi-join under a LIMIT, and an UPDATE whose
# row trigger shows in the plan's "Triggers". Usage: bash tests/helpers/make_pg_plans.sh [DSN]
set -euo pipefail
dsn=${1:-postgresql://postgres@127.0.0.1:5432/test}
out="$(dirname "$0")/../data/plans/postgres"
psql() { command psql "$dsn" -qAtX -v ON_ERROR_STOP=1 "$@"; }
psql <<'SQL'
DROP SCHEMA IF EXISTS fx CASCADE;
CREATE SCHEMA fx;
CREATE TABLE fx.customers (id int PRIMARY KEY, region text NOT NULL);
CREATE TABLE fx.orders (id int PRIMARY KEY, customer_id int NOT NULL, total numeric(10,2) NOT NULL,
                        status text NOT NULL);
CREATE TABLE fx.audit (order_id int, changed_at timestamptz DEFAULT now());
INSERT INTO fx.customers SELECT g, CASE WHEN g % 3 = 0 THEN 'eu' ELSE 'us' END
FROM generate_series(1, 2000) g;
INSERT INTO fx.orders SELECT g, 1 + g % 2000, (g % 97) + 0.5,
       CASE WHEN g % 5 = 0 THEN 'paid' ELSE 'open' END
FROM generate_series(1, 20000) g;
CREATE INDEX ON fx.orders (customer_id);
CREATE FUNCTION fx.log_order() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO fx.audit (order_id) VALUES (NEW.id); RETURN NEW; END $$;
CREATE TRIGGER orders_audit AFTER UPDATE ON fx.orders FOR EACH ROW EXECUTE FUNCTION fx.log_order();
ANALYZE fx.customers;
ANALYZE fx.orders;
SQL
explain="EXPLAIN (ANALYZE, BUFFERS, VERBOSE, FORMAT JSON)"
psql -c "SET max_parallel_workers_per_gather = 0" -c "$explain
WITH big AS MATERIALIZED (SELECT customer_id, sum(total) AS spent FROM fx.orders GROUP BY customer_id)
SELECT c.region, count(*), avg(b.spent) FROM big b JOIN fx.customers c ON c.id = b.customer_id
WHERE b.spent > (SELECT avg(spent) FROM big) GROUP BY c.region ORDER BY 2 DESC" >"$out/cte-initplan.json"
psql -c "SET max_parallel_workers_per_gather = 0" -c "$explain
SELECT o.id, o.total FROM fx.orders o WHERE o.status = 'paid' AND EXISTS
(SELECT 1 FROM fx.customers c WHERE c.id = o.customer_id AND c.region = 'eu')
ORDER BY o.total DESC LIMIT 20" >"$out/semijoin-limit.json"
psql -c "BEGIN" -c "$explain UPDATE fx.orders SET status = 'paid' WHERE customer_id = 42" \
    -c "ROLLBACK" >"$out/trigger.json"
# ORDER BY id DESC LIMIT on a filter no index serves: the planner walks the primary key
# backward, betting customer 1001's rows (all 200 among the first ids) come soon
psql <<'SQL'
CREATE TABLE fx.events (id int PRIMARY KEY, customer_id int NOT NULL, kind text NOT NULL);
INSERT INTO fx.events SELECT g, CASE WHEN g <= 200 THEN 1001 ELSE 1 + g % 1000 END,
       CASE WHEN g % 2 = 0 THEN 'view' ELSE 'buy' END
FROM generate_series(1, 200000) g;
ANALYZE fx.events;
SQL
walk='SELECT id, kind FROM fx.events WHERE customer_id = $1 ORDER BY id DESC LIMIT 10'
psql -c "SET max_parallel_workers_per_gather = 0" -c "$explain ${walk/\$1/1001}" \
    >"$out/limit-walk-analyze.json"
psql -c "SET plan_cache_mode = force_generic_plan" -c "PREPARE walk(int) AS $walk" \
    -c "EXPLAIN (VERBOSE, FORMAT JSON) EXECUTE walk(NULL)" >"$out/limit-walk-generic.json"
psql -c "DROP SCHEMA fx CASCADE" 2>/dev/null
