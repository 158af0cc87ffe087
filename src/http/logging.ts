// Logs are pino JSON (readable lines instead when stdout is a terminal, or LOG_FORMAT=pretty;
// redaction happens before either is written). Authorization, cookies, passwords, secrets and tokens never reach a log
// line: headers are redacted and query strings keep only the names of their parameters, except a
// few that are safe to show.
import type { FastifyServerOptions } from 'fastify';
import pinoPretty from 'pino-pretty';

const SAFE_QUERY_PARAMS = new Set(['client_id', 'response_type', 'response_mode', 'scope', 'prompt', 'code_challenge_method', 'display', 'ui_locales', 'max_age']);

export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const params = new URLSearchParams(url.slice(q + 1));
  const parts: string[] = [];
  for (const [k, v] of params) parts.push(`${encodeURIComponent(k)}=${SAFE_QUERY_PARAMS.has(k) ? encodeURIComponent(v) : '[redacted]'}`);
  return `${url.slice(0, q)}?${parts.join('&')}`;
}

/** JSON unless LOG_FORMAT says otherwise or stdout is a terminal (a person is reading). */
export function logFormat(configured: 'json' | 'pretty' | undefined, isTTY = Boolean(process.stdout.isTTY)): 'json' | 'pretty' {
  return configured ?? (isTTY ? 'pretty' : 'json');
}

/** The pretty stream for people: one line per event, synchronous like the JSON one. */
export function prettyStream(destination: NodeJS.WritableStream = process.stdout, colorize = Boolean(process.stdout.isTTY)): NodeJS.WritableStream {
  return pinoPretty({ destination, sync: true, colorize, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', singleLine: true });
}

export function loggerOptions(level: string, stream?: NodeJS.WritableStream, format: 'json' | 'pretty' = 'json'): FastifyServerOptions['logger'] {
  const out = format === 'pretty' ? prettyStream(stream ?? process.stdout, stream ? false : undefined) : stream;
  return {
    level,
    ...(out ? { stream: out } : {}),
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        'req.headers["proxy-authorization"]',
        'res.headers["set-cookie"]',
        'headers.authorization',
        'headers.cookie',
        '*.password',
        '*.client_secret',
        '*.token',
        '*.code',
        '*.refresh_token',
        '*.access_token',
        '*.id_token',
      ],
      censor: '[redacted]',
    },
    serializers: {
      req(req: { method: string; url: string; ip?: string; socket?: { remotePort?: number } }) {
        return { method: req.method, url: redactUrl(req.url), remoteAddress: req.ip };
      },
    },
  };
}
