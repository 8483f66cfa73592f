import { type Duration, durationFromMs, durationMs, type Timestamp, timestampFromDate } from "@bufbuild/protobuf/wkt";

/** The only place where Timestamps and Durations meet Dates and milliseconds. */
export function toTimestamp(date: Date): Timestamp;
export function toTimestamp(date: Date | undefined): Timestamp | undefined;
export function toTimestamp(date: Date | undefined): Timestamp | undefined {
  return date === undefined ? undefined : timestampFromDate(date);
}

export function toDuration(ms: number | undefined): Duration | undefined {
  return ms === undefined ? undefined : durationFromMs(ms);
}

export function fromDuration(duration: Duration | undefined): number | undefined {
  return duration === undefined ? undefined : durationMs(duration);
}
