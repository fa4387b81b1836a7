import { CliError } from './errors';

const UNITS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * `--since` / `--until`: an ISO-8601 date or time (`2026-11-01`, `2026-11-01T10:00:00Z`) or a
 * duration back from now (`90d`, `12h`, `30m`, `2w`). Returns an ISO timestamp (UTC, ms).
 */
export const parseTime = (value: string, option: string, now: Date = new Date()): string => {
  const relative = /^(\d{1,6})([mhdw])$/.exec(value);
  if (relative?.[1] && relative[2]) {
    return new Date(now.getTime() - Number(relative[1]) * (UNITS[relative[2]] ?? 0)).toISOString();
  }
  if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value)) {
    const ms = Date.parse(value);
    if (Number.isFinite(ms)) return new Date(ms).toISOString();
  }
  throw new CliError(
    `${option}: "${value}" must be an ISO-8601 date or time (2026-11-01, 2026-11-01T10:00:00Z) or a duration such as 90d, 12h, 30m`,
    2,
  );
};

/** Seconds between two ISO timestamps (undefined when either is missing). */
export const secondsBetween = (from: unknown, to: unknown): number | undefined => {
  if (typeof from !== 'string' || typeof to !== 'string') return undefined;
  const ms = Date.parse(to) - Date.parse(from);
  return Number.isFinite(ms) ? Math.max(0, Math.round(ms / 1000)) : undefined;
};
