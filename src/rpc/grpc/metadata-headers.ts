import type { Metadata, MetadataValue } from "@grpc/grpc-js";

function text(value: MetadataValue): string {
  return typeof value === "string" ? value : value.toString("base64");
}

/**
 * A fetch `Headers` view of grpc-js metadata, for the handler context. It
 * reads the metadata in place instead of copying it into a real Headers
 * object on every call (the edge reads two entries). Repeated entries read
 * joined with ", ", as Headers does; binary values read in base64.
 */
export class MetadataHeaders implements Headers {
  constructor(private readonly metadata: Metadata) {}

  get(name: string): string | null {
    const values = this.metadata.get(name.toLowerCase());
    if (values.length === 0) return null;
    if (values.length === 1 && values[0] !== undefined) return text(values[0]);
    return values.map(text).join(", ");
  }

  has(name: string): boolean {
    return this.metadata.get(name.toLowerCase()).length > 0;
  }

  getSetCookie(): string[] {
    return this.metadata.get("set-cookie").map(text);
  }

  append(name: string, value: string): void {
    this.metadata.add(name.toLowerCase(), value);
  }

  set(name: string, value: string): void {
    this.metadata.set(name.toLowerCase(), value);
  }

  delete(name: string): void {
    this.metadata.remove(name.toLowerCase());
  }

  forEach(callback: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void {
    for (const [key, value] of this.entries()) callback.call(thisArg, value, key, this);
  }

  *entries(): IterableIterator<[string, string]> {
    const map = this.metadata.toJSON();
    for (const key of Object.keys(map).sort()) {
      const joined = this.get(key);
      if (joined !== null) yield [key, joined];
    }
  }

  *keys(): IterableIterator<string> {
    for (const [key] of this.entries()) yield key;
  }

  *values(): IterableIterator<string> {
    for (const [, value] of this.entries()) yield value;
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }
}
