import type { DescEnum, MessageInitShape } from "@bufbuild/protobuf";
import {
  canonicalJson,
  type FieldDifference,
  type FieldValue,
  type IntegrationDiff,
  type IntegrationDiffKind,
  type IntegrationPromotion,
  type PromotionAction,
} from "../../domain/integrations/integration-promotion.js";
import type {
  AuthType as DomainAuthType,
  ClientAuthMethod as DomainClientAuthMethod,
  CredentialPlacement as DomainPlacement,
} from "../../domain/integrations/integrations.js";
import { AuthTypeSchema } from "../../gen/roomkey/v1/common_pb.js";
import { ClientAuthMethodSchema, CredentialPlacementSchema } from "../../gen/roomkey/v1/environment_service_pb.js";
import {
  PromotionAction as Action,
  IntegrationDiffKind as DiffKind,
  type FieldDifferenceSchema,
  type IntegrationDiffSchema,
  type IntegrationPromotionSchema,
} from "../../gen/roomkey/v1/promotion_pb.js";
import { authTypeToProto, clientAuthMethodToProto, placementToProto } from "./integration-mapper.js";

/** The enum fields, rendered by their proto value names (`AUTH_TYPE_OAUTH2`), as the API's JSON spells them. */
const enumFields: Readonly<Record<string, (value: string) => string>> = {
  auth_type: (v) => enumValueName(AuthTypeSchema, authTypeToProto(v as DomainAuthType)),
  "oauth2.client_auth_method": (v) =>
    enumValueName(ClientAuthMethodSchema, clientAuthMethodToProto(v as DomainClientAuthMethod)),
  "credential_check.placement": (v) => enumValueName(CredentialPlacementSchema, placementToProto(v as DomainPlacement)),
};

function enumValueName(schema: DescEnum, value: number): string {
  return schema.value[value]?.name ?? String(value);
}

/** A field value as FieldDifference shows it: canonical JSON, empty when unset. */
export function renderFieldValue(field: string, value: FieldValue): string {
  if (value === undefined) return "";
  const asEnum = enumFields[field];
  return canonicalJson(asEnum && typeof value === "string" ? asEnum(value) : value);
}

export function fieldDifferenceToProto(difference: FieldDifference): MessageInitShape<typeof FieldDifferenceSchema> {
  // A secret's values never reach a message, whatever the domain held.
  if (difference.secret) return { field: difference.field, fromValue: "", toValue: "", secret: true };
  return {
    field: difference.field,
    fromValue: renderFieldValue(difference.field, difference.from),
    toValue: renderFieldValue(difference.field, difference.to),
    secret: false,
  };
}

const kinds: Record<IntegrationDiffKind, DiffKind> = {
  only_in_from: DiffKind.ONLY_IN_FROM,
  only_in_to: DiffKind.ONLY_IN_TO,
  different: DiffKind.DIFFERENT,
  same: DiffKind.SAME,
};

export function integrationDiffToProto(diff: IntegrationDiff): MessageInitShape<typeof IntegrationDiffSchema> {
  return { name: diff.name, kind: kinds[diff.kind], fields: diff.fields.map(fieldDifferenceToProto) };
}

const actions: Record<PromotionAction, Action> = {
  create: Action.CREATE,
  update: Action.UPDATE,
  unchanged: Action.UNCHANGED,
};

export function promotionToProto(promotion: IntegrationPromotion): MessageInitShape<typeof IntegrationPromotionSchema> {
  return {
    name: promotion.name,
    action: actions[promotion.action],
    changes: promotion.changes.map(fieldDifferenceToProto),
  };
}
