import type { z } from 'zod';

/**
 * Turns zod issues into `field: rule` lines that name the offending field, so a rejection reason
 * tells the sender exactly what to fix. `prefix` is prepended to every path (e.g. `appConfig`).
 */
export const describeIssues = (error: z.ZodError, prefix = ''): string[] =>
  error.issues.map((issue) => {
    const path = [prefix, ...issue.path.map(String)].filter((p) => p !== '').join('.') || '(message)';
    if (issue.code === 'unrecognized_keys') {
      return `${path}: unknown field(s) ${issue.keys.map((k) => JSON.stringify(k)).join(', ')} (not in schemaVersion 1)`;
    }
    if (issue.code === 'invalid_type' && /received undefined$/.test(issue.message)) {
      return `${path}: is required (${issue.expected})`;
    }
    return `${path}: ${issue.message}`;
  });
