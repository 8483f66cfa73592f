import type { MessageInitShape } from "@bufbuild/protobuf";
import type { FieldMask } from "@bufbuild/protobuf/wkt";
import {
  type Environment,
  type EnvironmentChanges,
  type EnvironmentSettings,
  effectiveSettings,
} from "../../domain/environments/environments.js";
import { invalidField } from "../../domain/errors.js";
import type {
  Environment as EnvironmentProto,
  EnvironmentSchema,
  EnvironmentSettings as EnvironmentSettingsProto,
  EnvironmentSettingsSchema,
} from "../../gen/roomkey/v1/environment_service_pb.js";
import { fromDuration, toDuration, toTimestamp } from "./time.js";

const settingFields = {
  default_token_lifetime: "defaultTokenLifetimeMs",
  oauth_refresh_margin: "oauthRefreshMarginMs",
  refresh_token_keepalive: "refreshTokenKeepaliveMs",
  token_retention: "tokenRetentionMs",
  audit_retention: "auditRetentionMs",
} as const satisfies Record<string, keyof EnvironmentSettings>;

type SettingPath = keyof typeof settingFields;

function settingsToProto(settings: EnvironmentSettings): MessageInitShape<typeof EnvironmentSettingsSchema> {
  const effective = effectiveSettings(settings);
  return {
    defaultTokenLifetime: toDuration(effective.defaultTokenLifetimeMs),
    oauthRefreshMargin: toDuration(effective.oauthRefreshMarginMs),
    refreshTokenKeepalive: toDuration(effective.refreshTokenKeepaliveMs),
    tokenRetention: toDuration(effective.tokenRetentionMs),
    auditRetention: toDuration(effective.auditRetentionMs),
  };
}

export function settingsFromProto(settings: EnvironmentSettingsProto | undefined): EnvironmentSettings {
  return {
    defaultTokenLifetimeMs: fromDuration(settings?.defaultTokenLifetime),
    oauthRefreshMarginMs: fromDuration(settings?.oauthRefreshMargin),
    refreshTokenKeepaliveMs: fromDuration(settings?.refreshTokenKeepalive),
    tokenRetentionMs: fromDuration(settings?.tokenRetention),
    auditRetentionMs: fromDuration(settings?.auditRetention),
  };
}

/** An environment as callers see it: settings with their defaults filled in. */
export function environmentToProto(env: Environment): MessageInitShape<typeof EnvironmentSchema> {
  return {
    name: env.name,
    displayName: env.displayName,
    description: env.description,
    settings: settingsToProto(env.settings),
    builtIn: env.builtIn,
    createTime: toTimestamp(env.createTime),
    updateTime: toTimestamp(env.updateTime),
  };
}

/**
 * AIP-134: only the fields named in the mask change. `settings` replaces all
 * settings; `settings.<name>` one of them; an unset value resets to the default.
 */
export function changesFromUpdate(environment: EnvironmentProto, mask: FieldMask): EnvironmentChanges {
  const paths = mask.paths.includes("*") ? ["display_name", "description", "settings"] : mask.paths;
  if (paths.length === 0) throw invalidField("update_mask", "must name at least one field");
  const changes: EnvironmentChanges = {};
  const incoming = settingsFromProto(environment.settings);
  for (const path of paths) {
    if (path === "display_name") changes.displayName = environment.displayName;
    else if (path === "description") changes.description = environment.description;
    else if (path === "settings") changes.settings = { ...changes.settings, ...incoming };
    else if (path.startsWith("settings.") && path.slice(9) in settingFields) {
      const key = settingFields[path.slice(9) as SettingPath];
      changes.settings = { ...changes.settings, [key]: incoming[key] };
    } else {
      throw invalidField(
        "update_mask",
        `${JSON.stringify(path.slice(0, 100))} cannot be updated; allowed: display_name, description, settings, ${Object.keys(
          settingFields,
        )
          .map((s) => `settings.${s}`)
          .join(", ")}`,
      );
    }
  }
  return changes;
}
