/** The longest part of a status reason that is the provider's own words. */
export const maxProviderMessageChars = 200;

/** The body of an answer as JSON, when it is a JSON object; undefined otherwise. */
export function jsonObjectOf(text: string): Record<string, unknown> | undefined {
  if (!/^\s*\{/.test(text)) return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function masked(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret.length >= 4) out = out.split(secret).join("***");
  return out;
}

/**
 * Text from a provider made fit for a status reason: secrets masked, line
 * breaks and runs of spaces made one space, control, format (bidi overrides,
 * zero-width), private-use and unassigned characters removed, and cut to
 * `maxChars` characters. Secrets are masked before anything is removed or
 * cut, and again after, so neither can reveal part of one.
 */
export function sanitized(text: string, secrets: readonly string[], maxChars = maxProviderMessageChars): string {
  const clean = masked(
    masked(text, secrets)
      .replace(/\s+/gu, " ")
      .replace(/[\p{C}]/gu, ""),
    secrets,
  ).trim();
  const chars = Array.from(clean);
  return chars.length <= maxChars ? clean : `${chars.slice(0, maxChars - 1).join("")}…`;
}

/** A string at one of the known error fields, `{ error: { message } }` included. */
function knownField(body: Record<string, unknown>): string | undefined {
  for (const field of ["error_description", "message", "error"]) {
    const value = body[field];
    if (typeof value === "string" && value.trim() !== "") return value;
  }
  const nested = body.error;
  if (nested !== null && typeof nested === "object" && !Array.isArray(nested)) {
    return knownField(nested as Record<string, unknown>);
  }
  return undefined;
}

/**
 * What a provider said in an answer, fit for a status reason; empty when it
 * said nothing roomkey repeats. A JSON object gives its `error_description`,
 * `message` or `error`; any other JSON gives nothing; other text only when it
 * is `text/plain` (an HTML error page never).
 */
export function providerMessage(
  answer: { contentType: string; text: string },
  secrets: readonly string[],
  maxChars = maxProviderMessageChars,
): string {
  const body = jsonObjectOf(answer.text);
  if (body) {
    const said = knownField(body);
    return said === undefined ? "" : sanitized(said, secrets, maxChars);
  }
  const mediaType = answer.contentType.split(";")[0]?.trim().toLowerCase();
  return mediaType === "text/plain" ? sanitized(answer.text, secrets, maxChars) : "";
}
