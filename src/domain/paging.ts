import { createHmac, timingSafeEqual } from "node:crypto";
import { invalidField } from "./errors.js";

export const defaultPageSize = 50;
export const maxPageSize = 100;
/** What the proto allows (`max_len = 512`): a longer token is refused before any work is done for it. */
export const maxPageTokenLength = 512;

/** AIP-158: 0 means the default; more than the maximum is coerced to it. */
export function resolvePageSize(requested: number): number {
  if (requested <= 0) return defaultPageSize;
  return Math.min(requested, maxPageSize);
}

/** A page request after validation: where to continue and how many to return. */
export interface PageRequest {
  after: string | undefined;
  size: number;
}

/** One page of results and the key to continue after, if there is more. */
export interface Page<T> {
  items: T[];
  nextAfter: string | undefined;
}

/**
 * What a page token belongs to. A token continues only the listing that
 * returned it: the same environment (and incarnation of it), the same method
 * and the same filter. The page size may change from page to page (AIP-158).
 */
export interface Listing {
  environment: string;
  /** The list method, such as `ListAccounts`. */
  method: string;
  /** Every filter field of the request, empty ones included. */
  filter?: Readonly<Record<string, string>>;
}

export interface PageTokenDeps {
  /** At least 32 secret bytes, the same on every replica: derived from the current master key. */
  key: Buffer;
  /**
   * Keys derived from the other configured master keys: tokens they signed are still taken, so that
   * switching the current master key (replica by replica) does not break a listing half-way.
   */
  acceptedKeys?: readonly Buffer[];
  /**
   * The environment's incarnation (its record's creation time), so that a
   * token does not outlive its environment being deleted and made again under
   * the same name. Asked only for environments the edge found active.
   */
  incarnation(environment: string): string | Promise<string>;
}

/** Makes and checks page tokens; a forged, altered or foreign token is `INVALID_ARGUMENT` naming `page_token`. */
export interface PageTokens {
  parse(listing: Listing, pageToken: string, pageSize: number): Promise<PageRequest>;
  /** The `next_page_token` that continues after `after`, or "" when there is no next page. */
  next(listing: Listing, after: string | undefined): Promise<string>;
}

const version = 1;
/** HMAC-SHA256 cut to 128 bits: forging a token takes 2^128 guesses, and tokens stay short. */
const tagBytes = 16;
const headerBytes = 1 + tagBytes;
const base64url = /^[A-Za-z0-9_-]+$/;

function notThisListing() {
  return invalidField(
    "page_token",
    "is not a page token of this listing: a page token continues only the environment, method and filter that returned it",
  );
}

/**
 * Page tokens as `base64url(version, tag, key)`: the key to continue after,
 * under a MAC over the listing it belongs to and that key. The key is read
 * only once the MAC matches, and the MAC is compared in constant time.
 */
export function createPageTokens({ key, acceptedKeys = [], incarnation }: PageTokenDeps): PageTokens {
  if ([key, ...acceptedKeys].some((k) => k.length < 32))
    throw new Error("the page-token key must be at least 32 bytes");

  async function tagOf(listing: Listing, after: Buffer, macKey: Buffer = key): Promise<Buffer> {
    const filter = Object.entries(listing.filter ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const bound = JSON.stringify([
      version,
      listing.environment,
      await incarnation(listing.environment),
      listing.method,
      filter,
    ]);
    // JSON escapes every control character, so the NUL cannot occur in `bound`: the split is unambiguous.
    return createHmac("sha256", macKey).update(bound).update("\u0000").update(after).digest().subarray(0, tagBytes);
  }

  return {
    async parse(listing, pageToken, pageSize) {
      const size = resolvePageSize(pageSize);
      if (pageToken === "") return { after: undefined, size };
      if (pageToken.length > maxPageTokenLength || !base64url.test(pageToken)) throw notThisListing();
      const bytes = Buffer.from(pageToken, "base64url");
      // Only the canonical encoding: Node's decoder would accept variants of one token.
      if (bytes.length < headerBytes || bytes[0] !== version || bytes.toString("base64url") !== pageToken) {
        throw notThisListing();
      }
      const after = bytes.subarray(headerBytes);
      const tag = bytes.subarray(1, headerBytes);
      let valid = false;
      for (const macKey of [key, ...acceptedKeys]) {
        if (timingSafeEqual(tag, await tagOf(listing, after, macKey))) {
          valid = true;
          break;
        }
      }
      if (!valid) throw notThisListing();
      return { after: after.toString("utf8"), size };
    },
    async next(listing, after) {
      if (after === undefined) return "";
      const bytes = Buffer.from(after, "utf8");
      return Buffer.concat([Buffer.of(version), await tagOf(listing, bytes), bytes]).toString("base64url");
    },
  };
}

/** Splits a result fetched with `size + 1` items into a page and its next key. */
export function toPage<T>(items: T[], size: number, keyOf: (item: T) => string): Page<T> {
  if (items.length <= size) return { items, nextAfter: undefined };
  const page = items.slice(0, size);
  const last = page[page.length - 1];
  return { items: page, nextAfter: last === undefined ? undefined : keyOf(last) };
}
