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
    throw new UsageError(`${where}: ${(error as Error).message}`);
  }
  if (!isObject(value)) throw new UsageError(`${where}: want an integration (a mapping of its fields)`);
  try {
    return fromJson(IntegrationSchema, value);
  } catch (error) {
    throw new UsageError(`${where}: ${(error as Error).message}`);
  }
}

function isObject(value: unknown): value is { [key: string]: JsonValue } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
