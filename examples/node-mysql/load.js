// A tiny closed-loop load: USERS concurrent loops for DURATION seconds against the service.
// The mix: 35% the recent orders (the N+1), 25% a customer's orders (the full scan), REPORT_SHARE
// (default 0.15) the daily report (the slow statement that holds a connection), the rest a
// customer by id (the clean route). Choices come from a seeded generator (SEED), so two runs
// ask the same questions in the same order.
'use strict';

const base = process.env.SHOP_URL || 'http://127.0.0.1:3000';
const users = Number(process.env.USERS || 12);
const seconds = Number(process.env.DURATION || 15);
const reportShare = Number(process.env.REPORT_SHARE || 0.15);
// a request unanswered this long is given up, as a load generator's timeout does (k6's is 60 s)
const timeoutMs = Number(process.env.REQUEST_TIMEOUT_MS || 60000);

// mulberry32: a small seeded generator, one stream per user
function generator(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function waitForShop() {
  for (let i = 0; i < 150; i++) {
    try {
      if ((await fetch(`${base}/health`)).ok) return;
    } catch (err) { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the service did not come up at ${base}`);
}

function nextPath(random) {
  const customer = 1 + Math.floor(random() * 2000);
  const pick = random();
  if (pick < 0.35) return '/orders/recent';
  if (pick < 0.6) return `/customers/${customer}/orders`;
  if (pick < 0.6 + reportShare) return '/reports/daily';
  return `/customers/${customer}`;
}

async function user(until, random) {
  const statuses = {};
  while (Date.now() < until) {
    let status;
    try {
      const res = await fetch(base + nextPath(random), { signal: AbortSignal.timeout(timeoutMs) });
      await res.arrayBuffer();
      status = res.status;
    } catch (err) {
      if (err.name !== 'TimeoutError') throw err;
      status = 'timeout';
    }
    statuses[status] = (statuses[status] || 0) + 1;
  }
  return statuses;
}

(async () => {
  await waitForShop();
  const seed = Number(process.env.SEED || 1);
  const until = Date.now() + seconds * 1000;
  const all = await Promise.all(
    Array.from({ length: users }, (_, i) => user(until, generator(seed * 1000 + i))));
  const total = {};
  for (const statuses of all) {
    for (const [status, n] of Object.entries(statuses)) total[status] = (total[status] || 0) + n;
  }
  const n = Object.values(total).reduce((a, b) => a + b, 0);
  console.log(`load: ${n} requests in ${seconds}s, by status ${JSON.stringify(total)}`);
})();
