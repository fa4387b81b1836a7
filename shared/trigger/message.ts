import { createHash } from 'node:crypto';
import { z } from 'zod';
import { describeIssues } from '../validation';

export const APP_ID_PATTERN = /^[a-z][a-z0-9-]{1,38}[a-z0-9]$/;
export const VERSION_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
export const BUILD_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/#@+-]{0,127}$/;
export const REQUESTED_BY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@+=,:/-]{0,127}$/;
export const SHA256_PATTERN = /^[a-f0-9]{64}$/;
/** Conservative S3 key alphabet: no spaces, quotes, `$`, backticks or other shell metacharacters. */
const S3_URI_PATTERN = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/([A-Za-z0-9!_.*'()/-]{1,1024})$/;

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
    .regex(S3_URI_PATTERN, "must be an s3://bucket/key URI using only [A-Za-z0-9!_.*'()/-] in the key")
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

export type ParseResult =
  | { ok: true; message: TriggerMessage; baseImageUpdate?: undefined }
  | { ok: true; baseImageUpdate: BaseImageUpdate; message?: undefined }
  | { ok: false; violations: string[] };

/**
 * Parses a raw SNS message body: size, JSON, then schema. Every violation names its field and rule.
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
    return { ok: false, violations: [`(message): is not valid JSON (${(err as Error).message})`] };
  }
  const fields =
    typeof json === 'object' && json !== null && !Array.isArray(json)
      ? (json as Record<string, unknown>)
      : {};
  if (fields.kind === 'base-image-update' && !('appId' in fields)) {
    const update = baseImageUpdateSchema(ctx).safeParse(json);
    return update.success
      ? { ok: true, baseImageUpdate: update.data }
      : { ok: false, violations: describeIssues(update.error) };
  }
  const parsed = triggerMessageSchema(ctx).safeParse(json);
  return parsed.success
    ? { ok: true, message: parsed.data }
    : { ok: false, violations: describeIssues(parsed.error) };
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
