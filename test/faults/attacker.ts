/**
 * The pre-authentication memory attack, as a process of its own (so that its
 * work does not slow the health checks measured beside it): for `seconds`,
 * waves of 8 gRPC and 8 Connect requests at once, each a 4 MB body of 1.33
 * million unknown fields, with no credentials. Prints one JSON line.
 *
 *   tsx test/faults/attacker.ts <grpc address> <http port> <seconds>
 */
import http2 from "node:http2";
import { httpRequest } from "../helpers/raw-clients.js";

const [address, httpPortArg, secondsArg] = process.argv.slice(2);
if (!address || !httpPortArg || !secondsArg) {
  process.stderr.write("usage: attacker.ts <grpc address> <http port> <seconds>\n");
  process.exit(2);
}
const httpPort = Number(httpPortArg);
const body = Buffer.alloc(1_333_333 * 3, Buffer.from([0xc0, 0x3e, 0x01]));
const head = Buffer.alloc(5);
head.writeUInt32BE(body.length, 1);
const framed = Buffer.concat([head, body]);
const codes: Record<string, number> = {};
const count = (code: string) => {
  codes[code] = (codes[code] ?? 0) + 1;
};

function grpcCall(): Promise<void> {
  return new Promise((done) => {
    const session = http2.connect(`http://${address}`);
    session.on("error", () => undefined);
    const stream = session.request({
      ":method": "POST",
      ":path": "/roomkey.v1.EnvironmentService/GetEnvironment",
      "content-type": "application/grpc",
      te: "trailers",
      "roomkey-environment": "development",
    });
    let code = "reset";
    const read = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) code = String(h["grpc-status"]);
    };
    stream.on("response", read);
    stream.on("trailers", read);
    stream.on("data", () => undefined);
    stream.on("error", () => undefined);
    stream.on("close", () => {
      count(`grpc ${code}`);
      session.close();
      done();
    });
    stream.end(framed);
  });
}

function connectCall(): Promise<void> {
  return httpRequest(httpPort, {
    path: "/roomkey.v1.EnvironmentService/GetEnvironment",
    headers: { "roomkey-environment": "development", "content-type": "application/proto" },
    body,
  }).then(
    (answer) => count(`http ${answer.status}`),
    () => count("http connection closed"),
  );
}

const deadline = Date.now() + Number(secondsArg) * 1000;
let waves = 0;
while (Date.now() < deadline) {
  await Promise.all([...Array.from({ length: 8 }, grpcCall), ...Array.from({ length: 8 }, connectCall)]);
  waves++;
}
process.stdout.write(`${JSON.stringify({ waves, bodies: waves * 16, mb: waves * 16 * 4, codes })}\n`);
