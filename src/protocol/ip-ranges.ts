// Where the server may send a request of its own to a URL a client registered (back-channel
// logout, later client metadata documents): only to public unicast addresses. Loopback, private
// (RFC 1918, RFC 4193), link-local (RFC 3927, RFC 4291 §2.5.6: cloud metadata lives there), shared
// CGNAT space (RFC 6598), unspecified, multicast and reserved addresses are refused, also when an
// IPv6 address embeds one (IPv4-mapped and -compatible, NAT64 64:ff9b::/96, 6to4 2002::/16). A name
// is resolved, every address checked, and the connection made to a checked address (pinnedLookup),
// so a second DNS answer (rebinding) cannot move it.
import { lookup as dnsLookup } from 'node:dns/promises';
import type { LookupAddress, LookupOptions } from 'node:dns';
import { isIP } from 'node:net';

export type AddressClass = 'public' | 'loopback' | 'private' | 'link-local' | 'shared' | 'unspecified' | 'multicast' | 'reserved';

type Range = [bytes: number[], prefix: number, cls: AddressClass];

const V4: Range[] = [
  [[0, 0, 0, 0], 8, 'unspecified'],
  [[10, 0, 0, 0], 8, 'private'],
  [[100, 64, 0, 0], 10, 'shared'],
  [[127, 0, 0, 0], 8, 'loopback'],
  [[169, 254, 0, 0], 16, 'link-local'],
  [[172, 16, 0, 0], 12, 'private'],
  [[192, 0, 0, 0], 24, 'reserved'],
  [[192, 168, 0, 0], 16, 'private'],
  [[198, 18, 0, 0], 15, 'reserved'],
  [[224, 0, 0, 0], 4, 'multicast'],
  [[240, 0, 0, 0], 4, 'reserved'],
];

const V6: Range[] = [
  [[0xfc], 7, 'private'],
  [[0xfe, 0x80], 10, 'link-local'],
  [[0xfe, 0xc0], 10, 'private'], // site-local, deprecated (RFC 3879)
  [[0xff], 8, 'multicast'],
];

function inRange(addr: number[], [net, prefix]: Range): boolean {
  for (let bit = 0; bit < prefix; bit += 8) {
    const mask = prefix - bit >= 8 ? 0xff : (0xff << (8 - (prefix - bit))) & 0xff;
    if (((addr[bit / 8] ?? 0) & mask) !== ((net[bit / 8] ?? 0) & mask)) return false;
  }
  return true;
}

function v4Bytes(ip: string): number[] {
  return ip.split('.').map(Number);
}

function v6Bytes(ip: string): number[] {
  let s = ip;
  const tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (dotted) {
    tail.push(...v4Bytes(dotted[1]!));
    s = s.slice(0, -dotted[1]!.length) + '0:0';
  }
  const [head, rest] = s.includes('::') ? s.split('::') : [s, undefined];
  const left = head ? head.split(':') : [];
  const right = rest ? rest.split(':') : [];
  const groups = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right].map((g) => parseInt(g, 16));
  const bytes = groups.flatMap((g) => [g >> 8, g & 0xff]);
  if (tail.length) bytes.splice(12, 4, ...tail);
  return bytes;
}

function classifyV4(b: number[]): AddressClass {
  if (b.every((x) => x === 255)) return 'reserved'; // limited broadcast
  return V4.find((r) => inRange(b, r))?.[2] ?? 'public';
}

function classifyV6(b: number[]): AddressClass {
  const zeros = (from: number, to: number) => b.slice(from, to).every((x) => x === 0);
  if (zeros(0, 16)) return 'unspecified';
  if (zeros(0, 15) && b[15] === 1) return 'loopback';
  // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible): the IPv4 address decides
  if (zeros(0, 10) && ((b[10] === 0xff && b[11] === 0xff) || (b[10] === 0 && b[11] === 0))) return classifyV4(b.slice(12));
  // RFC 6052 NAT64 well-known prefix, RFC 3056 6to4: the embedded IPv4 address decides
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zeros(4, 12)) return classifyV4(b.slice(12));
  if (b[0] === 0x20 && b[1] === 0x02) return classifyV4(b.slice(2, 6));
  return V6.find((r) => inRange(b, r))?.[2] ?? 'public';
}

/** The class of an IP address (IPv6 with or without brackets and zone), undefined when `ip` is not one. */
export function classifyAddress(ip: string): AddressClass | undefined {
  const bare = ip.replace(/^\[(.*)\]$/, '$1').replace(/%.*$/, '');
  const v = isIP(bare);
  if (v === 4) return classifyV4(v4Bytes(bare));
  if (v === 6) return classifyV6(v6Bytes(bare.toLowerCase()));
  return undefined;
}

export function isPublicAddress(ip: string): boolean {
  return classifyAddress(ip) === 'public';
}

export type Lookup = (hostname: string) => Promise<LookupAddress[]>;

export const systemLookup: Lookup = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

export class RefusedAddress extends Error {
  constructor(
    readonly host: string,
    readonly cls: AddressClass,
  ) {
    super(`${host} is not a public address (${cls})`);
  }
}

/**
 * The addresses of a URL's hostname (WHATWG-parsed, so `2130706433` is already 127.0.0.1), every
 * one public; RefusedAddress when any is not, the lookup's error when the name does not resolve.
 */
export async function publicAddresses(hostname: string, lookup: Lookup = systemLookup): Promise<LookupAddress[]> {
  const literal = hostname.replace(/^\[(.*)\]$/, '$1');
  const cls = classifyAddress(literal);
  if (cls !== undefined) {
    if (cls !== 'public') throw new RefusedAddress(hostname, cls);
    return [{ address: literal, family: isIP(literal) }];
  }
  const found = await lookup(hostname);
  if (found.length === 0) throw new Error(`${hostname} has no address`);
  for (const a of found) {
    const c = classifyAddress(a.address);
    if (c !== 'public') throw new RefusedAddress(hostname, c ?? 'reserved');
  }
  return found;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** A `lookup` for net/http/https that answers only the checked addresses (no second DNS query). */
export function pinnedLookup(addresses: LookupAddress[]) {
  return (_host: string, options: LookupOptions | number | LookupCallback, cb?: LookupCallback): void => {
    const callback = (typeof options === 'function' ? options : cb)!;
    const opts = typeof options === 'object' ? options : {};
    const family = typeof options === 'number' ? options : opts.family === 'IPv4' ? 4 : opts.family === 'IPv6' ? 6 : opts.family;
    const usable = family === 4 || family === 6 ? addresses.filter((a) => a.family === family) : addresses;
    if (usable.length === 0) {
      callback(Object.assign(new Error('no checked address of that family'), { code: 'ENOTFOUND' }), '');
      return;
    }
    if (opts.all) callback(null, usable);
    else callback(null, usable[0]!.address, usable[0]!.family);
  };
}
