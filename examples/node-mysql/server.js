// A small shop on Express and a mysql2 promise pool over MariaDB (or MySQL), with three planted
// faults for correlate to find and one route without any:
// - GET /orders/recent: an N+1, one customer query per order of the list;
// - GET /customers/:id/orders: a filter on the unindexed nm_orders.customer_id, a full scan
//   of 900,000 rows (ORDERS) per request;
// - GET /reports/daily: a slow report query (SLEEP stands in for a heavy aggregate) that holds
//   one of the pool's few connections (POOL_SIZE, default 3) for REPORT_MS while every other
//   request queues for one; mysql2's pool waits are not spans;
// - GET /customers/:id: a primary-key lookup, the clean route.
// The tables share the prefix nm_ so the example can live in any database.
'use strict';

const express = require('express');
const mysql = require('mysql2/promise');

const pool = mysql.createPool({
  host: process.env.MYSQL_HOST || '127.0.0.1',
  port: Number(process.env.MYSQL_PORT || 3306),
  user: process.env.MYSQL_USER || 'root',
  password: process.env.MYSQL_PASSWORD || '',
  database: process.env.MYSQL_DATABASE || 'shop',
  connectionLimit: Number(process.env.POOL_SIZE || 3),
  waitForConnections: true, // queue for a connection rather than fail
  queueLimit: 0,
});
// rows of nm_orders, a multiple of 100,000 (at most 1,000,000): enough that a full scan costs
// tens of milliseconds even on a fast machine (about 20 ms for 300,000 rows on one, 70 ms on
// another), so it stays a slow query beside the wait for the pool
const ORDERS = Number(process.env.ORDERS || 900000);
const reportSeconds = Number(process.env.REPORT_MS || 300) / 1000;
const app = express();

app.get('/health', (req, res) => res.json({ ok: true }));

// mysql2's pool hands a queued caller its connection from inside the request that released
// one, so a pool.query() made while the pool is busy runs, and is traced, in that other
// request's context: its span joins the wrong trace (instrumentation-mysql2 does not carry the
// caller's context across the pool's queue). Awaiting getConnection() resumes in this
// request's own context, so every statement below is a child of the request that made it.
// POOL_QUERY=1 runs the same statements with pool.query()/pool.execute() instead, as much
// code is written, to show what that does to the traces under load.
const viaPool = process.env.POOL_QUERY === '1';

async function withConnection(work) {
  if (viaPool) return work(pool);
  const conn = await pool.getConnection();
  try {
    return await work(conn);
  } finally {
    conn.release();
  }
}

app.get('/orders/recent', async (req, res, next) => {
  try {
    const orders = await withConnection(async (conn) => {
      const [rows] = await conn.query(
        'SELECT id, customer_id, total FROM nm_orders ORDER BY id DESC LIMIT 10');
      for (const order of rows) {
        // the N+1: one round trip per order
        const [customer] = await conn.execute(
          'SELECT name FROM nm_customers WHERE id = ?', [order.customer_id]);
        order.customer = customer[0] && customer[0].name;
      }
      return rows;
    });
    res.json(orders);
  } catch (err) {
    next(err);
  }
});

app.get('/customers/:id/orders', async (req, res, next) => {
  try {
    // nm_orders.customer_id has no index: a full table scan per request
    const [orders] = await withConnection((conn) => conn.execute(
      'SELECT id, total FROM nm_orders WHERE customer_id = ?', [Number(req.params.id)]));
    res.json(orders);
  } catch (err) {
    next(err);
  }
});

app.get('/reports/daily', async (req, res, next) => {
  try {
    // holds a pooled connection for the whole statement: with a pool of three, a few of
    // these at once leave every other request waiting in mysql2's queue
    const [rows] = await withConnection((conn) => conn.query(
      'SELECT COUNT(*) AS customers, SLEEP(?) AS held FROM nm_customers', [reportSeconds]));
    res.json(rows[0]);
  } catch (err) {
    next(err);
  }
});

app.get('/customers/:id', async (req, res, next) => {
  try {
    const [rows] = await withConnection((conn) => conn.execute(
      'SELECT id, name FROM nm_customers WHERE id = ?', [Number(req.params.id)]));
    if (rows.length === 0) return res.status(404).json({ error: 'no such customer' });
    res.json(rows[0]);
  } catch (err) {
    next(err);
  }
});

app.use((err, req, res, next) => {
  console.error(`${req.method} ${req.path}: ${err.message}`);
  res.status(500).json({ error: err.message });
});

async function seed() {
  await pool.query('CREATE TABLE IF NOT EXISTS nm_customers (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL)');
  await pool.query(`CREATE TABLE IF NOT EXISTS nm_orders (
    id INT PRIMARY KEY, customer_id INT NOT NULL, total DECIMAL(10, 2) NOT NULL)`);
  const [[{ n }]] = await pool.query('SELECT COUNT(*) AS n FROM nm_orders');
  if (n > 0) return;
  // 0..ORDERS-1 from six digits, portable to MariaDB and MySQL (no sequence engine, no
  // recursion limit to raise)
  const conn = await pool.getConnection();
  try {
    await conn.query('CREATE TEMPORARY TABLE nm_digits (d INT PRIMARY KEY)');
    await conn.query('INSERT INTO nm_digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)');
    await conn.query(`INSERT INTO nm_orders (id, customer_id, total)
      SELECT n + 1, 1 + MOD((n + 1) * 7919, 2000), MOD(n + 1, 500) + 0.99
      FROM (SELECT a.d + 10 * b.d + 100 * c.d + 1000 * d.d + 10000 * e.d + 100000 * f.d AS n
            FROM nm_digits a, nm_digits b, nm_digits c, nm_digits d, nm_digits e, nm_digits f
            WHERE f.d < ?) AS numbers`, [ORDERS / 100000]);
    await conn.query(`INSERT INTO nm_customers (id, name)
      SELECT id, CONCAT('customer ', id) FROM (SELECT DISTINCT customer_id AS id FROM nm_orders) AS c`);
    await conn.query('ANALYZE TABLE nm_customers, nm_orders');
  } finally {
    conn.release();
  }
}

const port = Number(process.env.PORT || 3000);
seed().then(() => {
  app.listen(port, '127.0.0.1', () => console.log(`node-mysql on http://127.0.0.1:${port}`));
}).catch((err) => {
  console.error(err);
  process.exit(1);
});
