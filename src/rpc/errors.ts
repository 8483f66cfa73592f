import { create, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { MongoNetworkError, MongoServerError, MongoServerSelectionError } from "mongodb";
import type { Logger } from "pino";
import { type ErrorKind, RoomkeyError } from "../domain/errors.js";
import { BadRequestSchema, ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { type Status, StatusSchema } from "../gen/google/rpc/status_pb.js";

/** `google.rpc.ErrorInfo.domain` of every roomkey error. */
export const errorDomain = "roomkey.dev";

const codes: Record<ErrorKind, Code> = {
  invalid_argument: Code.InvalidArgument,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  aborted: Code.Aborted,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  unimplemented: Code.Unimplemented,
};

type Detail = { desc: DescMessage; value: MessageInitShape<DescMessage> };

function detail<Desc extends DescMessage>(desc: Desc, value: MessageInitShape<Desc>): Detail {
  return { desc, value: value as MessageInitShape<DescMessage> };
}

function fromRoomkeyError(error: RoomkeyError): ConnectError {
  const details: Detail[] = [
    detail(ErrorInfoSchema, { reason: error.reason, domain: errorDomain, metadata: { ...error.metadata } }),
  ];
  if (error.fieldViolations.length > 0) {
    details.push(detail(BadRequestSchema, { fieldViolations: error.fieldViolations.map((v) => ({ ...v })) }));
  }
  return new ConnectError(error.message, codes[error.kind], undefined, details);
}

function isBackendUnavailable(error: unknown): boolean {
  if (error instanceof MongoNetworkError || error instanceof MongoServerSelectionError) return true;
  const name = (error as { name?: unknown } | null)?.name;
  const message = (error as { message?: unknown } | null)?.message;
  return (
    name === "MaxRetriesPerRequestError" ||
    (typeof message === "string" && /Connection is closed|ECONNREFUSED|Stream isn't writeable/.test(message))
  );
}

/**
 * A collection that went away during the call (NamespaceNotFound): every
 * collection of an environment's database exists from its creation on, so
 * only a DeleteEnvironment that dropped the database meanwhile does this.
 */
function isDroppedDuringCall(error: unknown): boolean {
  return error instanceof MongoServerError && (error.code === 26 || error.codeName === "NamespaceNotFound");
}

const droppedDuringCall = new RoomkeyError(
  "not_found",
  "ENVIRONMENT_NOT_FOUND",
  "the environment was deleted while the call ran",
);

/** The status code `toConnectError` gives an error, without building the status or logging. */
export function codeOf(error: unknown): Code {
  if (error instanceof RoomkeyError) return codes[error.kind];
  if (error instanceof ConnectError) return error.code;
  if (isDroppedDuringCall(error)) return Code.NotFound;
  return isBackendUnavailable(error) ? Code.Unavailable : Code.Internal;
}

/**
 * The one place errors become statuses. Domain errors keep their message and
 * gain ErrorInfo (and BadRequest); anything unexpected is logged and leaves
 * as a bare INTERNAL with no stack, cause or secret.
 */
/** The status of each frozen (made-once) domain error, made once too. */
const frozenStatuses = new WeakMap<RoomkeyError, ConnectError>();

export function toConnectError(error: unknown, logger: Logger): ConnectError {
  if (error instanceof RoomkeyError) {
    if (!Object.isFrozen(error)) return fromRoomkeyError(error);
    let converted = frozenStatuses.get(error);
    if (!converted) {
      converted = Object.freeze(fromRoomkeyError(error));
      frozenStatuses.set(error, converted);
    }
    return converted;
  }
  if (error instanceof ConnectError) return error;
  if (isBackendUnavailable(error)) {
    logger.warn({ err: error }, "backend unavailable");
    return fromRoomkeyError(
      new RoomkeyError(
        "unavailable",
        "BACKEND_UNAVAILABLE",
        "a backend (MongoDB or Redis) is unavailable; retry later",
      ),
    );
  }
  if (isDroppedDuringCall(error)) {
    logger.info({ err: error }, "the environment's database was dropped during the call");
    return fromRoomkeyError(droppedDuringCall);
  }
  logger.error({ err: error }, "unexpected error");
  return new ConnectError("internal error", Code.Internal);
}

/** `google.rpc.Status` for the `grpc-status-details-bin` trailer. */
export function statusOf(error: ConnectError): Status {
  const details = error.details.flatMap((d) => ("desc" in d ? [anyPack(d.desc, create(d.desc, d.value))] : []));
  return create(StatusSchema, { code: error.code, message: error.rawMessage, details });
}
