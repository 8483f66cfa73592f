/**
 * What kind of failure an error is; the edge maps each kind to one gRPC
 * status code. Domain code never sees status codes.
 */
export type ErrorKind =
  | "invalid_argument"
  | "unauthenticated"
  | "permission_denied"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "aborted"
  | "resource_exhausted"
  | "unavailable"
  | "unimplemented";

/** One offending field, for `google.rpc.BadRequest`. */
export interface FieldViolation {
  field: string;
  description: string;
}

/**
 * An expected failure with a stable reason (a value of `roomkey.v1.ErrorReason`
 * without its prefix). The message is safe to show to callers: it never holds a
 * secret.
 */
export class RoomkeyError extends Error {
  override readonly name: string = "RoomkeyError";
  constructor(
    readonly kind: ErrorKind,
    readonly reason: string,
    message: string,
    readonly metadata: Readonly<Record<string, string>> = {},
    readonly fieldViolations: readonly FieldViolation[] = [],
  ) {
    super(message);
  }
}

export class InvalidArgumentError extends RoomkeyError {
  override readonly name = "InvalidArgumentError";
  constructor(message: string, violations: readonly FieldViolation[], reason = "INVALID_REQUEST") {
    super("invalid_argument", reason, message, {}, violations);
  }
}

export class NotFoundError extends RoomkeyError {
  override readonly name = "NotFoundError";
}

export class AlreadyExistsError extends RoomkeyError {
  override readonly name = "AlreadyExistsError";
}

export class FailedPreconditionError extends RoomkeyError {
  override readonly name = "FailedPreconditionError";
}

/** Another writer changed the document first (version check failed). */
export class ConcurrentModificationError extends RoomkeyError {
  override readonly name = "ConcurrentModificationError";
  constructor(what: string) {
    super("aborted", "CONCURRENT_MODIFICATION", `${what} was changed concurrently; retry`);
  }
}

/** A backend is known to be unreachable: the call fails at once instead of waiting for it. */
export class BackendUnavailableError extends RoomkeyError {
  override readonly name = "BackendUnavailableError";
  constructor(backend: string) {
    super("unavailable", "BACKEND_UNAVAILABLE", `${backend} is unreachable; retry later`, { backend });
  }
}

/** A single invalid field: the common case for hand-written checks. */
export function invalidField(field: string, description: string): InvalidArgumentError {
  return new InvalidArgumentError(`${field}: ${description}`, [{ field, description }]);
}
