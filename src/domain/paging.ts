import { invalidField } from "./errors.js";

export const defaultPageSize = 50;
export const maxPageSize = 100;

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
 * Opaque page tokens carry the last key seen and the list (and filter) they
 * belong to, so a token from one listing is refused by another.
 */
export function encodePageToken(list: string, after: string): string {
  return Buffer.from(JSON.stringify({ l: list, a: after }), "utf8").toString("base64url");
}

export function parsePageRequest(list: string, pageToken: string, pageSize: number): PageRequest {
  const size = resolvePageSize(pageSize);
  if (pageToken === "") return { after: undefined, size };
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(pageToken, "base64url").toString("utf8"));
  } catch {
    throw invalidField("page_token", "is not a page token of this listing");
  }
  const token = decoded as { l?: unknown; a?: unknown } | null;
  if (token === null || typeof token !== "object" || token.l !== list || typeof token.a !== "string") {
    throw invalidField("page_token", "is not a page token of this listing");
  }
  return { after: token.a, size };
}

/** Splits a result fetched with `size + 1` items into a page and its next key. */
export function toPage<T>(items: T[], size: number, keyOf: (item: T) => string): Page<T> {
  if (items.length <= size) return { items, nextAfter: undefined };
  const page = items.slice(0, size);
  const last = page[page.length - 1];
  return { items: page, nextAfter: last === undefined ? undefined : keyOf(last) };
}
