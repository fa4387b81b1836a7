import { CliError } from './errors';

const UNITS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * `--since` / `--until`: an ISO-8601 date or time (`2026-11-01`, `2026-11-01T10:00:00Z`) or a
 * duration back from now (`90d`, `12h`, `30m`, `2w`). Returns an ISO timestamp (UTC, ms).
 */
export const parseTime = (
  value: string,
  option: string,
  now: Date = new Date(),
  /** `--until 2026-11-21` means to the end of that day (UTC); `--since` its start. */
  end: 'start' | 'end' = 'start',
): string => {
  const relative = /^(\d{1,6})([mhdw])$/.exec(value);
  if (relative?.[1] && relative[2]) {
    return new Date(now.getTime() - Number(relative[1]) * (UNITS[relative[2]] ?? 0)).toISOString();
  }
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) {
    const ms = Date.parse(`${value}T00:00:00.000Z`);
    if (Number.isFinite(ms)) return new Date(end === 'end' ? ms + 86_400_000 - 1 : ms).toISOString();
  }
  // A time needs its zone: read in the machine's zone it would mean different runs on different hosts.
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:?\d{2})$/.test(value)) {
    const ms = Date.parse(value);
    if (Number.isFinite(ms)) return new Date(ms).toISOString();
  }
  throw new CliError(
    `${option}: "${value}" must be a date (2026-11-01, UTC), a time with its zone (2026-11-01T10:00:00Z, 2026-11-01T11:00+01:00) or a duration back from now (90d, 12h, 30m, 2w)`,
    2,
  );
};

/** `--since`/`--until` as a window; a window that ends before it starts is a usage error. */
export const parseWindow = (
  options: { since?: string | undefined; until?: string | undefined },
  now: Date,
): { since?: string; until?: string } => {
  const since = options.since ? parseTime(options.since, '--since', now, 'start') : undefined;
  const until = options.until ? parseTime(options.until, '--until', now, 'end') : undefined;
  if (since && until && since > until) {
    throw new CliError(`--since ${options.since} is after --until ${options.until}`, 2);
  }
  return { ...(since ? { since } : {}), ...(until ? { until } : {}) };
};

/** Seconds between two ISO timestamps (undefined when either is missing). */
export const secondsBetween = (from: unknown, to: unknown): number | undefined => {
  if (typeof from !== 'string' || typeof to !== 'string') return undefined;
  const ms = Date.parse(to) - Date.parse(from);
  return Number.isFinite(ms) ? Math.max(0, Math.round(ms / 1000)) : undefined;
};
