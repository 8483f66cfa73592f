import { create, type MessageInitShape, toJsonString } from "@bufbuild/protobuf";
import type { FieldMask } from "@bufbuild/protobuf/wkt";
import { invalidField } from "../../domain/errors.js";
import { stateAt } from "../../domain/tokens/tokens.js";
import type { RenderableEvent } from "../../domain/webhooks/webhook-raiser.js";
import type { EndpointChanges, EndpointInput } from "../../domain/webhooks/webhook-service.js";
import type { DeliveryStatus, WebhookDelivery, WebhookEndpointView } from "../../domain/webhooks/webhooks.js";
import {
  type WebhookDeliverySchema,
  WebhookDeliveryStatus,
  type WebhookEndpoint,
  type WebhookEndpointSchema,
  WebhookEventSchema,
} from "../../gen/roomkey/v1/webhooks_pb.js";
import { accountStatuses, accountToProto } from "./account-mapper.js";
import { toTimestamp } from "./time.js";
import { tokenToProto } from "./token-mapper.js";

const deliveryStatuses: Readonly<Record<DeliveryStatus, WebhookDeliveryStatus>> = {
  pending: WebhookDeliveryStatus.PENDING,
  succeeded: WebhookDeliveryStatus.SUCCEEDED,
  failed: WebhookDeliveryStatus.FAILED,
};

/** A ListWebhookDeliveries status filter; UNSPECIFIED means any. */
export function deliveryStatusFromProto(status: WebhookDeliveryStatus): DeliveryStatus | undefined {
  return (Object.keys(deliveryStatuses) as DeliveryStatus[]).find((s) => deliveryStatuses[s] === status);
}

export function endpointToProto(endpoint: WebhookEndpointView): MessageInitShape<typeof WebhookEndpointSchema> {
  return {
    id: endpoint.id,
    url: endpoint.url,
    eventTypes: endpoint.eventTypes,
    enabled: endpoint.enabled,
    description: endpoint.description,
    disabledReason: endpoint.disabledReason,
    failingSince: toTimestamp(endpoint.failingSince),
    secretRotateTime: toTimestamp(endpoint.secretRotateTime),
    previousSecretExpireTime: toTimestamp(endpoint.previousSecretExpireTime),
    createTime: toTimestamp(endpoint.createTime),
    updateTime: toTimestamp(endpoint.updateTime),
  };
}

export function endpointFromProto(endpoint: WebhookEndpoint): EndpointInput {
  if (endpoint.url === "") throw invalidField("endpoint.url", "is required");
  return {
    url: endpoint.url,
    eventTypes: [...endpoint.eventTypes],
    // Unset (proto3 `optional`): a new endpoint is enabled.
    enabled: endpoint.enabled ?? true,
    description: endpoint.description,
  };
}

const updatable = ["url", "event_types", "enabled", "description"] as const;

/** AIP-134: only the fields named in the mask change. */
export function endpointChangesFromUpdate(endpoint: WebhookEndpoint, mask: FieldMask): EndpointChanges {
  const paths = mask.paths.includes("*") ? [...updatable] : mask.paths;
  if (paths.length === 0) throw invalidField("update_mask", "must name at least one field");
  const changes: EndpointChanges = {};
  for (const path of paths) {
    if (path === "url") {
      if (endpoint.url === "") throw invalidField("endpoint.url", "is required");
      changes.url = endpoint.url;
    } else if (path === "event_types") changes.eventTypes = [...endpoint.eventTypes];
    else if (path === "enabled") changes.enabled = endpoint.enabled ?? false;
    else if (path === "description") changes.description = endpoint.description;
    else {
      throw invalidField(
        "update_mask",
        `${JSON.stringify(path.slice(0, 100))} cannot be updated; allowed: ${updatable.join(", ")}`,
      );
    }
  }
  return changes;
}

export function deliveryToProto(delivery: WebhookDelivery): MessageInitShape<typeof WebhookDeliverySchema> {
  return {
    id: delivery.id,
    eventId: delivery.eventId,
    eventType: delivery.eventType,
    endpointId: delivery.endpointId,
    status: deliveryStatuses[delivery.status],
    attempts: delivery.attempts,
    lastResponseCode: delivery.lastResponseCode,
    lastError: delivery.lastError,
    lastLatencyMs: delivery.lastLatencyMs,
    lastAttemptTime: toTimestamp(delivery.lastAttemptTime),
    nextAttemptTime: toTimestamp(delivery.nextAttemptTime),
    createTime: toTimestamp(delivery.createTime),
  };
}

/** An event's body: the contract's WebhookEvent in the protobuf JSON mapping, rendered once per event. */
export function renderWebhookEvent(event: RenderableEvent): string {
  const { data } = event;
  const now = event.time.getTime();
  const message = create(WebhookEventSchema, {
    id: event.id,
    type: event.type,
    environment: event.environment,
    timestamp: toTimestamp(event.time),
    data: {
      ...(data.account ? { account: accountToProto(data.account) } : {}),
      ...(data.previousStatus ? { previousStatus: accountStatuses[data.previousStatus] } : {}),
      ...(data.token ? { token: tokenToProto(data.token, stateAt(data.token, now)) } : {}),
      ...(data.previousToken
        ? { previousToken: tokenToProto(data.previousToken, stateAt(data.previousToken, now)) }
        : {}),
      ...(data.endpoint ? { endpoint: endpointToProto(data.endpoint) } : {}),
      reason: data.reason ?? "",
    },
  });
  return toJsonString(WebhookEventSchema, message);
}
