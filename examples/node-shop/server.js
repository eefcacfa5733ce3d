// A small shop on Express and a pg Pool, with three planted faults for correlate to find:
// an N+1 in GET /orders/recent (one query per order for its customer), a filter on an
// unindexed column in GET /customers/:id/orders, and a connection leak in POST /checkout
// (a declined card answers 402 without giving the pool its client back).
'use strict';

const express = require('express');
const { Pool } = require('pg');

const pool = new Pool({
  connectionString: process.env.DATABASE_URL || 'postgresql://postgres@127.0.0.1:5432/postgres',
  max: Number(process.env.POOL_SIZE || 10),
  // give up on a checkout from an exhausted pool instead of waiting for ever
  connectionTimeoutMillis: Number(process.env.POOL_TIMEOUT_MS || 2000),
});
// A connection that dies while idle in the pool (the database restarted, the network
// dropped) is reported here; without a listener Node ends the process on it.
pool.on('error', (err) => console.error(`idle connection: ${err.message}`));
const lostWhileOut = (err) => console.error(`checked-out connection: ${err.message}`);
const app = express();
app.use(express.json());

// Stripe's test number for "card declined"; any other card is charged.
const DECLINED_CARD = '4000000000000002';

app.get('/health', (req, res) => res.json({ ok: true }));

app.get('/orders/recent', async (req, res, next) => {
  try {
    const orders = await pool.query(
      'SELECT id, customer_id, total FROM node_orders ORDER BY id DESC LIMIT 10');
    for (const order of orders.rows) {
      // the N+1: one round trip per order
      const customer = await pool.query(
        'SELECT name FROM node_customers WHERE id = $1', [order.customer_id]);
      order.customer = customer.rows[0] && customer.rows[0].name;
    }
    res.json(orders.rows);
  } catch (err) {
    next(err);
  }
});

app.get('/customers/:id/orders', async (req, res, next) => {
  try {
    // node_orders.customer_id has no index: a sequential scan per request
    const orders = await pool.query(
      'SELECT id, total FROM node_orders WHERE customer_id = $1', [Number(req.params.id)]);
    res.json(orders.rows);
  } catch (err) {
    next(err);
  }
});

app.post('/checkout', async (req, res, next) => {
  let client;
  try {
    client = await pool.connect();
    // likewise for one that dies while checked out: its query fails, and so does the request
    if (!client.listeners('error').includes(lostWhileOut)) client.on('error', lostWhileOut);
    await client.query('BEGIN');
    const customer = await client.query(
      'SELECT id, name FROM node_customers WHERE id = $1', [Number(req.body.customer_id)]);
    if (customer.rows.length === 0) {
      await client.query('ROLLBACK');
      client.release();
      return res.status(404).json({ error: 'no such customer' });
    }
    if (req.body.card === DECLINED_CARD) {
      await client.query('ROLLBACK');
      // the leak: this early return never calls client.release(), so the pool has one
      // connection fewer after every declined card
      return res.status(402).json({ error: 'card declined' });
    }
    const order = await client.query(
      `INSERT INTO node_checkouts (customer_id, total) VALUES ($1, $2) RETURNING id`,
      [customer.rows[0].id, Number(req.body.total) || 0]);
    await client.query('COMMIT');
    client.release();
    res.status(201).json({ order: order.rows[0].id });
  } catch (err) {
    if (client) client.release(err);
    next(err);
  }
});

// One line per failure instead of Express's stack trace; a pool that timed out is a 503.
app.use((err, req, res, next) => {
  const timedOut = /timeout exceeded when trying to connect/.test(err.message);
  console.error(`${req.method} ${req.path}: ${err.message}`);
  res.status(timedOut ? 503 : 500).json({ error: err.message });
});

async function seed() {
  await pool.query(`CREATE TABLE IF NOT EXISTS node_customers (id integer PRIMARY KEY, name text)`);
  await pool.query(`CREATE TABLE IF NOT EXISTS node_orders (
    id integer PRIMARY KEY, customer_id integer NOT NULL, total numeric NOT NULL)`);
  await pool.query(`CREATE TABLE IF NOT EXISTS node_checkouts (
    id serial PRIMARY KEY, customer_id integer NOT NULL, total numeric NOT NULL)`);
  const { rows } = await pool.query('SELECT count(*)::int AS n FROM node_orders');
  if (rows[0].n === 0) {
    await pool.query(`INSERT INTO node_customers
      SELECT i, 'customer ' || i FROM generate_series(1, 2000) AS i`);
    await pool.query(`INSERT INTO node_orders
      SELECT i, 1 + (i * 7919) % 2000, (i % 500) + 0.99 FROM generate_series(1, 100000) AS i`);
    await pool.query('ANALYZE node_customers; ANALYZE node_orders');
  }
}

const port = Number(process.env.PORT || 3000);
seed().then(() => {
  app.listen(port, '127.0.0.1', () => console.log(`node-shop on http://127.0.0.1:${port}`));
}).catch((err) => {
  console.error(err);
  process.exit(1);
});
