import { describe, expect, it } from "vitest";
import { createAddressPolicy, embeddedIPv4, isAllowEntry, normalHost } from "../../src/providers/address-policy.js";

const strict = createAddressPolicy([]);

describe("address policy with an empty allowlist", () => {
  it.each([
    ["0.0.0.0", "an unspecified address"],
    ["0.1.2.3", "an unspecified address"],
    ["10.0.0.1", "a private address"],
    ["10.255.255.255", "a private address"],
    ["100.64.0.1", "a carrier-grade NAT address"],
    ["100.127.255.254", "a carrier-grade NAT address"],
    ["100.100.100.200", "a cloud metadata address"],
    ["168.63.129.16", "a cloud metadata address"],
    ["127.0.0.1", "a loopback address"],
    ["127.255.255.254", "a loopback address"],
    ["169.254.0.1", "a link-local address"],
    ["169.254.169.254", "a cloud metadata address"],
    ["172.16.0.1", "a private address"],
    ["172.31.255.255", "a private address"],
    ["192.0.0.8", "an IETF protocol assignment address"],
    ["192.168.1.1", "a private address"],
    ["198.18.0.1", "a benchmarking address"],
    ["198.19.255.255", "a benchmarking address"],
    ["224.0.0.1", "a multicast address"],
    ["239.255.255.250", "a multicast address"],
    ["240.0.0.1", "a reserved address"],
    ["255.255.255.254", "a reserved address"],
    ["255.255.255.255", "a broadcast address"],
  ])("when the IPv4 address is %s, then it is refused as %s", (address, why) => {
    expect(strict.refusal(address)).toBe(why);
  });

  it.each([
    ["::", "an unspecified address"],
    ["::1", "a loopback address"],
    ["0:0:0:0:0:0:0:1", "a loopback address"],
    ["fc00::1", "a private address"],
    ["fd12:3456::1", "a private address"],
    ["fd00:ec2::254", "a cloud metadata address"],
    ["fe80::1", "a link-local address"],
    ["febf:ffff::1", "a link-local address"],
    ["ff02::1", "a multicast address"],
    ["2001:0:4136:e378:8000:63bf:3fff:fdd2", "a tunnel address"],
    ["64:ff9b:1::a00:1", "a tunnel address"],
  ])("when the IPv6 address is %s, then it is refused as %s", (address, why) => {
    expect(strict.refusal(address)).toBe(why);
  });

  it.each([
    ["::ffff:127.0.0.1", "a loopback address"],
    ["::ffff:7f00:1", "a loopback address"],
    ["::ffff:169.254.169.254", "a cloud metadata address"],
    ["::ffff:a00:1", "a private address"],
    ["::ffff:0:10.0.0.1", "a private address"],
    ["::127.0.0.1", "a loopback address"],
    ["64:ff9b::7f00:1", "a loopback address"],
    ["64:ff9b::169.254.169.254", "a cloud metadata address"],
    ["2002:a9fe:a9fe::1", "a cloud metadata address"],
    ["2002:c0a8:101::", "a private address"],
  ])("when the IPv6 address %s carries a forbidden IPv4 address, then it is refused as %s", (address, why) => {
    expect(strict.refusal(address)).toBe(why);
  });

  it.each([
    "8.8.8.8",
    "1.1.1.1",
    "100.63.255.255",
    "100.128.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "192.0.1.1",
    "192.169.0.1",
    "198.17.255.255",
    "198.20.0.0",
    "223.255.255.255",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
    "fbff:ffff::1",
    "fec0::1",
  ])("when the address %s is public, then it is allowed", (address) => {
    expect(strict.refusal(address)).toBeUndefined();
  });

  it.each([
    ["::ffff:7f00:1", "127.0.0.1"],
    ["::ffff:0:a00:1", "10.0.0.1"],
    ["::a9fe:a9fe", "169.254.169.254"],
    ["64:ff9b::c0a8:101", "192.168.1.1"],
    ["2002:0a00:0001::", "10.0.0.1"],
  ])("when the IPv6 address is %s, then the IPv4 address it carries is %s", (address, inner) => {
    expect(embeddedIPv4(address)).toBe(inner);
  });

  it.each(["::1", "::", "2001:db8::1", "fe80::1"])(
    "when the IPv6 address is %s, then it carries no IPv4",
    (address) => {
      expect(embeddedIPv4(address)).toBeUndefined();
    },
  );
});

describe("hosts as a URL spells them", () => {
  it.each([
    ["http://2130706433/", "127.0.0.1 is a loopback address"],
    ["http://0x7f.1/", "127.0.0.1 is a loopback address"],
    ["http://0177.0.0.1/", "127.0.0.1 is a loopback address"],
    ["http://127.1/", "127.0.0.1 is a loopback address"],
    ["http://0/", "0.0.0.0 is an unspecified address"],
    ["http://[::ffff:127.0.0.1]/", "::ffff:7f00:1 is a loopback address"],
    ["http://[::1]:8080/", "::1 is a loopback address"],
    ["http://[0:0:0:0:0:0:0:1]/", "::1 is a loopback address"],
    ["http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"],
    ["http://[fd00:ec2::254]/", "fd00:ec2::254 is a cloud metadata address"],
    ["http://localhost:3000/", '"localhost" names a loopback address'],
    ["http://LOCALHOST./", '"localhost" names a loopback address'],
    ["http://api.localhost/", '"api.localhost" names a loopback address'],
    ["http://metadata.google.internal/", '"metadata.google.internal" names a cloud metadata address'],
  ])("when the URL is %s, then its host is refused: %s", (url, why) => {
    expect(strict.hostRefusal(new URL(url).hostname)).toBe(why);
  });

  it.each([
    "http://api.example.com/",
    "http://8.8.8.8/",
    "http://[2606:4700:4700::1111]/",
    "http://localhost.example/",
  ])("when the URL is %s, then its host is not refused before DNS", (url) => {
    expect(strict.hostRefusal(new URL(url).hostname)).toBeUndefined();
  });

  it("when a host is written in brackets, upper case or with a trailing dot, then it is compared without them", () => {
    expect(normalHost("[::1]")).toBe("::1");
    expect(normalHost("API.Example.COM.")).toBe("api.example.com");
  });
});

describe("allowlist", () => {
  it("when an IP address is allowed, then that address passes and its neighbours do not", () => {
    const policy = createAddressPolicy(["127.0.0.1"]);
    expect(policy.refusal("127.0.0.1")).toBeUndefined();
    expect(policy.refusal("127.0.0.2")).toBe("a loopback address");
    expect(policy.refusal("::1")).toBe("a loopback address");
  });

  it("when a CIDR block is allowed, then every address in it passes, also written as IPv4-mapped IPv6", () => {
    const policy = createAddressPolicy(["10.1.0.0/16", "fd00::/8"]);
    expect(policy.refusal("10.1.2.3")).toBeUndefined();
    expect(policy.refusal("::ffff:10.1.2.3")).toBeUndefined();
    expect(policy.refusal("fd12::1")).toBeUndefined();
    expect(policy.refusal("10.2.0.1")).toBe("a private address");
    expect(policy.refusal("fc00::1")).toBe("a private address");
    expect(policy.hostRefusal("10.1.200.1")).toBeUndefined();
    expect(policy.hostRefusal("10.3.0.1")).toBe("10.3.0.1 is a private address");
  });

  it("when loopback is allowed, then localhost is no longer refused by name", () => {
    const policy = createAddressPolicy(["127.0.0.0/8", "::1"]);
    expect(policy.hostRefusal("localhost")).toBeUndefined();
    expect(policy.hostRefusal("ip6-localhost")).toBeUndefined();
    expect(policy.hostRefusal("metadata.google.internal")).toBe(
      '"metadata.google.internal" names a cloud metadata address',
    );
  });

  it("when a hostname is allowed, then it is exempt whatever its case or trailing dot, and other names are not", () => {
    const policy = createAddressPolicy(["Mock-Provider", "localhost"]);
    expect(policy.exempts("mock-provider")).toBe(true);
    expect(policy.exempts("mock-provider.")).toBe(true);
    expect(policy.exempts("other-provider")).toBe(false);
    expect(policy.hostRefusal("localhost")).toBeUndefined();
    expect(policy.hostRefusal("api.localhost")).toBe('"api.localhost" names a loopback address');
    expect(policy.refusal("127.0.0.1")).toBe("a loopback address");
  });

  it.each([
    "localhost",
    "mock-provider",
    "api.example.test",
    "127.0.0.1",
    "::1",
    "10.0.0.0/8",
    "fd00::/8",
    "docker_host",
  ])("when the entry is %s, then it may stand in the allowlist", (entry) => {
    expect(isAllowEntry(entry)).toBe(true);
  });

  it.each([
    "10.0.0.0/33",
    "::/129",
    "10.0.0.0/x",
    "http://localhost",
    "host name",
    "a..b",
    "-bad",
    "*.example.com",
    "",
  ])("when the entry is %j, then it is refused", (entry) => {
    expect(isAllowEntry(entry)).toBe(false);
    expect(() => createAddressPolicy([entry])).toThrow();
  });
});
