import { invalidField } from "../../domain/errors.js";

/**
 * A message field the proto marks `required`. The edge has validated the
 * request already; this narrows the type and guards handlers used without it.
 */
export function present<T>(value: T | undefined, field: string): T {
  if (value === undefined) throw invalidField(field, "is required");
  return value;
}
