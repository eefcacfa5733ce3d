// A small shop on Express and a pg Pool, with two planted faults for correlate to find:
// an N+1 in GET /orders/recent (one query per order for its customer) and a filter on an
// unindexed column in GET /customers/:id/orders.
'use strict';

const express = require('express');
const { Pool } = require('pg');

const pool = new Pool({
  connectionString: process.env.DATABASE_URL || 'postgresql://postgres@127.0.0.1:5432/postgres',
  max: Number(process.env.POOL_SIZE || 5),
});
const app = express();

app.get('/health', (req, res) => res.json({ ok: true }));

app.get('/orders/recent', async (req, res, next) => {
  try {
    const orders = await pool.query(
      'SELECT id, customer_id, total FROM node_orders ORDER BY id DESC LIMIT 20');
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

async function seed() {
  await pool.query(`CREATE TABLE IF NOT EXISTS node_customers (id integer PRIMARY KEY, name text)`);
  await pool.query(`CREATE TABLE IF NOT EXISTS node_orders (
    id integer PRIMARY KEY, customer_id integer NOT NULL, total numeric NOT NULL)`);
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
