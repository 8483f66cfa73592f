import http from "node:http";
import http2 from "node:http2";
import { type Socket, connect as tcpConnect } from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import type { AccountEvent } from "../../src/domain/accounts/accounts.js";
import { environmentHeader } from "../../src/domain/environments/environment-name.js";
import { accountsChannel } from "../../src/events/account-watch.js";
import { WatchAccountsRequestSchema } from "../../src/gen/roomkey/v1/account_service_pb.js";

/**
 * WatchAccounts streams opened on raw sockets this process owns, so that they
 * can be dropped the way a crashed client or a broken network drops them: the
 * TCP connection goes, with no RST_STREAM, GOAWAY, end of stream or HTTP
 * cancel first. Client libraries only close politely.
 */
export type WatchTransport = "grpc" | "connect" | "grpc-web";

export interface RawWatches {
  /** Opens `count` more streams that watch the accounts of tenant `tenant`. */
  open(count: number, tenant: string): void;
  /** Streams that have received at least `events` events (1 unless given). */
  live(events?: number): number;
  /** Streams that ended or failed before they were dropped (stays empty while all is well). */
  failures(): string[];
  /** Destroys every socket at once. */
  drop(): void;
}

export interface WatchTarget {
  /** The gRPC port for `grpc`, the HTTP port for `connect` and `grpc-web`. */
  port: number;
  environment: string;
  secret: string;
}

/** Streams per HTTP/2 connection on the gRPC port (a Connect or gRPC-Web stream has a connection of its own). */
const streamsPerSession = 100;
const watchPath = "/roomkey.v1.AccountService/WatchAccounts";

/** A WatchAccountsRequest in its envelope: gRPC, gRPC-Web and Connect frame a message alike. */
function requestFrame(tenantId: string): Buffer {
  const message = toBinary(WatchAccountsRequestSchema, create(WatchAccountsRequestSchema, { tenantId }));
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

/** Calls `onMessage` with the flags and body of each enveloped message that arrives in `data` chunks. */
function envelopeReader(onMessage: (flags: number, body: Buffer) => void): (chunk: Buffer) => void {
  let pending = Buffer.alloc(0);
  return (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
      const end = 5 + pending.readUInt32BE(1);
      onMessage(pending[0] ?? 0, pending.subarray(5, end));
      pending = pending.subarray(end);
    }
  };
}

/** How many events each stream received. */
function eventCounter() {
  const counts: number[] = [];
  return {
    /** A new stream's counter: call it per event. */
    stream(): () => void {
      const index = counts.push(0) - 1;
      return () => {
        counts[index] = (counts[index] ?? 0) + 1;
      };
    },
    live: (events = 1) => counts.filter((n) => n >= events).length,
  };
}

function grpcWatches({ port, environment, secret }: WatchTarget): RawWatches {
  const sockets: Socket[] = [];
  const failures: string[] = [];
  const counter = eventCounter();
  return {
    open(count, tenant) {
      const frame = requestFrame(tenant);
      for (let opened = 0; opened < count; opened += streamsPerSession) {
        const socket = tcpConnect({ host: "127.0.0.1", port });
        socket.on("error", () => undefined);
        sockets.push(socket);
        const session = http2.connect(`http://127.0.0.1:${port}`, { createConnection: () => socket });
        session.on("error", () => undefined);
        for (let i = 0; i < Math.min(streamsPerSession, count - opened); i++) {
          const stream = session.request({
            ":method": "POST",
            ":path": watchPath,
            "content-type": "application/grpc",
            te: "trailers",
            [environmentHeader]: environment,
            authorization: `Bearer ${secret}`,
          });
          stream.on("data", envelopeReader(counter.stream()));
          // A status before the drop: the server ended the stream.
          stream.on("trailers", (trailers) => failures.push(`grpc-status ${trailers["grpc-status"]}`));
          stream.on("error", () => undefined);
          stream.end(frame);
        }
      }
    },
    live: counter.live,
    failures: () => failures,
    drop() {
      for (const socket of sockets) socket.destroy();
    },
  };
}

/** Connect and gRPC-Web streams over HTTP/1.1, a connection each. */
function http1Watches({ port, environment, secret }: WatchTarget, protocol: "connect" | "grpc-web"): RawWatches {
  const sockets: Socket[] = [];
  const failures: string[] = [];
  const counter = eventCounter();
  const headers =
    protocol === "connect"
      ? { "content-type": "application/connect+proto", "connect-protocol-version": "1" }
      : { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" };
  return {
    open(count, tenant) {
      const frame = requestFrame(tenant);
      for (let i = 0; i < count; i++) {
        const request = http.request({
          host: "127.0.0.1",
          port,
          method: "POST",
          path: watchPath,
          agent: false,
          headers: { ...headers, [environmentHeader]: environment, authorization: `Bearer ${secret}` },
        });
        request.on("socket", (socket) => sockets.push(socket));
        request.on("error", (error: NodeJS.ErrnoException) => failures.push(`request: ${error.code ?? error.message}`));
        request.on("response", (response) => {
          if (response.statusCode !== 200) failures.push(`HTTP ${response.statusCode}`);
          const received = counter.stream();
          response.on(
            "data",
            envelopeReader((flags, body) => {
              // Connect's end-of-stream envelope has flag 2, gRPC-Web's trailers flag 0x80: the server ended it.
              if (flags & 0x82) failures.push(`ended: ${body.toString()}`);
              else received();
            }),
          );
          response.on("error", () => undefined);
        });
        request.end(frame);
      }
    },
    live: counter.live,
    failures: () => failures,
    drop() {
      for (const socket of sockets) socket.destroy();
    },
  };
}

export function rawWatches(transport: WatchTransport, target: WatchTarget): RawWatches {
  return transport === "grpc" ? grpcWatches(target) : http1Watches(target, transport);
}

/** The Redis channel roomkey's event bus subscribes to while anyone watches `environment`. */
export function watchChannel(queuePrefix: string, environment: string): string {
  return `${queuePrefix}:{events}:${accountsChannel(environment)}`;
}

/** What a worker publishes when an account of `tenantId` changes status (the bus carries JSON). */
export function accountEventPayload(tenantId: string): string {
  const now = new Date();
  const event: AccountEvent = {
    account: {
      id: "acc_0000000000000000000000",
      integration: "watched",
      tenantId,
      labels: {},
      status: "active",
      statusReason: "",
      authType: "api_key",
      createTime: now,
      updateTime: now,
    },
    previousStatus: "connecting",
    eventTime: now,
  };
  return JSON.stringify(event);
}

/**
 * Publishes an event (through `publish`) until `target` streams have had
 * `events` events: then each was admitted, subscribed and has written. The
 * next event goes only once the last stopped arriving, so a busy server is not
 * buried in writes. Throws if a stream fails or `timeoutMs` passes.
 */
export async function untilLive(
  watches: RawWatches,
  target: number,
  publish: () => Promise<unknown>,
  { timeoutMs = 60_000, events = 1 }: { timeoutMs?: number; events?: number } = {},
): Promise<void> {
  const started = Date.now();
  const live = () => watches.live(events);
  while (live() < target && watches.failures().length === 0 && Date.now() - started < timeoutMs) {
    await publish();
    let seen = -1;
    while (seen !== live() && watches.failures().length === 0) {
      seen = live();
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  if (live() < target || watches.failures().length > 0) {
    const failures = watches.failures().slice(0, 3).join("; ");
    throw new Error(`${live()}/${target} streams had ${events} event(s); failures: ${failures}`);
  }
}
