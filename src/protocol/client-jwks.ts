// A client's registered public keys (private_key_jwt, RFC 7523), given inline at registration.
import fs from 'node:fs/promises';
import { importJWK, type JWK } from 'jose';

export class ClientJwksError extends Error {}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'];
import { CLIENT_ASSERTION_ALGS } from '../core/vocabulary.js';
export { CLIENT_ASSERTION_ALGS };

export async function parseClientJwks(text: string): Promise<{ keys: Record<string, unknown>[] }> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ClientJwksError('the JWKS file is not valid JSON');
  }
  const keys = (parsed as { keys?: unknown }).keys;
  if (!Array.isArray(keys) || keys.length === 0 || keys.length > 10) throw new ClientJwksError('the JWKS must be {"keys":[…]} with 1 to 10 keys');
  for (const k of keys as JWK[]) {
    if (!k || typeof k !== 'object' || typeof k.kty !== 'string') throw new ClientJwksError('every key needs a kty');
    if (PRIVATE_MEMBERS.some((m) => m in k)) throw new ClientJwksError('the JWKS must hold public keys only');
    if (k.kty === 'oct') throw new ClientJwksError('symmetric keys are not accepted');
    const alg = k.alg ?? (k.kty === 'EC' ? 'ES256' : k.kty === 'OKP' ? 'EdDSA' : 'RS256');
    if (!CLIENT_ASSERTION_ALGS.includes(alg)) throw new ClientJwksError(`unsupported key alg ${alg}`);
    try {
      await importJWK({ ...k, alg }, alg);
    } catch {
      throw new ClientJwksError(`a key (${k.kid ?? k.kty}) cannot be imported`);
    }
  }
  return { keys: keys as Record<string, unknown>[] };
}

export async function readClientJwks(file: string): Promise<{ keys: Record<string, unknown>[] }> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    throw new ClientJwksError(`cannot read ${file}`);
  }
  return parseClientJwks(text);
}
