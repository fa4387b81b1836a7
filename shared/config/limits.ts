/**
 * Platform limits the app-config schema and the stage-config schema share. Kept apart from
 * stage.ts so that a worker validating app configs does not bundle the stage loader (and yaml).
 */

/** The retention periods (days) CloudWatch Logs accepts; PutRetentionPolicy refuses any other. */
export const LOG_RETENTION_DAYS: readonly number[] = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

/** An app's traffic shift: at most this many steps, each soaking at most this long (app config). */
export const TRAFFIC_MAX_STEPS = 10;
export const TRAFFIC_MAX_SOAK_SECONDS = 3600;
