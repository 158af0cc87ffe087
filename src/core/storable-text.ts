// What Postgres can store as text: no NUL, and no lone UTF-16 surrogate (it has no UTF-8 form).
// The HTTP routes (src/http/plugins/input-sanity.ts) and the CLI's argument parser share the rule.
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function isStorableText(s: string): boolean {
  return !UNSTORABLE.test(s);
}

/** The name of the first parameter (key or value, at any depth) that cannot be stored; undefined when all can. */
export function firstUnstorable(value: unknown, name = '', depth = 0): string | undefined {
  if (typeof value === 'string') return isStorableText(value) ? undefined : name || 'value';
  if (depth > 8 || value === null || typeof value !== 'object') return undefined;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (!isStorableText(k)) return 'a parameter name';
    const bad = firstUnstorable(v, Array.isArray(value) ? name : k, depth + 1);
    if (bad !== undefined) return bad;
  }
  return undefined;
}
