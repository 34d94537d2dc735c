/**
 * Where a webhook may be delivered. Loopback, private, link-local and other non-public
 * addresses are refused (SSRF) unless the operator allows private targets. The check runs on
 * the address the connection actually uses (a custom DNS lookup for node:http), so a name that
 * resolves to a public address at creation and a private one later (DNS rebinding) is refused too.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { ociError } from '../errors/catalogue.js';

const NON_PUBLIC = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) NON_PUBLIC.addSubnet(net, bits, 'ipv4');
// ::/96 holds the unspecified address, loopback and the deprecated IPv4-compatible form (::7f00:1); fec0::/10 is old site-local.
for (const [net, bits] of [['::', 96], ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8], ['64:ff9b::', 96]] as const) NON_PUBLIC.addSubnet(net, bits, 'ipv6');

export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  // IPv4-mapped IPv6 (::ffff:10.0.0.1) is judged as the IPv4 address it carries.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return !NON_PUBLIC.check(mapped[1]!, 'ipv4');
  return !NON_PUBLIC.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** Validates a webhook URL's shape (http/https, no credentials, a host); throws INVALID_PAYLOAD. */
export function parseTargetUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw ociError('INVALID_PAYLOAD', 'url is not a valid URL', { status: 400 });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw ociError('INVALID_PAYLOAD', 'url must be http or https', { status: 400 });
  if (url.username || url.password) throw ociError('INVALID_PAYLOAD', 'url must not carry credentials (sign with the secret instead)', { status: 400 });
  return url;
}

/** Resolves the host and refuses non-public addresses unless allowed. */
export async function assertDeliverable(url: URL, allowPrivate: boolean): Promise<void> {
  if (allowPrivate) return;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host) ? [host] : await new Promise<string[]>((resolve, reject) => dnsLookup(host, { all: true }, (err, list) => (err ? reject(ociError('INVALID_PAYLOAD', `cannot resolve ${host}`, { status: 400 })) : resolve(list.map((a) => a.address)))));
  const refused = addresses.find((a) => !isPublicAddress(a));
  if (refused) throw ociError('INVALID_PAYLOAD', `webhook target ${host} resolves to a non-public address (${refused}); set webhookAllowPrivateTargets to allow it`, { status: 400 });
}

/** Why delivery to this URL's host is refused when the host is an IP literal (no DNS lookup happens), or null. */
export function literalRefusal(url: URL, allowPrivate: boolean): string | null {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return !allowPrivate && isIP(host) !== 0 && !isPublicAddress(host) ? `refused non-public address ${host}` : null;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** A dns.lookup for http.request that refuses non-public addresses at connect time. */
export function guardedLookup(allowPrivate: boolean) {
  return (hostname: string, options: object, callback: LookupCallback): void => {
    dnsLookup(hostname, { ...options, all: true }, (err, list) => {
      if (err) return callback(err, []);
      const bad = list.find((a) => !allowPrivate && !isPublicAddress(a.address));
      if (bad) return callback(Object.assign(new Error(`refused non-public address ${bad.address}`), { code: 'EADDRNOTPUBLIC' }), []);
      const all = (options as { all?: boolean }).all;
      if (all) return callback(null, list);
      callback(null, list[0]!.address, list[0]!.family);
    });
  };
}
