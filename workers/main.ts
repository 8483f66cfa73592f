/**
 * The worker process entry: `node dist/workers/main.js`, the same as
 * `node dist/src/main.js worker` (handshakes, refreshes, token rotation,
 * housekeeping; no API).
 */
import { runAsEntry } from "../src/main.js";

runAsEntry(import.meta.url, "worker");
