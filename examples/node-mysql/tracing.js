// OpenTelemetry for the service, configured only by the environment, as any service would be:
// OTEL_EXPORTER_OTLP_ENDPOINT (correlate record sets http://127.0.0.1:4318) and
// OTEL_SERVICE_NAME. Loaded with `node --require ./tracing.js server.js`.
'use strict';

const { NodeSDK } = require('@opentelemetry/sdk-node');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto');
const { getNodeAutoInstrumentations } = require('@opentelemetry/auto-instrumentations-node');

const sdk = new NodeSDK({
  serviceName: process.env.OTEL_SERVICE_NAME || 'node-mysql',
  traceExporter: new OTLPTraceExporter(), // endpoint from OTEL_EXPORTER_OTLP_ENDPOINT
  instrumentations: [
    getNodeAutoInstrumentations({
      // file system and DNS spans are noise for this question
      '@opentelemetry/instrumentation-fs': { enabled: false },
      '@opentelemetry/instrumentation-dns': { enabled: false },
      '@opentelemetry/instrumentation-net': { enabled: false },
    }),
  ],
});
sdk.start();

// Flush what is buffered before the process ends, so the receiver gets every span.
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    sdk.shutdown().finally(() => process.exit(0));
  });
}
