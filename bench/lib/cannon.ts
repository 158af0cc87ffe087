// autocannon for the stateless workloads: the same request over and over on N keep-alive connections.
import autocannon from 'autocannon';
import type { RunResult } from './stats.js';

export interface CannonRequest {
  url: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
}

export async function cannon(req: CannonRequest, connections: number, durationMs: number): Promise<RunResult> {
  const result = await autocannon({
    url: req.url,
    method: req.method ?? 'GET',
    headers: req.headers,
    body: req.body,
    connections,
    duration: durationMs / 1000,
    timeout: 10,
  });
  const seconds = result.duration;
  return {
    rps: result.requests.total / seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    // connection errors include timeouts; a non-2xx answer is an error too
    errors: result.errors + result.non2xx,
    requests: result.requests.total,
    seconds,
  };
}
