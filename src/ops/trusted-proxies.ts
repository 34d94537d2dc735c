/**
 * The client address behind a reverse proxy. X-Forwarded-For and Forwarded are anyone's to
 * send, so they are believed only when the TCP peer is a configured proxy; otherwise the
 * socket address is the client. With several hops, the rightmost address that is not itself
 * a trusted proxy is the client (the left part of the list is whatever the client claimed).
 */
import { BlockList, isIP } from 'node:net';

function parseCidr(entry: string): { address: string; prefix: number | undefined; family: 'ipv4' | 'ipv6' } | null {
  const slash = entry.indexOf('/');
  const address = slash < 0 ? entry : entry.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return null;
  const max = version === 4 ? 32 : 128;
  let prefix: number | undefined;
  if (slash >= 0) {
    const text = entry.slice(slash + 1);
    if (!/^\d{1,3}$/.test(text)) return null;
    prefix = Number(text);
    if (prefix > max) return null;
  }
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

export function isCidrOrAddress(entry: string): boolean {
  return parseCidr(entry) !== null;
}

/** `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) is checked as 10.0.0.1. */
function normalise(address: string): string {
  return address.toLowerCase().startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/** Addresses from `Forwarded: for=...` elements (RFC 7239), in order; quoted, bracketed, with ports. */
function forwardedFor(header: string): string[] {
  const out: string[] = [];
  for (const element of header.split(',')) {
    for (const pair of element.split(';')) {
      const eq = pair.indexOf('=');
      if (eq < 0 || pair.slice(0, eq).trim().toLowerCase() !== 'for') continue;
      let v = pair.slice(eq + 1).trim().replace(/^"|"$/g, '');
      if (v.startsWith('[')) v = v.slice(1, v.indexOf(']') < 0 ? undefined : v.indexOf(']'));
      else if (v.split(':').length === 2) v = v.slice(0, v.indexOf(':')); // IPv4 with a port
      out.push(v);
    }
  }
  return out;
}

export class TrustedProxies {
  private readonly list = new BlockList();
  readonly empty: boolean;

  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const c = parseCidr(entry);
      if (!c) throw new Error(`not an IP address or CIDR: ${entry}`);
      if (c.prefix === undefined) this.list.addAddress(c.address, c.family);
      else this.list.addSubnet(c.address, c.prefix, c.family);
    }
    this.empty = entries.length === 0;
  }

  trusts(address: string): boolean {
    const a = normalise(address);
    const v = isIP(a);
    if (v === 0) return false;
    return this.list.check(a, v === 4 ? 'ipv4' : 'ipv6');
  }

  /** The client address for a request from `peer` with these headers. */
  clientOf(peer: string | undefined, headers: { forwarded?: string; xForwardedFor?: string }): string {
    if (peer === undefined) return 'unknown';
    if (this.empty || !this.trusts(peer)) return normalise(peer);
    // Forwarded (standard) wins over X-Forwarded-For when a proxy sends both.
    const hops = headers.forwarded ? forwardedFor(headers.forwarded) : (headers.xForwardedFor ?? '').split(',').map((s) => s.trim());
    let last = normalise(peer);
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = normalise(hops[i]!);
      // Garbage or an obfuscated identifier: the last proxy we trust is as far as we can see.
      if (isIP(hop) === 0) return last;
      if (!this.trusts(hop)) return hop;
      last = hop;
    }
    return last; // every hop was a trusted proxy (or none was named)
  }
}
