// k6 script behind the fixtures in this directory (see README.md to regenerate).
import http from 'k6/http';
import exec from 'k6/execution';
import { sleep } from 'k6';

export const options = {
  vus: 2,
  duration: '3s',
  thresholds: {
    // one that passes and one that fails, to test how each summary format says so
    http_req_duration: ['p(95)<2000'],
    http_req_failed: ['rate<0.01'],
  },
};

function hex(n) {
  let s = '';
  for (let i = 0; i < n; i++) s += '0123456789abcdef'[Math.floor(Math.random() * 16)];
  return s;
}

export default function () {
  const traceId = hex(32);
  exec.vu.metrics.metadata['trace_id'] = traceId;
  const headers = { traceparent: `00-${traceId}-${hex(16)}-01` };
  const id = 1 + Math.floor(Math.random() * 100);
  http.get(`${__ENV.BASE}/orders/${id}`, { headers, tags: { name: '/orders/{id}' } });
  if (exec.vu.iterationInScenario % 4 === 3) {
    http.get(`${__ENV.BASE}/fail`, { headers });
  }
  delete exec.vu.metrics.metadata['trace_id'];
  sleep(0.2);
}

export function handleSummary(data) {
  return { [__ENV.HANDLE_SUMMARY]: JSON.stringify(data, null, 2) };
}
