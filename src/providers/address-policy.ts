import { BlockList, isIP } from "node:net";

/**
 * Addresses roomkey never calls on behalf of an integration: anything that is
 * not a public unicast address on the internet. A caller that may configure
 * an integration must not be able to make roomkey probe its own machine, its
 * network or the cloud's metadata service. Checked in this order, so the
 * first name that fits is the one a refusal gives.
 */
const forbiddenRanges: readonly { kind: string; v4?: readonly string[]; v6?: readonly string[] }[] = [
  // AWS, GCP, Azure, OpenStack (169.254.169.254), AWS over IPv6 (fd00:ec2::254), Alibaba (100.100.100.200),
  // Azure's WireServer (168.63.129.16, a public address that only answers inside Azure).
  {
    kind: "cloud metadata",
    v4: ["169.254.169.254/32", "100.100.100.200/32", "168.63.129.16/32"],
    v6: ["fd00:ec2::254/128"],
  },
  { kind: "unspecified", v4: ["0.0.0.0/8"], v6: ["::/128"] },
  { kind: "loopback", v4: ["127.0.0.0/8"], v6: ["::1/128"] },
  { kind: "private", v4: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"], v6: ["fc00::/7"] },
  { kind: "carrier-grade NAT", v4: ["100.64.0.0/10"] },
  { kind: "link-local", v4: ["169.254.0.0/16"], v6: ["fe80::/10"] },
  { kind: "IETF protocol assignment", v4: ["192.0.0.0/24"] },
  { kind: "benchmarking", v4: ["198.18.0.0/15"] },
  { kind: "multicast", v4: ["224.0.0.0/4"], v6: ["ff00::/8"] },
  { kind: "broadcast", v4: ["255.255.255.255/32"] },
  { kind: "reserved", v4: ["240.0.0.0/4"] },
  // Tunnels whose far end is hidden in the address (Teredo), and NAT64 prefixes for local use only.
  { kind: "tunnel", v6: ["2001::/32", "64:ff9b:1::/48"] },
];

/**
 * Names that stand for an address without asking DNS (RFC 6761 `localhost`,
 * hosts-file aliases, the clouds' metadata names). They are judged as that
 * address, so PutIntegration refuses them even where DNS does not answer.
 */
const specialNames: ReadonlyMap<string, string> = new Map([
  ["localhost", "127.0.0.1"],
  ["localhost.localdomain", "127.0.0.1"],
  ["ip6-localhost", "::1"],
  ["ip6-loopback", "::1"],
  ["metadata", "169.254.169.254"],
  ["metadata.google.internal", "169.254.169.254"],
  ["metadata.goog", "169.254.169.254"],
  ["instance-data", "169.254.169.254"],
  ["instance-data.ec2.internal", "169.254.169.254"],
]);

const hostnamePattern =
  /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

type Family = "ipv4" | "ipv6";

function familyOf(address: string): Family | undefined {
  const version = isIP(address);
  return version === 4 ? "ipv4" : version === 6 ? "ipv6" : undefined;
}

/** A hostname as compared: lower case, without the trailing dot of a fully qualified name, IPv6 without brackets. */
export function normalHost(host: string): string {
  const lower = host.toLowerCase();
  const bare = lower.startsWith("[") && lower.endsWith("]") ? lower.slice(1, -1) : lower;
  return bare.endsWith(".") ? bare.slice(0, -1) : bare;
}

/** A CIDR block `address/prefix`, or undefined if `entry` is not one. */
function subnetOf(entry: string): { address: string; prefix: number; family: Family } | undefined {
  const slash = entry.indexOf("/");
  if (slash < 0) return undefined;
  const address = entry.slice(0, slash);
  const bits = entry.slice(slash + 1);
  const family = familyOf(address);
  if (!family || !/^\d{1,3}$/.test(bits)) return undefined;
  const prefix = Number(bits);
  return prefix <= (family === "ipv4" ? 32 : 128) ? { address, prefix, family } : undefined;
}

/** Whether `entry` can stand in the allowlist: a hostname, an IP address or a CIDR block. */
export function isAllowEntry(entry: string): boolean {
  return familyOf(entry) !== undefined || subnetOf(entry) !== undefined || hostnamePattern.test(normalHost(entry));
}

/** The sixteen-bit groups of an IPv6 address (dotted IPv4 tail included); undefined if it is not one. */
function groupsOf(address: string): number[] | undefined {
  if (familyOf(address) !== "ipv6") return undefined;
  let text = address.toLowerCase();
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1]) {
    const [a, b, c, d] = dotted[1].split(".").map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const parse = (part: string) => (part === "" ? [] : part.split(":").map((g) => Number.parseInt(g, 16)));
  const front = parse(head);
  const back = tail === undefined ? [] : parse(tail);
  const middle = tail === undefined ? [] : new Array<number>(8 - front.length - back.length).fill(0);
  const groups = [...front, ...middle, ...back];
  return groups.length === 8 ? groups : undefined;
}

function ipv4Of(high: number, low: number): string {
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join(".");
}

/**
 * The IPv4 address an IPv6 address carries and reaches, if any: IPv4-mapped
 * (`::ffff:a.b.c.d`), IPv4-translated (`::ffff:0:a.b.c.d`), IPv4-compatible
 * (`::a.b.c.d`, deprecated), NAT64 (`64:ff9b::a.b.c.d`) and 6to4
 * (`2002:aabb:ccdd::`).
 */
export function embeddedIPv4(address: string): string | undefined {
  const g = groupsOf(address);
  if (!g) return undefined;
  const [g0, g1, g2, g3, g4, g5, g6, g7] = g as [number, number, number, number, number, number, number, number];
  const zeroTo = (n: number) => g.slice(0, n).every((x) => x === 0);
  if (zeroTo(5) && g5 === 0xffff) return ipv4Of(g6, g7);
  if (zeroTo(4) && g4 === 0xffff && g5 === 0) return ipv4Of(g6, g7);
  if (zeroTo(6) && (g6 !== 0 || g7 > 1)) return ipv4Of(g6, g7);
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0) return ipv4Of(g6, g7);
  if (g0 === 0x2002) return ipv4Of(g1, g2);
  return undefined;
}

/** The rules roomkey follows before it connects anywhere an integration names. */
export interface AddressPolicy {
  /**
   * Why roomkey must not connect to this IP address (`"a loopback address"`),
   * or undefined when it may: a public address, or one the allowlist exempts.
   */
  refusal(address: string): string | undefined;
  /** Whether the allowlist names this host, which exempts it and every address it resolves to. */
  exempts(host: string): boolean;
  /** Why roomkey must not call this host before any DNS: a forbidden IP literal or a name such as `localhost`. */
  hostRefusal(host: string): string | undefined;
}

/**
 * The address policy, with an allowlist of hostnames, IP addresses and CIDR
 * blocks that are exempt (for local development and tests; empty in
 * production). Throws on an entry that is none of these.
 */
export function createAddressPolicy(allow: readonly string[]): AddressPolicy {
  const forbidden = forbiddenRanges.map(({ kind, v4 = [], v6 = [] }) => {
    const list = new BlockList();
    for (const cidr of v4) addSubnet(list, cidr);
    for (const cidr of v6) addSubnet(list, cidr);
    return { kind, list };
  });
  const allowedAddresses = new BlockList();
  const allowedHosts = new Set<string>();
  for (const entry of allow) {
    const family = familyOf(entry);
    if (family) allowedAddresses.addAddress(entry, family);
    else if (subnetOf(entry)) addSubnet(allowedAddresses, entry);
    else if (isAllowEntry(entry)) allowedHosts.add(normalHost(entry));
    else throw new Error(`"${entry}" is not a hostname, an IP address or a CIDR block`);
  }

  /** The kind of forbidden range that holds `address` (matched in its own family only). */
  function kindOf(address: string, family: Family): string | undefined {
    return forbidden.find(({ list }) => list.check(address, family))?.kind;
  }

  function refusal(address: string): string | undefined {
    const family = familyOf(address);
    if (!family) return "not an IP address";
    const inner = family === "ipv6" ? embeddedIPv4(address) : undefined;
    if (allowedAddresses.check(address, family) || (inner && allowedAddresses.check(inner, "ipv4"))) {
      return undefined;
    }
    // A Node BlockList matches an IPv4-mapped address against IPv4 rules too; the embedded form says why.
    const kind = (inner && kindOf(inner, "ipv4")) ?? kindOf(address, family);
    if (kind === undefined) return undefined;
    return `${kind === "unspecified" || kind === "IETF protocol assignment" ? "an" : "a"} ${kind} address`;
  }

  function exempts(host: string): boolean {
    return allowedHosts.has(normalHost(host));
  }

  function hostRefusal(host: string): string | undefined {
    const name = normalHost(host);
    if (exempts(name)) return undefined;
    if (isIP(name)) {
      const why = refusal(name);
      return why && `${name} is ${why}`;
    }
    const standsFor = specialNames.get(name) ?? (name.endsWith(".localhost") ? "127.0.0.1" : undefined);
    if (standsFor === undefined) return undefined;
    const why = refusal(standsFor);
    return why && `"${name}" names ${why}`;
  }

  return { refusal, exempts, hostRefusal };
}

function addSubnet(list: BlockList, cidr: string): void {
  const subnet = subnetOf(cidr);
  if (!subnet) throw new Error(`"${cidr}" is not a CIDR block`);
  list.addSubnet(subnet.address, subnet.prefix, subnet.family);
}
