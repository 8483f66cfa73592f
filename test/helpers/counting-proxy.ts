import { createConnection, createServer, type Server } from "node:net";
import { BSON } from "mongodb";

/**
 * A TCP proxy in front of MongoDB or Redis that counts the commands clients
 * send through it, by name: the way to show that a code path makes no round
 * trip, whatever the client library does.
 */
export interface CountingProxy {
  url: string;
  /** Commands seen so far, by lower-case name. */
  counts(): Map<string, number>;
  /** MongoDB commands seen so far as `<command> <collection>` (`insert audit_events`), as sent. */
  commandsOn(): Map<string, number>;
  /** How many commands other than `ignore` were seen. */
  total(ignore?: readonly string[]): number;
  close(): Promise<void>;
}

type Parser = (chunk: Buffer) => void;

/** Mongo wire protocol: OP_MSG frames; the command is the first key of section 0. */
function mongoParser(count: (name: string) => void, countOn: (key: string) => void): Parser {
  let buffer = Buffer.alloc(0);
  return (chunk) => {
    buffer = Buffer.concat([buffer, chunk]);
    while (buffer.length >= 16) {
      const length = buffer.readInt32LE(0);
      if (buffer.length < length) return;
      const opCode = buffer.readInt32LE(12);
      if (opCode === 2013 && buffer[20] === 0) {
        const docLength = buffer.readInt32LE(21);
        const doc = BSON.deserialize(buffer.subarray(21, 21 + docLength));
        const name = Object.keys(doc)[0];
        if (name) {
          count(name.toLowerCase());
          countOn(`${name} ${typeof doc[name] === "string" ? doc[name] : ""}`.trim());
        }
      } else {
        count(`opcode-${opCode}`);
      }
      buffer = buffer.subarray(length);
    }
  };
}

/** RESP: arrays of bulk strings; the command is the first one. */
function redisParser(count: (name: string) => void): Parser {
  let buffer = "";
  return (chunk) => {
    buffer += chunk.toString("latin1");
    for (;;) {
      const match = /^\*(\d+)\r\n\$(\d+)\r\n/.exec(buffer);
      if (!match?.[1] || !match[2]) return;
      // Walk the whole array to find where it ends.
      let at = 0;
      let elements = Number(match[1]);
      at = buffer.indexOf("\r\n") + 2;
      let name: string | undefined;
      while (elements > 0) {
        const header = /^\$(\d+)\r\n/.exec(buffer.slice(at));
        if (!header?.[1]) return;
        const size = Number(header[1]);
        const start = at + header[0].length;
        if (buffer.length < start + size + 2) return;
        name ??= buffer.slice(start, start + size).toLowerCase();
        at = start + size + 2;
        elements--;
      }
      if (name) count(name);
      buffer = buffer.slice(at);
    }
  };
}

export async function countingProxy(
  target: { host: string; port: number },
  protocol: "mongodb" | "redis",
): Promise<CountingProxy> {
  const counts = new Map<string, number>();
  const count = (name: string) => counts.set(name, (counts.get(name) ?? 0) + 1);
  const commands = new Map<string, number>();
  const countOn = (key: string) => commands.set(key, (commands.get(key) ?? 0) + 1);
  const sockets = new Set<import("node:net").Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection(target);
    sockets.add(client);
    sockets.add(upstream);
    const parse = protocol === "mongodb" ? mongoParser(count, countOn) : redisParser(count);
    client.on("data", (chunk: Buffer) => {
      parse(chunk);
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => client.write(chunk));
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("close", close);
    upstream.on("close", close);
    client.on("error", close);
    upstream.on("error", close);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: protocol === "mongodb" ? `mongodb://127.0.0.1:${port}/?directConnection=true` : `redis://127.0.0.1:${port}`,
    counts: () => new Map(counts),
    commandsOn: () => new Map(commands),
    total: (ignore = []) => [...counts].filter(([name]) => !ignore.includes(name)).reduce((n, [, c]) => n + c, 0),
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
