import { type Logger, pino } from "pino";

/**
 * Structured JSON logs. Known secret-bearing keys are censored wherever they
 * appear; code never logs secrets on purpose, this is the second line.
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  const options = {
    level,
    base: { service: "roomkey" },
    redact: {
      paths: [
        "authorization",
        "*.authorization",
        "secret",
        "*.secret",
        "clientSecret",
        "*.clientSecret",
        "apiKey",
        "*.apiKey",
        "password",
        "*.password",
        "accessToken",
        "*.accessToken",
        "refreshToken",
        "*.refreshToken",
      ],
      censor: "[redacted]",
    },
  };
  return destination ? pino(options, destination) : pino(options);
}
