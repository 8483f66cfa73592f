import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { parse as parseYaml } from "yaml";
import { type Integration, IntegrationSchema } from "../client/index.js";
import { UsageError } from "./errors.js";

/**
 * Reads an integration from a file's text: the Integration message in its
 * protobuf JSON form (the field and enum names grpcurl and curl use, such as
 * `authType: AUTH_TYPE_API_KEY`), written in JSON or YAML. Decoding is
 * protobuf-es `fromJson`, so a misspelt field or enum is refused here, named,
 * before anything is sent.
 *
 * `where` names the file in errors; a `.json` name is read as JSON, anything
 * else as YAML (of which JSON is nearly a subset, so standard input is YAML).
 */
export function integrationFromText(text: string, where: string): Integration {
  let value: unknown;
  try {
    value = where.toLowerCase().endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new UsageError(`${where}: ${withoutContent((error as Error).message)}`);
  }
  if (!isObject(value)) throw new UsageError(`${where}: want an integration (a mapping of its fields)`);
  try {
    return fromJson(IntegrationSchema, value);
  } catch (error) {
    throw new UsageError(`${where}: ${withoutContent((error as Error).message)}`);
  }
}

/**
 * A parser's message without what it quotes of the file, which may hold a client secret: YAML's
 * excerpt of the line, V8's excerpt of the JSON, protobuf-es's value of a field (`: "…"`, `got …`).
 * Where it is stays (line and column, position, the field's name).
 */
export function withoutContent(message: string): string {
  const [first = ""] = message.split("\n");
  return first
    .replace(/, ".*" is not valid JSON$/, " (not valid JSON)")
    .replace(/ from JSON: "(?:[^"\\]|\\.)*"$/, " from JSON")
    .replace(/, got .*$/, "")
    .replace(/:$/, "");
}

function isObject(value: unknown): value is { [key: string]: JsonValue } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
