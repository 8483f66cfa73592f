import { EventEmitter, getEventListeners } from "node:events";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { Server, ServerCredentials, status } from "@grpc/grpc-js";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { RoomkeyError } from "../../src/domain/errors.js";
import { AccountService, AccountStatus } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { grpcService } from "../../src/rpc/grpc/grpc-adapter.js";
import { createGrpcContext } from "../../src/rpc/grpc/grpc-context.js";
import { metadataCap } from "../../src/rpc/grpc/grpc-interceptors.js";
import { unimplementedService } from "../../src/rpc/handlers/unimplemented.js";
import { grpcClient, grpcDetails, grpcFailure, metadataFor } from "../helpers/clients.js";

const logger = pino({ level: "silent" });
let server: Server | undefined;

afterEach(() => {
  server?.forceShutdown();
  server = undefined;
});

/** The adapter on a real grpc-js server on loopback, with a hand-written implementation. */
async function serve(impl: Partial<ServiceImpl<typeof AccountService>>, maxMetadataBytes = 16_384) {
  const shutdown = new AbortController();
  server = new Server({ interceptors: [metadataCap(maxMetadataBytes, logger)] });
  const full = { ...unimplementedService(AccountService), ...impl };
  const [definition, handlers] = grpcService(AccountService, full, { logger, shutdownSignal: shutdown.signal });
  server.addService(definition, handlers);
  const port = await new Promise<number>((resolve, reject) =>
    server?.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  return { client: grpcClient(AccountService, `127.0.0.1:${port}`), shutdown };
}

describe("the grpc-js adapter", () => {
  it("when unary calls complete, then no listener is left on the shutdown signal", async () => {
    const { client, shutdown } = await serve({
      async getAccount(request, ctx) {
        // Reading the signal registers the context's listener on the shutdown signal.
        if (ctx.signal.aborted) throw new Error("aborted before it ran");
        if (request.id.endsWith("x")) throw new RoomkeyError("not_found", "ACCOUNT_NOT_FOUND", "no such account");
        return { account: { id: request.id } };
      },
    });
    for (let i = 0; i < 30; i++) {
      const ok = await client.unary(AccountService.method.getAccount, { id: `acc_${i}` }, metadataFor(undefined));
      expect(ok.account?.id).toBe(`acc_${i}`);
      await grpcFailure(client.unary(AccountService.method.getAccount, { id: "acc_x" }, metadataFor(undefined)));
    }
    expect(getEventListeners(shutdown.signal, "abort")).toHaveLength(0);
    client.close();
  });

  it("when a domain error is thrown, then the status and its ErrorInfo reach the client", async () => {
    const { client } = await serve({
      async getAccount() {
        throw new RoomkeyError("not_found", "ACCOUNT_NOT_FOUND", "no such account", { account: "acc_1" });
      },
    });
    const error = await grpcFailure(
      client.unary(AccountService.method.getAccount, { id: "acc_1" }, metadataFor(undefined)),
    );
    expect(error.code).toBe(status.NOT_FOUND);
    expect(error.details).toBe("no such account");
    expect(grpcDetails(error).errorInfo?.metadata.account).toBe("acc_1");
    client.close();
  });

  it("when metadata is over the cap, then RESOURCE_EXHAUSTED and the handler never runs", async () => {
    let ran = false;
    const { client } = await serve(
      {
        async getAccount() {
          ran = true;
          return {};
        },
      },
      1_000,
    );
    const metadata = metadataFor(undefined);
    metadata.set("x-big", "b".repeat(2_000));
    const error = await grpcFailure(client.unary(AccountService.method.getAccount, { id: "acc_1" }, metadata));
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(ran).toBe(false);
    client.close();
  });

  it("when the server shuts down during a stream, then the stream ends with UNAVAILABLE and its listeners are gone", async () => {
    const { client, shutdown } = await serve({
      async *watchAccounts(_request, ctx) {
        yield { account: { id: "acc_1", status: AccountStatus.ACTIVE } };
        await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
      },
    });
    const stream = client.stream(AccountService.method.watchAccounts, {}, metadataFor(undefined));
    const received: string[] = [];
    const ended = new Promise<{ code: number; details: string }>((resolve) => {
      stream.on("data", (message: { account?: { id: string } }) => {
        received.push(message.account?.id ?? "");
        shutdown.abort();
      });
      stream.on("error", resolve);
    });
    const error = await ended;
    expect(received).toEqual(["acc_1"]);
    expect(error.code).toBe(status.UNAVAILABLE);
    expect(error.details).toContain("shutting down");
    expect(getEventListeners(shutdown.signal, "abort")).toHaveLength(0);
    client.close();
  });

  it("when the client cancels a stream, then the implementation sees its signal aborted", async () => {
    let aborted: () => void = () => {};
    const sawAbort = new Promise<void>((resolve) => {
      aborted = resolve;
    });
    const { client } = await serve({
      async *watchAccounts(_request, ctx) {
        ctx.signal.addEventListener("abort", () => aborted(), { once: true });
        yield { account: { id: "acc_1" } };
        await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
      },
    });
    const stream = client.stream(AccountService.method.watchAccounts, {}, metadataFor(undefined));
    stream.on("error", () => undefined);
    await new Promise((resolve) => stream.once("data", resolve));
    stream.cancel();
    await sawAbort;
    client.close();
  });

  it("when a call's deadline is weeks away, then its signal is not aborted at once", async () => {
    // grpc-js clients overflow such a timer themselves, so the context is tested directly.
    const shutdown = new AbortController();
    const call = createGrpcContext({
      service: AccountService,
      method: AccountService.method.watchAccounts,
      url: "/roomkey.v1.AccountService/WatchAccounts",
      requestHeader: new Headers(),
      deadline: Date.now() + 40 * 24 * 3600 * 1000,
      call: Object.assign(new EventEmitter(), { cancelled: false }),
      shutdownSignal: shutdown.signal,
    });
    const { context } = call;
    expect(context.signal.aborted).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(context.signal.aborted).toBe(false);
    expect(context.timeoutMs()).toBeGreaterThan(39 * 24 * 3600 * 1000);
    call.end();
    expect(context.signal.aborted).toBe(true);
    expect(getEventListeners(shutdown.signal, "abort")).toHaveLength(0);
  });

  it("when a call's deadline passes, then its signal aborts with DEADLINE_EXCEEDED", async () => {
    const { context } = createGrpcContext({
      service: AccountService,
      method: AccountService.method.watchAccounts,
      url: "/roomkey.v1.AccountService/WatchAccounts",
      requestHeader: new Headers(),
      deadline: Date.now() + 10,
      call: Object.assign(new EventEmitter(), { cancelled: false }),
      shutdownSignal: new AbortController().signal,
    });
    await new Promise((resolve) => context.signal.addEventListener("abort", resolve, { once: true }));
    expect(ConnectError.from(context.signal.reason).code).toBe(Code.DeadlineExceeded);
  });
});
