-- Golden fingerprint classes. Each group starts with a header:
--   -- dialect: <db.system value, or "none">
--   -- class: <name>
-- and lists statements, separated by blank lines, that MUST share one fingerprint.
-- Different classes MUST have different fingerprints. The expected normalised text of
-- each class is in classes.expected (regenerate: CORRELATE_REGEN_GOLDEN=1 pytest
-- tests/test_fingerprint_golden.py).

-- dialect: postgresql
-- class: orders_by_customer
select * from orders where customer_id = %(cid)s limit 2

SELECT * FROM orders WHERE customer_id = $1 LIMIT $2

select * from orders where customer_id = %s limit %s

select * from orders where customer_id = :cid limit :n

select * from orders where customer_id = 42 limit 2

SELECT *
  FROM   Orders
 WHERE  customer_id = 7   -- the customer
 LIMIT /* page size */ 10;

select * from orders where customer_id = %(customer_id_1)s::INTEGER limit %(param_1)s::INTEGER

select * from orders where customer_id = $1 limit $2 /*db_driver='psycopg',db_framework='sqlalchemy%3A2.0.58',traceparent='00-2fa642aec560c36eb8481517775e4552-72da799cfec845d6-03'*/

select * from orders where customer_id = %(cid)s limit %(n)s /*db_driver='psycopg',db_framework='sqlalchemy%%3A2.0.58',traceparent='00-ef2b42aec560c36eb8481517775e4552-12da799cfec845d6-03'*/

select * from "orders" where "customer_id" = 5 limit 2

-- dialect: postgresql
-- class: orders_by_customer_aliased
select o.* from orders o where o.customer_id = %(cid)s limit 2

select o.* from orders as o where o.customer_id = 11 limit 20

-- dialect: postgresql
-- class: orders_by_customer_in
select * from orders where customer_id in (%(c_1)s) limit 2

select * from orders where customer_id in (%(c_1)s, %(c_2)s) limit 2

select * from orders where customer_id in (%(c_1)s::INTEGER, %(c_2)s::INTEGER, %(c_3)s::INTEGER) limit 2

select * from orders where customer_id in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10) limit 2

select * from orders where customer_id in ($1,$2,$3) limit $4

select * from orders where customer_id IN(-1,2) limit 2

-- dialect: postgresql
-- class: orders_by_customer_any
select * from orders where customer_id = any(array[1, 2, 3]) limit 2

select * from orders where customer_id = ANY(ARRAY[$1,$2]) limit $3

-- dialect: postgresql
-- class: payments_over_amount
select id from payments where amount_cents > 10.5

select id from payments where amount_cents > 99

select id from payments where amount_cents > -3e2

select id from payments where amount_cents > %(amount_cents_1)s::NUMERIC(10, 2)

-- dialect: postgresql
-- class: payments_recent
select id from payments where created_at > now() - interval '1 day'

select id from payments where created_at > now() - INTERVAL '15 minutes'

select id from payments where created_at > now() - %(window)s

-- dialect: postgresql
-- class: orders_insert
INSERT INTO orders (customer_id, status, total_cents, created_at) VALUES (%(customer_id)s::INTEGER, %(status)s::VARCHAR, %(total_cents)s::INTEGER, %(created_at)s::TIMESTAMP WITH TIME ZONE) RETURNING orders.id

insert into orders (customer_id, status, total_cents, created_at) values (7, 'new', 1250, '2026-11-24T20:20:00Z') returning orders.id

INSERT INTO orders (customer_id, status, total_cents, created_at) VALUES ($1, $2, $3, $4), ($5, $6, $7, $8) RETURNING orders.id

INSERT INTO orders (customer_id, status, total_cents, created_at) VALUES (1, 'a', 2, '2026-11-24'::date), (3, 'b', 4, '2026-11-25'::date) RETURNING orders.id

-- dialect: postgresql
-- class: order_items_insertmanyvalues
INSERT INTO order_items (order_id, product_id, quantity) SELECT p0::INTEGER, p1::INTEGER, p2::INTEGER FROM (VALUES (%(order_id__0)s::INTEGER, %(product_id__0)s::INTEGER, %(quantity__0)s::INTEGER, 0)) AS imp_sen(p0, p1, p2, sen_counter) ORDER BY sen_counter RETURNING order_items.id, order_items.id AS id__1

INSERT INTO order_items (order_id, product_id, quantity) SELECT p0::INTEGER, p1::INTEGER, p2::INTEGER FROM (VALUES (%(order_id__0)s::INTEGER, %(product_id__0)s::INTEGER, %(quantity__0)s::INTEGER, 0), (%(order_id__1)s::INTEGER, %(product_id__1)s::INTEGER, %(quantity__1)s::INTEGER, 1), (%(order_id__2)s::INTEGER, %(product_id__2)s::INTEGER, %(quantity__2)s::INTEGER, 2)) AS imp_sen(p0, p1, p2, sen_counter) ORDER BY sen_counter RETURNING order_items.id, order_items.id AS id__1

-- dialect: postgresql
-- class: sample_order_items_lazy
SELECT correlate_demo.order_items.id AS order_items_id, correlate_demo.order_items.order_id AS order_items_order_id, correlate_demo.order_items.product_id AS order_items_product_id, correlate_demo.order_items.quantity AS order_items_quantity, correlate_demo.order_items.price_cents AS order_items_price_cents 
FROM correlate_demo.order_items 
WHERE %(param_1)s::BIGINT = correlate_demo.order_items.order_id

SELECT correlate_demo.order_items.id AS order_items_id, correlate_demo.order_items.order_id AS order_items_order_id, correlate_demo.order_items.product_id AS order_items_product_id, correlate_demo.order_items.quantity AS order_items_quantity, correlate_demo.order_items.price_cents AS order_items_price_cents FROM correlate_demo.order_items WHERE 1234 = correlate_demo.order_items.order_id /*db_driver='psycopg',db_framework='sqlalchemy%%3A2.0.58',traceparent='00-2fa642aec560c36eb8481517775e4552-72da799cfec845d6-03'*/

-- dialect: postgresql
-- class: sample_products_in
SELECT correlate_demo.products.id, correlate_demo.products.name, correlate_demo.products.price_cents, correlate_demo.products.stock 
FROM correlate_demo.products 
WHERE correlate_demo.products.id IN (%(id_1_1)s::INTEGER)

SELECT correlate_demo.products.id, correlate_demo.products.name, correlate_demo.products.price_cents, correlate_demo.products.stock 
FROM correlate_demo.products 
WHERE correlate_demo.products.id IN (%(id_1_1)s::INTEGER, %(id_1_2)s::INTEGER)

SELECT correlate_demo.products.id, correlate_demo.products.name, correlate_demo.products.price_cents, correlate_demo.products.stock 
FROM correlate_demo.products 
WHERE correlate_demo.products.id IN (%(id_1_1)s::INTEGER, %(id_1_2)s::INTEGER, %(id_1_3)s::INTEGER)

-- dialect: postgresql
-- class: sample_products_by_pk
SELECT correlate_demo.products.id AS products_id, correlate_demo.products.name AS products_name, correlate_demo.products.price_cents AS products_price_cents, correlate_demo.products.stock AS products_stock 
FROM correlate_demo.products 
WHERE correlate_demo.products.id = %(pk_1)s::INTEGER

-- dialect: postgresql
-- class: sample_orders_page
SELECT correlate_demo.orders.id, correlate_demo.orders.status, correlate_demo.orders.total_cents, correlate_demo.orders.created_at 
FROM correlate_demo.orders 
WHERE correlate_demo.orders.customer_id = %(customer_id_1)s::INTEGER ORDER BY correlate_demo.orders.created_at DESC 
 LIMIT %(param_1)s::INTEGER

SELECT correlate_demo.orders.id, correlate_demo.orders.status, correlate_demo.orders.total_cents, correlate_demo.orders.created_at FROM correlate_demo.orders WHERE correlate_demo.orders.customer_id = 9 ORDER BY correlate_demo.orders.created_at DESC LIMIT 10

-- dialect: postgresql
-- class: top_customers_cte
WITH recent AS 
(SELECT orders.customer_id AS customer_id, orders.total_cents AS total_cents 
FROM orders 
WHERE orders.created_at > %(created_at_1)s::TIMESTAMP WITHOUT TIME ZONE)
 SELECT recent.customer_id, sum(recent.total_cents) AS sum_1 
FROM recent GROUP BY recent.customer_id ORDER BY sum_1 DESC 
 LIMIT %(param_1)s::INTEGER

with recent as (select orders.customer_id as customer_id, orders.total_cents as total_cents from orders where orders.created_at > '2026-11-01') select recent.customer_id, sum(recent.total_cents) as sum_1 from recent group by recent.customer_id order by sum_1 desc limit 5

-- dialect: postgresql
-- class: jsonb_has_key
select id from events where payload ? 'user_id'

select id from events where payload ? %(key)s

-- dialect: mysql
-- class: mysql_orders_by_status
SELECT `orders`.`id`, `orders`.`status` FROM `orders` WHERE `orders`.`status` = %s AND `orders`.`customer_id` IN (%s, %s, %s)

select orders.id, orders.status from orders where orders.status = 'paid' and orders.customer_id in (4)

SELECT `Orders`.`id`, `Orders`.`status` FROM `Orders` WHERE `Orders`.`status` = "shipped" AND `Orders`.`customer_id` IN (1,2) # trailing note

-- dialect: mysql
-- class: mysql_django_modulo
SELECT `shop_event`.`id` FROM `shop_event` WHERE (`shop_event`.`account` %% %s) = %s

select shop_event.id from shop_event where (shop_event.account % 7) = 0

-- dialect: mariadb
-- class: mariadb_insert_many
INSERT INTO order_items (order_id, product_id, quantity) VALUES (%s, %s, %s)

INSERT INTO `order_items` (`order_id`, `product_id`, `quantity`) VALUES (1, 2, 3), (4, 5, 6), (7, 8, 9)

-- dialect: mysql
-- class: mysql_reserved_column
SELECT `order`, `key` FROM `items` WHERE `key` = 'it\'s'

select `order`, `key` from items where `key` = %(k)s

-- dialect: postgresql
-- class: django_modulo
SELECT "shop_event"."id", ("shop_event"."account" %% %s) AS "m" FROM "shop_event" WHERE ("shop_event"."account" %% %s) = %s

SELECT shop_event.id, (shop_event.account % $1) AS m FROM shop_event WHERE (shop_event.account % $2) = $3

select shop_event.id, shop_event.account % 7 as m from shop_event where shop_event.account % 7 = 0

-- dialect: postgresql
-- class: savepoint
SAVEPOINT "s140675796278144_x1"

SAVEPOINT "s140675796278144_x2"

savepoint sa_savepoint_1

-- dialect: postgresql
-- class: release_savepoint
RELEASE SAVEPOINT "s140675796278144_x1"

RELEASE SAVEPOINT "s139901234567_x12"

-- dialect: postgresql
-- class: rollback_to_savepoint
ROLLBACK TO SAVEPOINT "s140675796278144_x3"

rollback to savepoint sa_savepoint_2

-- dialect: mysql
-- class: mysql_savepoint
SAVEPOINT `s140675796278144_x1`

SAVEPOINT s140675796278144_x2

-- dialect: sqlite
-- class: sqlite_carts_by_customer
select * from carts where customer_id = ? limit ?

SELECT * FROM "carts" WHERE customer_id = 3 LIMIT 2;

select * from carts where customer_id = :cid limit 1 /*traceparent='00-2fa642aec560c36eb8481517775e4552-72da799cfec845d6-01'*/

-- dialect: sqlite
-- class: sqlite_upsert
INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v

insert into kv (k, v) values ('a', 'b'), ('c', 'd') on conflict (k) do update set v = excluded.v

-- dialect: oracle
-- class: oracle_shipments_by_order
select * from shipments where order_id = :1 and carrier in (:2, :3) fetch first :4 rows only

SELECT * FROM shipments WHERE order_id = :order_id AND carrier IN (:c1, :c2) FETCH FIRST :n ROWS ONLY

select * from shipments where order_id = ? and carrier in (?) fetch first ? rows only

select * from SHIPMENTS where ORDER_ID = 42 and CARRIER in ('dhl', 'ups', 'gls') fetch first 5 rows only

-- dialect: oracle.db
-- class: oracle_new_semconv_update
update stock set qty = qty - :1 where sku = :2

UPDATE stock SET qty = qty - :qty WHERE sku = :sku

update stock set qty = qty - 1 where sku = 'A-7'

-- dialect: mssql
-- class: mssql_invoices_by_customer
SELECT [i].[Id], [i].[Total] FROM [Invoices] AS [i] WHERE [i].[CustomerId] = @P0 AND [i].[Status] = @P1

SELECT [i].[Id], [i].[Total] FROM [Invoices] AS [i] WHERE [i].[CustomerId] = @p0 AND [i].[Status] = @p1

SELECT [i].[Id], [i].[Total] FROM [Invoices] AS [i] WHERE [i].[CustomerId] = @customerId AND [i].[Status] = @status

SELECT [i].[Id], [i].[Total] FROM [Invoices] AS [i] WHERE [i].[CustomerId] = ? AND [i].[Status] = ?

SELECT [i].[Id], [i].[Total] FROM [Invoices] AS [i] WHERE [i].[CustomerId] = 42 AND [i].[Status] = N'open'

-- dialect: microsoft.sql_server
-- class: mssql_ef_insert_batch
SET IMPLICIT_TRANSACTIONS OFF; SET NOCOUNT ON; INSERT INTO [Invoices] ([CustomerId], [Total]) OUTPUT INSERTED.[Id] VALUES (@p0, @p1); SELECT @@ROWCOUNT;

SET IMPLICIT_TRANSACTIONS OFF; SET NOCOUNT ON; INSERT INTO [Invoices] ([CustomerId], [Total]) OUTPUT INSERTED.[Id] VALUES (7, 19.90); SELECT @@ROWCOUNT;

-- dialect: mssql
-- class: mssql_declared_variable
DECLARE @since DATETIME2 = @P0; SELECT COUNT(*) FROM [Invoices] WHERE [Created] >= @since

DECLARE @Since DATETIME2 = '2026-01-01'; SELECT COUNT(*) FROM [Invoices] WHERE [Created] >= @SINCE

-- dialect: none
-- class: unknown_dialect_question_marks
select name from customers where id = ?

SELECT name FROM customers WHERE id = 17

-- dialect: postgresql
-- class: unparseable_fallback
selec name frm customers wher id = 1

SELEC name FRM customers WHER id = %(id)s /* typo'd on purpose */
