// Make N traces of three spans each with the official Node SDK and export them over
// OTLP/HTTP protobuf to OTEL_EXPORTER_OTLP_ENDPOINT; print, as JSON lines on stdout, every
// span the SDK reports as exported (ids and times as it holds them), then
// {"exported": <result code>} once the exporter has flushed. Run with NODE_PATH pointing at
// examples/node-shop/node_modules.
'use strict';

const { trace, context, SpanKind } = require('@opentelemetry/api');
const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto');
const { resourceFromAttributes } = require('@opentelemetry/resources');

const traces = Number(process.argv[2] || 10);

// The real exporter, wrapped to note what it was handed and what it answered.
const otlp = new OTLPTraceExporter();
const exported = [];
const codes = [];
const noting = {
  export(spans, done) {
    otlp.export(spans, (result) => {
      codes.push(result.code);
      if (result.code === 0) exported.push(...spans);
      done(result);
    });
  },
  shutdown: () => otlp.shutdown(),
  forceFlush: () => otlp.forceFlush(),
};

const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({ 'service.name': 'node-spans' }),
  spanProcessors: [new BatchSpanProcessor(noting, { maxExportBatchSize: 50, scheduledDelayMillis: 50 })],
});
const tracer = provider.getTracer('correlate-tests');

function ns(hr) {
  return (BigInt(hr[0]) * 1000000000n + BigInt(hr[1])).toString();
}

for (let i = 0; i < traces; i++) {
  const root = tracer.startSpan(`GET /n/${i}`, {
    kind: SpanKind.SERVER, attributes: { 'http.route': '/n/:i', 'http.request.method': 'GET' },
  });
  const ctx = trace.setSpan(context.active(), root);
  const query = tracer.startSpan('SELECT', {
    kind: SpanKind.CLIENT,
    attributes: { 'db.system': 'postgresql', 'db.statement': `SELECT ${i}` },
  }, ctx);
  query.end();
  tracer.startSpan('work', {}, ctx).end();
  root.end();
}

provider.shutdown().then(() => {
  for (const s of exported) {
    const c = s.spanContext();
    const parent = s.parentSpanContext ? s.parentSpanContext.spanId : undefined;
    console.log(JSON.stringify({
      trace_id: c.traceId, span_id: c.spanId, parent_id: parent || null,
      name: s.name, start_ns: ns(s.startTime), end_ns: ns(s.endTime),
    }));
  }
  console.log(JSON.stringify({ exported: codes }));
});
