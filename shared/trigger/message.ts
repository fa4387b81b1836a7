import { createHash } from 'node:crypto';
import * as z from 'zod';
import { describeIssues, fieldPath } from '../validation';

export const APP_ID_PATTERN = /^[a-z][a-z0-9-]{1,38}[a-z0-9]$/;
export const VERSION_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
export const BUILD_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/#@+-]{0,127}$/;
export const REQUESTED_BY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@+=,:/-]{0,127}$/;
export const SHA256_PATTERN = /^[a-f0-9]{64}$/;
/**
 * Conservative S3 key alphabet: no spaces, quotes, `$`, backticks or other shell metacharacters.
 * S3's "safe characters" include the single quote; it is left out on purpose (as the builder's
 * ARTIFACT_URI_RE in config/ssm/scripts/lib.sh does): the artifact URI is handed to a shell on the
 * build instance, and a message the builder would refuse hours later is refused here instead.
 */
const S3_URI_PATTERN = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/([A-Za-z0-9!_.*()/-]{1,1024})$/;

export const TRIGGER_KINDS = ['release', 'base-image-update'] as const;

/** Where a trigger may point: the stage's artifacts bucket, under `inputs/<appId>/`. */
export interface TriggerContext {
  /** The stage the message was sent to; `environment` must equal it. */
  readonly stage: string;
  /** The stage's artifacts bucket, the only bucket a trigger may reference. */
  readonly artifactsBucket: string;
}

export const parseS3Uri = (uri: string): { bucket: string; key: string } => {
  const match = S3_URI_PATTERN.exec(uri);
  if (!match?.[1] || !match[2]) throw new Error(`not an s3:// URI: ${uri}`);
  return { bucket: match[1], key: match[2] };
};

const s3UriFor = (ctx: TriggerContext) =>
  z
    .string()
    .max(1100)
    .regex(S3_URI_PATTERN, 'must be an s3://bucket/key URI using only [A-Za-z0-9!_.*()/-] in the key')
    .refine((uri) => !uri.split('/').some((segment) => segment === '..' || segment === '.'), {
      error: 'must not contain "." or ".." path segments',
    })
    .refine((uri) => S3_URI_PATTERN.exec(uri)?.[1] === ctx.artifactsBucket, {
      error: `must be in the stage's artifacts bucket s3://${ctx.artifactsBucket}/`,
    });

/**
 * The trigger message schema (DESIGN "Contracts"), bound to the stage it is validated for.
 * Shared by the trigger worker and the CLI so a bad field is refused before anything is sent.
 */
export const triggerMessageSchema = (ctx: TriggerContext) =>
  z
    .strictObject({
      schemaVersion: z.literal(1),
      appId: z.string().regex(APP_ID_PATTERN, `must match ${APP_ID_PATTERN.source}`),
      environment: z.string().refine((env) => env === ctx.stage, {
        error: `must be "${ctx.stage}" (the stage this message was sent to)`,
      }),
      version: z.string().regex(VERSION_PATTERN, `must match ${VERSION_PATTERN.source}`),
      buildId: z.string().regex(BUILD_ID_PATTERN, `must match ${BUILD_ID_PATTERN.source}`),
      kind: z.enum(TRIGGER_KINDS),
      appConfig: z.union([
        z.strictObject({ s3Uri: s3UriFor(ctx) }),
        // `abort` keeps zod from reporting a bare invalid_union: an object with s3Uri is a reference,
        // and the reference's own issues (bucket, `..`) are the ones the sender needs to see.
        z.record(z.string(), z.unknown()).refine((obj) => !('s3Uri' in obj), {
          error: 'must be {s3Uri} or an inline app config object',
          abort: true,
        }),
      ]),
      artifact: z.strictObject({
        s3Uri: s3UriFor(ctx),
        sha256: z.string().regex(SHA256_PATTERN, 'must be 64 lowercase hex characters (SHA-256)'),
      }),
      requestedBy: z.string().regex(REQUESTED_BY_PATTERN, `must match ${REQUESTED_BY_PATTERN.source}`),
    })
    .superRefine((msg, issue) => {
      // An app may only reference its own inputs: the pre-provision role can read inputs/* and
      // nothing stops one team naming another team's config otherwise.
      if (!APP_ID_PATTERN.test(msg.appId)) return; // already reported; a prefix built from it would mislead
      const prefix = `s3://${ctx.artifactsBucket}/inputs/${msg.appId}/`;
      const refs: [string[], string][] = [[['artifact', 's3Uri'], msg.artifact.s3Uri]];
      if (typeof msg.appConfig.s3Uri === 'string') refs.push([['appConfig', 's3Uri'], msg.appConfig.s3Uri]);
      for (const [path, uri] of refs) {
        if (!uri.startsWith(prefix)) {
          issue.addIssue({ code: 'custom', path, message: `must start with ${prefix}` });
        }
      }
    });

export type TriggerMessage = z.infer<ReturnType<typeof triggerMessageSchema>>;

const SSM_PARAMETER_NAME = /^\/[A-Za-z0-9_.\-/]{1,1000}$/;

/**
 * `base-image-update` for the whole environment: the SOE image behind `baseImage.ssmParameter`
 * moved, so every app whose live release was built from it is rebuilt (one run per app). A
 * `base-image-update` that names an `appId` (with the release fields) rebuilds that app only.
 */
export const baseImageUpdateSchema = (ctx: TriggerContext) =>
  z.strictObject({
    schemaVersion: z.literal(1),
    environment: z.string().refine((env) => env === ctx.stage, {
      error: `must be "${ctx.stage}" (the stage this message was sent to)`,
    }),
    buildId: z.string().regex(BUILD_ID_PATTERN, `must match ${BUILD_ID_PATTERN.source}`),
    kind: z.literal('base-image-update'),
    baseImage: z.strictObject({
      ssmParameter: z.string().regex(SSM_PARAMETER_NAME, 'must be an SSM parameter name starting with /'),
    }),
    requestedBy: z.string().regex(REQUESTED_BY_PATTERN, `must match ${REQUESTED_BY_PATTERN.source}`),
  });

export type BaseImageUpdate = z.infer<ReturnType<typeof baseImageUpdateSchema>>;

/** Deepest nesting of objects and arrays a trigger message may have (sample-app's needs 5). */
export const MAX_MESSAGE_DEPTH = 32;
/** Duplicated keys listed in one rejection; a message of nothing but repeats stays a short reason. */
const MAX_LISTED_DUPLICATES = 10;

interface Container {
  isObject: boolean;
  path: string[];
  keys: Set<string>;
  /** Object: the key whose value comes next. Array: the index of the next element. */
  member: string;
  index: number;
  expectKey: boolean;
}

/**
 * What JSON.parse accepts without a word: a key given twice in one object (it keeps the last, so
 * the message would mean whatever its last duplicate says; which one the sender meant is unknowable,
 * so it is refused), and nesting deeper than `maxDepth` (JSON.stringify and the YAML parser recurse,
 * and overflow the stack on text JSON.parse read happily). Keys are compared decoded, so `"appId"`
 * and `"app\u0049d"` are the same key. `raw` must already be valid JSON: the scan follows only
 * strings, brackets, colons and commas.
 */
export const jsonStructureViolations = (
  raw: string,
  maxDepth = MAX_MESSAGE_DEPTH,
): { violations: string[]; tooDeep: boolean } => {
  const duplicates = new Set<string>();
  let unlisted = 0;
  const open: Container[] = [];
  const finish = (tooDeep?: string) => ({
    violations: [
      ...[...duplicates].map(
        (field) => `${field}: duplicated key (JSON keeps only the last; send each key once)`,
      ),
      ...(unlisted > 0 ? [`(message): ${unlisted} more duplicated key(s)`] : []),
      ...(tooDeep ? [tooDeep] : []),
    ],
    tooDeep: tooDeep !== undefined,
  });
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i];
    const top = open[open.length - 1];
    if (ch === '"') {
      let end = i + 1;
      while (raw[end] !== '"') end += raw[end] === '\\' ? 2 : 1;
      if (top?.isObject && top.expectKey) {
        const key = JSON.parse(raw.slice(i, end + 1)) as string;
        top.expectKey = false;
        top.member = key;
        if (top.keys.has(key)) {
          const field = fieldPath([...top.path, key]);
          if (duplicates.has(field) || duplicates.size < MAX_LISTED_DUPLICATES) duplicates.add(field);
          else unlisted++;
        }
        top.keys.add(key);
      }
      i = end;
    } else if (ch === '{' || ch === '[') {
      const path = top ? [...top.path, top.isObject ? top.member : String(top.index)] : [];
      if (open.length >= maxDepth) {
        return finish(`${fieldPath(path)}: nests objects and arrays deeper than ${maxDepth} levels`);
      }
      open.push({ isObject: ch === '{', path, keys: new Set(), member: '', index: 0, expectKey: ch === '{' });
    } else if (ch === '}' || ch === ']') {
      open.pop();
    } else if (ch === ',' && top) {
      if (top.isObject) top.expectKey = true;
      else top.index++;
    }
  }
  return finish();
};

export type ParseResult =
  | { ok: true; message: TriggerMessage; baseImageUpdate?: undefined }
  | { ok: true; baseImageUpdate: BaseImageUpdate; message?: undefined }
  | { ok: false; violations: string[] };

/**
 * Parses a raw SNS message body: size, JSON, duplicated keys and nesting, then schema. Every
 * violation names its field and rule.
 */
export const parseTriggerMessage = (raw: string, ctx: TriggerContext, maxBytes: number): ParseResult => {
  const bytes = Buffer.byteLength(raw, 'utf8');
  if (bytes > maxBytes) {
    return { ok: false, violations: [`(message): is ${bytes} bytes, at most ${maxBytes} allowed`] };
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    // V8 quotes the text around an unexpected token (`Unexpected token 'p', …"db":planted-se"… is
    // not valid JSON`): the reason goes to the audit table, which must not hold what a broken
    // inline app config carried. The token and the position are enough to find the fault.
    const problem = (err as Error).message.replace(/, .* is not valid JSON$/s, '');
    return { ok: false, violations: [`(message): is not valid JSON (${problem})`] };
  }
  // Refused together with any schema violation: the schema sees JSON.parse's reading (last key
  // wins), which is well-defined, so the sender learns everything to fix at once.
  const structure = jsonStructureViolations(raw);
  // Too deep to hand to anything recursive, the schema included.
  if (structure.tooDeep) return { ok: false, violations: structure.violations };
  const fields =
    typeof json === 'object' && json !== null && !Array.isArray(json)
      ? (json as Record<string, unknown>)
      : {};
  const parsed =
    fields.kind === 'base-image-update' && !('appId' in fields)
      ? baseImageUpdateSchema(ctx).safeParse(json)
      : triggerMessageSchema(ctx).safeParse(json);
  if (!parsed.success || structure.violations.length > 0) {
    return {
      ok: false,
      violations: [...structure.violations, ...(parsed.success ? [] : describeIssues(parsed.error))],
    };
  }
  return 'appId' in parsed.data
    ? { ok: true, message: parsed.data }
    : { ok: true, baseImageUpdate: parsed.data };
};

/** Run id: a stable hash of (appId, environment, buildId), so a redelivered message maps to the same run. */
export const runIdFor = (appId: string, environment: string, buildId: string): string =>
  createHash('sha256').update(`${appId}\n${environment}\n${buildId}`).digest('hex').slice(0, 20);

/** Execution name `<appId>-<environment>-<runId>` (≤ 80 chars, the Step Functions limit). */
export const executionNameFor = (appId: string, environment: string, runId: string): string =>
  `${appId}-${environment}-${runId}`;

/** What the state machine receives: the validated message with the app config reduced to a URI. */
export const executionInputSchema = z.strictObject({
  schemaVersion: z.literal(1),
  runId: z.string().regex(/^[a-f0-9]{20}$/),
  appId: z.string().regex(APP_ID_PATTERN),
  environment: z.string().min(1),
  version: z.string().regex(VERSION_PATTERN),
  buildId: z.string().regex(BUILD_ID_PATTERN),
  kind: z.enum(TRIGGER_KINDS),
  appConfigUri: z.string().regex(S3_URI_PATTERN),
  artifact: z.strictObject({
    s3Uri: z.string().regex(S3_URI_PATTERN),
    sha256: z.string().regex(SHA256_PATTERN),
  }),
  requestedBy: z.string().regex(REQUESTED_BY_PATTERN),
});

export type ExecutionInput = z.infer<typeof executionInputSchema>;
