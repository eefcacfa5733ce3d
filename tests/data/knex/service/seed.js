'use strict';
const knex = require('knex')({ client: 'pg', connection: process.env.DATABASE_URL });
(async () => {
  await knex.raw('drop table if exists orders, customers, products');
  await knex.raw('create table customers (id serial primary key, name text not null, email text not null)');
  await knex.raw('create table products (id serial primary key, name text not null, price numeric(10,2) not null)');
  await knex.raw('create table orders (id serial primary key, customer_id int not null, product_id int not null, amount numeric(10,2) not null, created_at timestamptz not null default now())');
  await knex.raw("insert into customers (name, email) select 'c'||g, 'c'||g||'@x.test' from generate_series(1,5000) g");
  await knex.raw("insert into products (name, price) select 'p'||g, (g % 97) + 1.5 from generate_series(1,200) g");
  await knex.raw("insert into orders (customer_id, product_id, amount) select 1 + (g*7919) % 5000, 1 + g % 200, 10 from generate_series(1,200000) g");
  await knex.raw('analyze');
  console.log('seeded');
  await knex.destroy();
})();
