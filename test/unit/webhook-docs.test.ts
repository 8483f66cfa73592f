import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { fromJsonString } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { webhookEventTypes } from "../../src/domain/webhooks/webhooks.js";
import { WebhookEventSchema } from "../../src/gen/roomkey/v1/webhooks_pb.js";

const guide = readFileSync(resolve(import.meta.dirname, "../../docs/webhooks.md"), "utf8");

/** The JSON example under each `### <event type>` heading of docs/webhooks.md. */
function examples(): Map<string, string> {
  const found = new Map<string, string>();
  for (const section of guide.split(/^### /m).slice(1)) {
    const heading = section.slice(0, section.indexOf("\n"));
    const json = /```json\n([\s\S]*?)\n```/.exec(section)?.[1];
    if (/^[a-z_]+\.[a-z_]+$/.test(heading) && json !== undefined) found.set(heading, json);
  }
  return found;
}

describe("docs/webhooks.md", () => {
  it("when the guide is read, then every event type has an example that decodes as roomkey.v1.WebhookEvent of that type", () => {
    const found = examples();
    expect([...found.keys()].sort()).toEqual([...webhookEventTypes].sort());
    for (const [type, json] of found) {
      // Strict: a field the contract does not have would fail here.
      const event = fromJsonString(WebhookEventSchema, json);
      expect(event.type, type).toBe(type);
      expect(event.id, type).toMatch(/^evt_[0-9A-Za-z]{22}$/);
      expect(json, type).not.toMatch(/whsec_|secret/i);
    }
  });
});
