#!/usr/bin/env node
/**
 * The `roomkey` admin CLI (the package's `bin`; docs/cli.md). This file is the
 * process edge: the only place that touches process.env, the standard streams
 * and signals; everything else takes them as an `Io`.
 */
import { readFileSync } from "node:fs";
import type { Io } from "./cli.js";
import { runCli } from "./program.js";

// `roomkey token list | head -1` closes stdout early: that is the reader's choice, not an error.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw error;
});

const io: Io = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  async stdin() {
    if (process.stdin.isTTY) process.stderr.write("reading from standard input (end with Ctrl-D)\n");
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  },
  env: process.env,
  cwd: process.cwd(),
  readFile: (path) => readFileSync(path, "utf8"),
  onInterrupt(handler) {
    process.on("SIGINT", handler);
    process.on("SIGTERM", handler);
    return () => {
      process.off("SIGINT", handler);
      process.off("SIGTERM", handler);
    };
  },
};

process.exitCode = await runCli(process.argv.slice(2), io);
