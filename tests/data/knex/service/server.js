'use strict';
const express = require('express');
const knexLib = require('knex');

const MODE = process.env.MODE || 'leak'; // leak | fixed | nplus1
const knex = knexLib({
  client: 'pg',
  connection: process.env.DATABASE_URL || 'postgresql://postgres@127.0.0.1:5432/test_knex',
  pool: { min: 0, max: Number(process.env.POOL_MAX || 4) },
  acquireConnectionTimeout: Number(process.env.ACQUIRE_MS || 1500),
});

const app = express();
app.use(express.json());
const wrap = (fn) => (req, res, next) => fn(req, res, next).catch(next);

app.get('/products/:id', wrap(async (req, res) => {
  const p = await knex('products').where({ id: req.params.id }).first();
  if (!p) return res.status(404).json({ error: 'no such product' });
  res.json(p);
}));

app.post('/checkout', wrap(async (req, res) => {
  const { customerId, productId, card } = req.body;
  const trx = await knex.transaction();
  const product = await trx('products').where({ id: productId }).first();
  const [order] = await trx('orders').insert({ customer_id: customerId, product_id: productId, amount: product.price }).returning('id');
  if (card === 'declined') {
    // BUG (planted): forgot trx.rollback() on the declined branch -> connection never released
    if (MODE !== 'leak') await trx.rollback();
    return res.status(402).json({ error: 'payment declined' });
  }
  await trx.commit();
  res.status(201).json({ orderId: order.id });
}));

app.get('/reports/sales', wrap(async (req, res) => {
  const r = await knex.raw('select pg_sleep(?) , count(*) as n from products', [Number(process.env.REPORT_SLEEP || 0.3)]);
  res.json(r.rows[0]);
}));

app.get('/orders/recent', wrap(async (req, res) => {
  const orders = await knex('orders').orderBy('id', 'desc').limit(10);
  for (const o of orders) {
    o.customer = await knex('customers').where({ id: o.customer_id }).first();
  }
  res.json(orders);
}));

app.get('/customers/:id/orders', wrap(async (req, res) => {
  const rows = await knex('orders').where({ customer_id: req.params.id }).orderBy('id', 'desc').limit(20);
  res.json(rows);
}));

app.get('/customers/:id/spend', wrap(async (req, res) => {
  const r = await knex('orders').where({ customer_id: req.params.id }).sum({ total: 'amount' }).count({ n: '*' }).first();
  res.json(r);
}));

app.use((err, req, res, next) => {
  console.error(err.name + ': ' + err.message);
  res.status(500).json({ error: err.message });
});

const port = Number(process.env.PORT || 3077);
app.listen(port, '127.0.0.1', () => console.log(`knex-shop ${MODE} on ${port} pool max ${knex.client.config.pool.max}`));
