import type { z } from 'zod';

/** A key shown as it is: nothing a reader (or a log parser) could misread. */
const PLAIN_SEGMENT = /^[A-Za-z0-9_:@+=/-]{1,64}$/;
/** Longest key shown in a violation; the input may hold keys of any length. */
const MAX_KEY_CHARS = 64;
/** Deeper paths are cut after this many segments (a message may nest far deeper). */
const MAX_PATH_SEGMENTS = 12;
/** Unknown keys listed by name in one violation; the rest are counted. */
const MAX_LISTED_KEYS = 10;

/** A key as JSON text, cut to 64 characters: whatever it holds, it reads as one quoted token. */
export const quoteKey = (key: string): string =>
  key.length > MAX_KEY_CHARS ? `${JSON.stringify(key.slice(0, MAX_KEY_CHARS))}…` : JSON.stringify(key);

/**
 * The dotted path of a field as violations name it (`appConfig.logGroups.0.name`): keys that are
 * not plain words are quoted and shortened, and a very deep path is cut, so a reason stays short
 * and unambiguous however hostile the input's keys are. An empty path is the whole `(message)`.
 */
export const fieldPath = (segments: readonly PropertyKey[], prefix = ''): string => {
  const shown = segments.slice(0, MAX_PATH_SEGMENTS).map((segment) => {
    const text = typeof segment === 'symbol' ? segment.toString() : String(segment);
    return PLAIN_SEGMENT.test(text) ? text : quoteKey(text);
  });
  const cut = segments.length > MAX_PATH_SEGMENTS ? '…' : '';
  return [prefix, ...shown].filter((p) => p !== '').join('.') + cut || '(message)';
};

type Issue = z.core.$ZodIssue;

/** The depth of an issue's deepest path: the union branch that got furthest is the one meant. */
const depthOf = (issues: readonly Issue[]): number => Math.max(0, ...issues.map((i) => i.path.length));

const describeIssue = (issue: Issue, base: readonly PropertyKey[], prefix: string): string[] => {
  const at = [...base, ...issue.path];
  if (issue.code === 'invalid_union' && issue.errors.length > 0) {
    // zod reports a bare "Invalid input" when every branch fails on its type. The branch whose
    // issues reach deepest (e.g. `{s3Uri: 7}` is a reference with a bad s3Uri, not a bad inline
    // object) says what is wrong; on a tie the first branch, the schema's preferred form, wins.
    const branch = issue.errors.reduce((best, candidate) =>
      depthOf(candidate) > depthOf(best) ? candidate : best,
    );
    if (branch.length > 0) return branch.flatMap((inner) => describeIssue(inner, at, prefix));
  }
  const path = fieldPath(at, prefix);
  if (issue.code === 'unrecognized_keys') {
    const listed = issue.keys.slice(0, MAX_LISTED_KEYS).map(quoteKey).join(', ');
    const more =
      issue.keys.length > MAX_LISTED_KEYS ? ` and ${issue.keys.length - MAX_LISTED_KEYS} more` : '';
    return [`${path}: unknown field(s) ${listed}${more} (not in schemaVersion 1)`];
  }
  if (issue.code === 'invalid_type' && /received undefined$/.test(issue.message)) {
    return [`${path}: is required (${issue.expected})`];
  }
  return [`${path}: ${issue.message}`];
};

/**
 * Turns zod issues into `field: rule` lines that name the offending field, so a rejection reason
 * tells the sender exactly what to fix. `prefix` is prepended to every path (e.g. `appConfig`).
 * Keys from the input are quoted and shortened (see `fieldPath`), so a hostile key can neither
 * fake another field nor blow a reason up to the size of the message.
 */
export const describeIssues = (error: z.ZodError, prefix = ''): string[] =>
  error.issues.flatMap((issue) => describeIssue(issue as Issue, [], prefix));
