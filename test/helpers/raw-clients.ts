import http from "node:http";
import http2 from "node:http2";
import net from "node:net";

/** A gRPC length-prefixed message: flag byte (1 = compressed), 4-byte length, bytes. */
export function grpcFrame(bytes: Uint8Array, compressed = false, length = bytes.byteLength): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(compressed ? 1 : 0, 0);
  head.writeUInt32BE(length, 1);
  return Buffer.concat([head, bytes]);
}

export interface RawGrpcAnswer {
  /** grpc-status from the trailers (or trailers-only headers); undefined if the stream was reset. */
  status: number | undefined;
  message: string;
  /** The server's advertised SETTINGS_MAX_CONCURRENT_STREAMS. */
  maxConcurrentStreams: number | undefined;
  ms: number;
}

/** One gRPC call written byte by byte over HTTP/2: for requests no gRPC library would send. */
export function rawGrpc(
  address: string,
  path: string,
  headers: Record<string, string>,
  body: Uint8Array,
  timeoutMs = 10_000,
): Promise<RawGrpcAnswer> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${address}`);
    let settled = false;
    const finish = (answer: Omit<RawGrpcAnswer, "ms" | "maxConcurrentStreams">) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const maxConcurrentStreams = session.remoteSettings?.maxConcurrentStreams;
      session.close();
      resolve({ ...answer, maxConcurrentStreams, ms: Date.now() - started });
    };
    const timer = setTimeout(() => {
      session.destroy();
      if (!settled) reject(new Error(`no answer from ${path} within ${timeoutMs} ms`));
      settled = true;
    }, timeoutMs);
    session.on("error", () => finish({ status: undefined, message: "session error" }));
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      ...headers,
    });
    let status: number | undefined;
    let message = "";
    const read = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) status = Number(h["grpc-status"]);
      if (typeof h["grpc-message"] === "string") message = decodeURIComponent(h["grpc-message"]);
    };
    stream.on("response", read);
    stream.on("trailers", read);
    stream.on("data", () => undefined);
    stream.on("error", () => finish({ status, message }));
    stream.on("close", () => finish({ status, message }));
    stream.end(Buffer.from(body));
  });
}

export interface RawHttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** Raw bytes to the HTTP port; resolves with the parsed response, or undefined if the connection just closed. */
export function rawHttp(
  port: number,
  request: Buffer | string,
  timeoutMs = 10_000,
): Promise<RawHttpAnswer | undefined> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on("data", (chunk) => chunks.push(chunk));
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks);
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) {
        resolve(undefined);
        return;
      }
      const [statusLine = "", ...lines] = text.subarray(0, end).toString("latin1").split("\r\n");
      const headers: http.IncomingHttpHeaders = {};
      for (const line of lines) {
        const colon = line.indexOf(":");
        headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      resolve({ status: Number(statusLine.split(" ")[1]), headers, body: text.subarray(end + 4) });
    });
    socket.end(request);
  });
}

/** An HTTP/1.1 request with any headers and body; the whole response body is read. */
export function httpRequest(
  port: number,
  options: { method?: string; path: string; headers?: Record<string, string>; body?: Uint8Array },
  timeoutMs = 10_000,
): Promise<RawHttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: options.method ?? "POST",
        path: options.path,
        headers: options.headers,
        timeout: timeoutMs,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(options.body === undefined ? undefined : Buffer.from(options.body));
  });
}

/** The code of a gRPC-Web answer: from its trailer frame, else its headers. */
export function grpcWebStatus(answer: RawHttpAnswer): number | undefined {
  const fromHeader = answer.headers["grpc-status"];
  let offset = 0;
  const body = answer.body;
  while (offset + 5 <= body.length) {
    const flags = body.readUInt8(offset);
    const length = body.readUInt32BE(offset + 1);
    const data = body.subarray(offset + 5, offset + 5 + length);
    if (flags & 0x80) {
      const match = /grpc-status:\s*(\d+)/i.exec(data.toString("latin1"));
      if (match) return Number(match[1]);
    }
    offset += 5 + length;
  }
  return fromHeader === undefined ? undefined : Number(fromHeader);
}
