import { crc32 } from "node:zlib";
import { describe, expect, it } from "vitest";
import { base62Alphabet, base62Fixed, newId, randomBase62 } from "../../src/domain/ids.js";
import { displayPrefix, generateSecret, hashSecret, inspectSecret } from "../../src/domain/tokens/token-secret.js";
import { errorOf } from "../helpers/fakes.js";

const secretShape = (environment: string) => new RegExp(`^rk_${environment}_[0-9A-Za-z]{54}$`);

/** The inverse of base62Fixed, written independently of it. */
function decodeBase62(text: string): number {
  let value = 0;
  for (const char of text) {
    const digit = base62Alphabet.indexOf(char);
    if (digit < 0) throw new Error(`not base62: ${char}`);
    value = value * 62 + digit;
  }
  return value;
}

/** The secret with the character at `index` replaced. */
function withCharAt(secret: string, index: number, char: string): string {
  return secret.slice(0, index) + char + secret.slice(index + 1);
}

describe("generateSecret", () => {
  it("when a secret is generated, then it reads rk_<environment>_ and 54 base62 characters", () => {
    for (const environment of ["staging", "my-env-2", "ab", "a234567890123456789012z4"]) {
      expect(generateSecret(environment)).toMatch(secretShape(environment));
    }
  });

  it("when a secret is generated, then its last 6 characters are the CRC32 of everything before them", () => {
    const secret = generateSecret("staging");
    const body = secret.slice(0, -6);
    expect(decodeBase62(secret.slice(-6))).toBe(crc32(body));
  });

  it("when many secrets are generated, then each of the 48 random positions varies, carrying at least 256 bits beyond the displayed four", () => {
    const environment = "staging";
    const start = `rk_${environment}_`.length;
    const seen = Array.from({ length: 48 }, () => new Set<string>());
    const randomParts = new Set<string>();
    for (let i = 0; i < 2_000; i++) {
      const random = generateSecret(environment).slice(start, start + 48);
      randomParts.add(random);
      for (let position = 0; position < 48; position++) seen[position]?.add(random.charAt(position));
    }

    expect(randomParts.size).toBe(2_000);
    // 2,000 uniform draws from 62 characters miss one with probability ~ 62 * e^-32: every position shows nearly all.
    for (const chars of seen) expect(chars.size).toBeGreaterThanOrEqual(60);
    expect((48 - 4) * Math.log2(62)).toBeGreaterThanOrEqual(256);
  });
});

describe("inspectSecret", () => {
  it("when a generated secret is inspected, then it is a token of its environment", () => {
    for (const environment of ["staging", "my-env-2"]) {
      expect(inspectSecret(generateSecret(environment))).toEqual({ kind: "token", environment });
    }
  });

  it("when any one of the 54 random or checksum characters is changed to any other base62 character, then bad_checksum", () => {
    const secret = generateSecret("staging");
    const start = "rk_staging_".length;
    const accepted: string[] = [];
    let tried = 0;
    for (let index = start; index < secret.length; index++) {
      for (const char of base62Alphabet) {
        if (char === secret[index]) continue;
        tried++;
        const changed = withCharAt(secret, index, char);
        const shape = inspectSecret(changed);
        if (shape.kind !== "bad_checksum" || shape.environment !== "staging") accepted.push(changed);
      }
    }
    expect(tried).toBe(54 * 61);
    expect(accepted).toEqual([]);
  });

  it("when one character of the environment part is changed, then bad_checksum naming the changed environment", () => {
    const secret = generateSecret("staging");
    for (let index = 3; index < 3 + "staging".length; index++) {
      const replacement = secret[index] === "x" ? "y" : "x";
      const changed = withCharAt(secret, index, replacement);
      const environment = changed.slice(3, 3 + "staging".length);
      expect(inspectSecret(changed)).toEqual({ kind: "bad_checksum", environment });
    }
  });

  it("when the secret is truncated, extended, differently prefixed, empty or holds non-ASCII, then malformed", () => {
    const secret = generateSecret("staging");
    const malformed = [
      "",
      secret.slice(0, -1),
      secret.slice(0, 20),
      `${secret}A`,
      `${secret}\n`,
      ` ${secret}`,
      `sk${secret.slice(2)}`,
      `RK${secret.slice(2)}`,
      secret.replace("rk_staging_", "rk_Staging_"),
      secret.replace("rk_staging_", "rk_staging-"),
      secret.replace("rk_staging_", "rk__"),
      secret.replace("rk_staging_", "rk_s_"),
      secret.replace("rk_staging_", `rk_${"a".repeat(25)}_`),
      withCharAt(secret, secret.length - 10, "é"),
      withCharAt(secret, secret.length - 10, "\u0410"),
      withCharAt(secret, 4, "\u0430"),
      withCharAt(secret, secret.length - 10, "_"),
      `${secret.slice(0, -2)}\u{1F511}`,
    ];
    for (const candidate of malformed) {
      expect({ candidate, shape: inspectSecret(candidate) }).toEqual({ candidate, shape: { kind: "malformed" } });
    }
  });
});

describe("hashSecret", () => {
  it("when a string is hashed, then the result is its SHA-256 in lowercase hex", () => {
    expect(hashSecret("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(hashSecret("")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  });

  it("when a generated secret is hashed, then 64 hex characters come back and differ between secrets", () => {
    const a = hashSecret(generateSecret("staging"));
    const b = hashSecret(generateSecret("staging"));
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(a).not.toBe(b);
  });
});

describe("displayPrefix", () => {
  it("when a prefix is shown, then it is rk_<environment>_, the first 4 random characters and an ellipsis", () => {
    for (const environment of ["staging", "my-env-2"]) {
      const secret = generateSecret(environment);
      const head = `rk_${environment}_`;
      expect(displayPrefix(secret, environment)).toBe(`${head}${secret.slice(head.length, head.length + 4)}…`);
      expect(displayPrefix(secret, environment)).toMatch(new RegExp(`^rk_${environment}_[0-9A-Za-z]{4}…$`));
    }
  });
});

describe("base62Fixed", () => {
  it("when a number that fits is encoded, then it has exactly the width and decodes back", () => {
    const cases: [number, number][] = [
      [0, 1],
      [0, 6],
      [61, 1],
      [62, 2],
      [62 ** 2 - 1, 2],
      [2 ** 32 - 1, 6],
      [Date.UTC(2030, 0, 1), 8],
      [62 ** 8 - 1, 8],
      [Number.MAX_SAFE_INTEGER, 9],
    ];
    for (const [value, width] of cases) {
      const encoded = base62Fixed(value, width);
      expect(encoded).toHaveLength(width);
      expect(decodeBase62(encoded)).toBe(value);
    }
    expect(base62Fixed(0, 3)).toBe("000");
    expect(base62Fixed(61, 2)).toBe("0z");
    expect(base62Fixed(62, 2)).toBe("10");
  });

  it("when encodings of the same width are compared as strings, then they sort like their numbers", () => {
    const values = [0, 9, 10, 35, 36, 61, 62, 3843, 3844, 100_000];
    const encoded = values.map((value) => base62Fixed(value, 4));
    expect([...encoded].sort()).toEqual(encoded);
  });

  it("when a number does not fit in the width, then RangeError", () => {
    expect(errorOf(() => base62Fixed(62, 1))).toBeInstanceOf(RangeError);
    expect(errorOf(() => base62Fixed(62 ** 2, 2))).toBeInstanceOf(RangeError);
    expect(errorOf(() => base62Fixed(2 ** 32, 5))).toBeInstanceOf(RangeError);
    expect(errorOf(() => base62Fixed(1, 0))).toBeInstanceOf(RangeError);
  });
});

describe("newId", () => {
  it("when an id is made, then it is the prefix, an underscore and 22 base62 characters", () => {
    const now = new Date(Date.UTC(2030, 0, 1));
    expect(newId("tok", now)).toMatch(/^tok_[0-9A-Za-z]{22}$/);
    expect(newId("acc", now)).toMatch(/^acc_[0-9A-Za-z]{22}$/);
  });

  it("when ids are made at later times, then they sort later as strings", () => {
    const start = Date.UTC(2030, 0, 1);
    const steps = [0, 1, 2, 61, 62, 63, 3_843, 3_844, 1_000_000, 62 ** 5, 365 * 86_400_000];
    const times = steps.map((step) => start + step);
    for (let round = 0; round < 50; round++) {
      const ids = times.map((time) => newId("tok", new Date(time)));
      expect([...ids].sort()).toEqual(ids);
      for (let i = 1; i < ids.length; i++) expect((ids[i - 1] ?? "") < (ids[i] ?? "")).toBe(true);
    }
  });

  it("when two ids are made in the same millisecond, then they still differ", () => {
    const now = new Date(Date.UTC(2030, 0, 1));
    const ids = new Set(Array.from({ length: 1_000 }, () => newId("tok", now)));
    expect(ids.size).toBe(1_000);
  });
});

describe("randomBase62", () => {
  it("when characters are drawn, then exactly the requested number come back, all base62", () => {
    for (const length of [0, 1, 14, 44, 500]) {
      expect(randomBase62(length)).toMatch(new RegExp(`^[0-9A-Za-z]{${length}}$`));
    }
  });

  it("when 62 * 2000 characters are drawn, then every character appears between 1000 and 3000 times", () => {
    const counts = new Map<string, number>();
    const drawn = randomBase62(62 * 2_000);
    for (const char of drawn) counts.set(char, (counts.get(char) ?? 0) + 1);

    expect(drawn).toHaveLength(62 * 2_000);
    expect([...counts.keys()].sort().join("")).toBe([...base62Alphabet].sort().join(""));
    const outside = [...counts].filter(([, count]) => count < 1_000 || count > 3_000);
    expect(outside).toEqual([]);
  });

  it("when 62 * 2000 characters are drawn, then their counts pass a chi-square test against uniform", () => {
    const counts = new Map<string, number>();
    for (const char of randomBase62(62 * 2_000)) counts.set(char, (counts.get(char) ?? 0) + 1);

    let chiSquare = 0;
    for (const char of base62Alphabet) chiSquare += ((counts.get(char) ?? 0) - 2_000) ** 2 / 2_000;
    // 61 degrees of freedom: above 180 by chance with probability ~1e-13; a plain `byte % 62` scores ~900.
    expect(chiSquare).toBeLessThan(180);
  });
});
