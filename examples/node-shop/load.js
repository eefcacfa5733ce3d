// A tiny closed-loop load: USERS concurrent loops for DURATION seconds against the shop,
// each request logged, so the run has requests to explain. Any load generator does
// (k6: write its results to $CORRELATE_LOAD_DIR, and correlate record picks them up).
'use strict';

const base = process.env.SHOP_URL || 'http://127.0.0.1:3000';
const users = Number(process.env.USERS || 8);
const seconds = Number(process.env.DURATION || 20);

async function waitForShop() {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${base}/health`)).ok) return;
    } catch (err) { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the shop did not come up at ${base}`);
}

async function user(until) {
  let n = 0;
  while (Date.now() < until) {
    const path = Math.random() < 0.5
      ? '/orders/recent'
      : `/customers/${1 + Math.floor(Math.random() * 2000)}/orders`;
    const res = await fetch(base + path);
    await res.arrayBuffer();
    n++;
  }
  return n;
}

(async () => {
  await waitForShop();
  const until = Date.now() + seconds * 1000;
  const counts = await Promise.all(Array.from({ length: users }, () => user(until)));
  console.log(`load: ${counts.reduce((a, b) => a + b, 0)} requests in ${seconds}s`);
})();
