// OpenTelemetry traces: off unless OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set.
// Then the standard Node SDK exports spans over OTLP (the SDK's own OTEL_* variables apply:
// OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_EXPORTER_OTLP_HEADERS, OTEL_TRACES_SAMPLER, …) with Fastify,
// pg and undici instrumentation, a W3C `traceparent` from callers continued, service.name latchkey.
//
// server.ts imports this module first: the SDK must patch `pg` before anything loads it (from ESM,
// the CJS module is loaded here with `require` once the hooks are in place, and the application's
// `import` then gets the same, patched, module). Off, none of the SDK is loaded.
//
// No token, code, secret or password reaches a span attribute: the request span's url.path keeps
// only the query parameter names (as the logs do), the request body is never recorded, SQL is
// recorded as its parameterized text without values, and the connection string without its password.
import { createRequire } from 'node:module';
import type { Span } from '@opentelemetry/api';
import type { NodeSDK as NodeSDKType } from '@opentelemetry/sdk-node';
import { redactUrl } from './http/logging.js';

const require = createRequire(import.meta.url);

export interface Tracing {
  shutdown(): Promise<void>;
}

export function tracingEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim()) && env.OTEL_SDK_DISABLED !== 'true';
}

function startTracing(): Tracing {
  const { NodeSDK } = require('@opentelemetry/sdk-node') as { NodeSDK: typeof NodeSDKType };
  const { FastifyOtelInstrumentation } = require('@fastify/otel') as typeof import('@fastify/otel');
  const { PgInstrumentation } = require('@opentelemetry/instrumentation-pg') as typeof import('@opentelemetry/instrumentation-pg');
  const { UndiciInstrumentation } = require('@opentelemetry/instrumentation-undici') as typeof import('@opentelemetry/instrumentation-undici');
  const sdk = new NodeSDK({
    serviceName: process.env.OTEL_SERVICE_NAME?.trim() || 'latchkey',
    instrumentations: [
      new FastifyOtelInstrumentation({
        registerOnInitialization: true,
        requestHook: (span: Span, request: { url: string }) => {
          span.setAttribute('url.path', redactUrl(request.url));
        },
      }),
      // background work (denylist poll, key maintenance, pruning) would start a trace every few seconds
      new PgInstrumentation({ requireParentSpan: true, enhancedDatabaseReporting: false }),
      new UndiciInstrumentation(),
    ],
  });
  sdk.start();
  // the application imports pg from ESM: load it through the patched CJS loader first
  require('pg');
  return { shutdown: () => sdk.shutdown() };
}

/** The running SDK, or undefined when tracing is off. */
export const tracing: Tracing | undefined = tracingEnabled() ? startTracing() : undefined;
