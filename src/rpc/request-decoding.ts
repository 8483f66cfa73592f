import { type DescMessage, fromBinary, fromJsonString, type Message } from "@bufbuild/protobuf";
import { RoomkeyError } from "../domain/errors.js";

/**
 * How roomkey answers input it cannot decode, on every service of both ports
 * (docs/guide.md "Hostile and undecodable input"): the client's bytes are at fault, so it is
 * INVALID_ARGUMENT with reason REQUEST_MALFORMED, never INTERNAL, which stays
 * for roomkey's own faults. A request over its method's size limit is
 * RESOURCE_EXHAUSTED (REQUEST_TOO_LARGE) and an unsupported compression
 * UNIMPLEMENTED, as the gRPC and Connect guides say.
 */
export function malformedRequest(detail: string): RoomkeyError {
  return new RoomkeyError("invalid_argument", "REQUEST_MALFORMED", `malformed request: ${detail}`);
}

export function requestTooLarge(limitBytes: number): RoomkeyError {
  return new RoomkeyError(
    "resource_exhausted",
    "REQUEST_TOO_LARGE",
    `the request is larger than this method accepts (${limitBytes} bytes)`,
    { limit_bytes: String(limitBytes) },
  );
}

/** Unknown fields are skipped as they are read: a request made of them costs no memory to keep. */
const binaryOptions = { readUnknownFields: false } as const;
/** JSON from a newer client may name fields this server does not know: ignored, as binary ones are. */
const jsonOptions = { ignoreUnknownFields: true } as const;

const textDecoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes a request message that passed its size limit. Only called after the
 * edge admitted the call from its metadata: nobody without credentials makes
 * the server decode anything.
 */
export function decodeRequest(desc: DescMessage, bytes: Uint8Array, format: "binary" | "json"): Message {
  try {
    if (format === "binary") return fromBinary(desc, bytes, binaryOptions);
    return fromJsonString(desc, textDecoder.decode(bytes), jsonOptions);
  } catch (error) {
    const why = error instanceof Error ? error.message.slice(0, 200) : "undecodable";
    throw malformedRequest(`not a valid ${desc.typeName} (${why})`);
  }
}
