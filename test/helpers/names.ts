import { randomBytes } from "node:crypto";

const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";

function randomChars(length: number): string {
  return [...randomBytes(length)].map((b) => alphabet[b % alphabet.length]).join("");
}

/** A fresh environment name, so tests never share an environment. */
export function randomEnvironmentName(): string {
  return `t-${randomChars(10)}`;
}

/** A fresh database and queue prefix for one test server (or a group sharing a deployment). */
export function randomPrefix(): string {
  return `t${randomChars(8)}`;
}
