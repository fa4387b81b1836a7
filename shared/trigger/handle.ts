import { createHash } from 'node:crypto';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  ExecutionDoesNotExist,
  StartExecutionCommand,
  type SFNClient,
} from '@aws-sdk/client-sfn';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { isDeepStrictEqual } from 'node:util';
import type { AuditRepository } from '../audit';
import { StartInProgressError } from '../errors';
import type { TriggerClaims } from './claim';
import { logger } from '../logger';
import * as z from 'zod';
import {
  APP_ID_PATTERN,
  BUILD_ID_PATTERN,
  executionInputSchema,
  executionNameFor,
  VERSION_PATTERN,
  type BaseImageUpdate,
  parseTriggerMessage,
  runIdFor,
  type ExecutionInput,
  type TriggerContext,
  type TriggerMessage,
} from './message';

/** One SNS delivery, reduced to what the trigger needs. */
export interface TriggerDelivery {
  message: string;
  messageId: string;
  topicArn: string;
  /** SNS publish time (ISO 8601). */
  timestamp: string;
  /** The Lambda request id: the same for every async retry of one invocation, another for a duplicate delivery. */
  invocationId: string;
}

export interface TriggerDeps {
  ctx: TriggerContext;
  maxMessageBytes: number;
  stateMachineArn: string;
  rejectionsQueueUrl: string;
  audit: AuditRepository;
  claims: TriggerClaims;
  sfn: SFNClient;
  sqs: SQSClient;
  s3: S3Client;
  now: () => Date;
}

export interface FanOutRun {
  appId: string;
  status: 'STARTED' | 'DUPLICATE' | 'CONFLICT' | 'SKIPPED';
  executionName?: string;
}

export type TriggerOutcome =
  | { status: 'STARTED'; executionArn: string; executionName: string; runId: string }
  | { status: 'DUPLICATE'; executionArn: string; executionName: string; runId: string }
  | { status: 'FANNED_OUT'; baseImage: string; runs: FanOutRun[] }
  | { status: 'REJECTED'; reason: string };

const EXCERPT_BYTES = 2048;

/** Builds the execution input. Deterministic in the message alone, so a redelivery is recognised. */
export const executionInputFor = (
  message: TriggerMessage,
  runId: string,
  appConfigUri: string,
): ExecutionInput => ({
  schemaVersion: 1,
  runId,
  appId: message.appId,
  environment: message.environment,
  version: message.version,
  buildId: message.buildId,
  kind: message.kind,
  appConfigUri,
  artifact: { s3Uri: message.artifact.s3Uri, sha256: message.artifact.sha256 },
  requestedBy: message.requestedBy,
});

/**
 * Handles one trigger message: a bad message is kept (rejections queue + audit REJECTED) and starts
 * nothing; a good one starts exactly one execution, however often SNS delivers it.
 * Infrastructure failures are thrown so Lambda's async retries and the trigger DLQ take over.
 */
export const handleTrigger = async (
  delivery: TriggerDelivery,
  deps: TriggerDeps,
): Promise<TriggerOutcome> => {
  const parsed = parseTriggerMessage(delivery.message, deps.ctx, deps.maxMessageBytes);
  if (!parsed.ok) return reject(delivery, parsed.violations, deps);
  if (parsed.baseImageUpdate) return fanOut(parsed.baseImageUpdate, delivery.invocationId, deps);

  const { message } = parsed;
  const runId = runIdFor(message.appId, message.environment, message.buildId);
  const appConfigUri = await appConfigUriFor(message, runId, deps);
  const started = await startRun(
    executionInputFor(message, runId, appConfigUri),
    delivery.invocationId,
    deps,
  );
  if (started.status !== 'CONFLICT') return started;
  return reject(
    delivery,
    [
      `buildId: "${message.buildId}" already started execution ${started.executionName} with different content; use a new build id`,
    ],
    deps,
    message,
  );
};

type StartOutcome =
  | { status: 'STARTED' | 'DUPLICATE'; executionArn: string; executionName: string; runId: string }
  | { status: 'CONFLICT'; executionArn: string; executionName: string; runId: string };

/**
 * Starts the run for an execution input, or recognises it: the same name with the same input is
 * a redelivery (success, nothing to do); the same name with other content is a CONFLICT. Only the
 * invocation holding the build's claim (shared/trigger/claim.ts) starts it and reports STARTED.
 */
const startRun = async (
  executionInput: ExecutionInput,
  invocationId: string,
  deps: TriggerDeps,
): Promise<StartOutcome> => {
  const { runId } = executionInput;
  const executionName = executionNameFor(executionInput.appId, executionInput.environment, runId);
  const input = JSON.stringify(executionInput);
  if (await deps.claims.claim(executionName, invocationId, deps.now())) {
    try {
      const started = await deps.sfn.send(
        new StartExecutionCommand({ stateMachineArn: deps.stateMachineArn, name: executionName, input }),
      );
      // Step Functions answers an identical StartExecution for a *running* execution with its ARN:
      // an earlier attempt of this invocation started it, and its answer was lost.
      const executionArn = started.executionArn ?? executionArnFor(deps.stateMachineArn, executionName);
      if (!(await deps.claims.started(executionName, invocationId, deps.now())))
        logger.warn('execution started after the claim had passed to another delivery', { executionName });
      logger.info('execution started', { executionName, executionArn, runId });
      return { status: 'STARTED', executionArn, executionName, runId };
    } catch (err) {
      if (!(err instanceof ExecutionAlreadyExists)) throw err;
    }
  }
  const executionArn = executionArnFor(deps.stateMachineArn, executionName);
  const existing = await deps.sfn
    .send(new DescribeExecutionCommand({ executionArn }))
    .catch((err: unknown) => {
      // Claimed by another delivery that has not started it yet: Lambda retries this one later,
      // when the execution exists (or the holder's lease is over and this delivery may start it).
      if (err instanceof ExecutionDoesNotExist)
        throw new StartInProgressError(`${executionName}: another delivery of this build is starting it`);
      throw err;
    });
  if (existing.input !== undefined && isDeepStrictEqual(JSON.parse(existing.input), JSON.parse(input))) {
    logger.info('duplicate trigger ignored: execution already exists with the same input', {
      executionName,
      executionArn,
      status: existing.status,
    });
    return { status: 'DUPLICATE', executionArn, executionName, runId };
  }
  return { status: 'CONFLICT', executionArn, executionName, runId };
};

/**
 * A base-image update for the environment: one run per app whose live release was built from that
 * SOE parameter, rebuilding the live version from its own app config and artifact. Each run has
 * its own execution name (app, environment, the SOE build), so a redelivery starts nothing new;
 * apps on other bases are untouched.
 */
const fanOut = async (
  update: BaseImageUpdate,
  invocationId: string,
  deps: TriggerDeps,
): Promise<TriggerOutcome> => {
  const live = await deps.audit.liveReleases(update.environment);
  const affected = live.filter(
    (release) =>
      (release.baseImage as { ssmParameter?: string } | undefined)?.ssmParameter ===
      update.baseImage.ssmParameter,
  );
  const runs: FanOutRun[] = [];
  for (const release of affected) {
    const parsed = liveReleaseSchema.safeParse(release);
    if (!parsed.success) {
      logger.error('live release item does not match its schema; app skipped', { appId: release.appId });
      runs.push({ appId: String(release.appId), status: 'SKIPPED' });
      continue;
    }
    const { appId, version, appConfigUri, artifact } = parsed.data;
    const runId = runIdFor(appId, update.environment, update.buildId);
    const outcome = await startRun(
      {
        schemaVersion: 1,
        runId,
        appId,
        environment: update.environment,
        version,
        buildId: update.buildId,
        kind: 'base-image-update',
        appConfigUri,
        artifact,
        requestedBy: update.requestedBy,
      },
      invocationId,
      deps,
    );
    if (outcome.status === 'CONFLICT')
      logger.warn('base-image update already ran this app with other content', { appId, ...outcome });
    runs.push({ appId, status: outcome.status, executionName: outcome.executionName });
  }
  logger.info('base-image update fanned out', {
    baseImage: update.baseImage.ssmParameter,
    live: live.length,
    runs: runs.map((r) => `${r.appId}:${r.status}`),
  });
  return { status: 'FANNED_OUT', baseImage: update.baseImage.ssmParameter, runs };
};

/** What a base-image rebuild takes from the live release (written by RecordRelease). */
const liveReleaseSchema = z.object({
  appId: z.string().regex(APP_ID_PATTERN),
  version: z.string().regex(VERSION_PATTERN),
  appConfigUri: executionInputSchema.shape.appConfigUri,
  artifact: executionInputSchema.shape.artifact,
});

/** `arn:aws:states:r:a:stateMachine:name` → `arn:aws:states:r:a:execution:name:<execution>`. */
export const executionArnFor = (stateMachineArn: string, executionName: string): string =>
  `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${executionName}`;

/**
 * The execution input carries a URI, never the config itself (it may hold sensitive values, and
 * execution input is visible in the console). An inline config is stored next to the app's inputs.
 */
const appConfigUriFor = async (
  message: TriggerMessage,
  runId: string,
  deps: TriggerDeps,
): Promise<string> => {
  if (typeof message.appConfig.s3Uri === 'string') return message.appConfig.s3Uri;
  // The key carries the content's hash: a reused build id with a different config gets a different
  // URI (so a different execution input, hence a conflict), and never overwrites a running run's config.
  const body = JSON.stringify(message.appConfig);
  const digest = createHash('sha256').update(body).digest('hex').slice(0, 16);
  const key = `inputs/${message.appId}/${runId}/app-config-${digest}.json`;
  await deps.s3.send(
    new PutObjectCommand({
      Bucket: deps.ctx.artifactsBucket,
      Key: key,
      Body: body,
      ContentType: 'application/json',
    }),
  );
  return `s3://${deps.ctx.artifactsBucket}/${key}`;
};

const reject = async (
  delivery: TriggerDelivery,
  violations: string[],
  deps: TriggerDeps,
  message?: TriggerMessage,
): Promise<TriggerOutcome> => {
  const reason = violations.join('; ');
  const receivedAt = deps.now().toISOString();
  const identity = message ?? bestEffortIdentity(delivery.message);
  // The queue keeps the whole message so it can be inspected and re-sent; the audit item keeps a digest.
  const sent = await deps.sqs.send(
    new SendMessageCommand({
      QueueUrl: deps.rejectionsQueueUrl,
      MessageBody: JSON.stringify({
        reason,
        violations,
        environment: deps.ctx.stage,
        receivedAt,
        snsMessageId: delivery.messageId,
        topicArn: delivery.topicArn,
        publishedAt: delivery.timestamp,
        message: delivery.message,
      }),
      MessageAttributes: {
        reason: { DataType: 'String', StringValue: truncate(reason, 256) },
        ...(identity.appId ? { appId: { DataType: 'String', StringValue: identity.appId } } : {}),
      },
    }),
  );
  await deps.audit.recordRejection({
    environment: deps.ctx.stage,
    messageId: delivery.messageId,
    receivedAt,
    topicArn: delivery.topicArn,
    reason,
    violations,
    appId: identity.appId,
    buildId: identity.buildId,
    messageSha256: createHash('sha256').update(delivery.message).digest('hex'),
    excerpt: truncate(redactedExcerpt(delivery.message), EXCERPT_BYTES),
    queueMessageId: sent.MessageId ?? 'unknown',
  });
  logger.warn('trigger message rejected', {
    reason,
    snsMessageId: delivery.messageId,
    appId: identity.appId,
  });
  return { status: 'REJECTED', reason };
};

/** appId/buildId of a rejected message when they are themselves well-formed, for the audit index. */
const bestEffortIdentity = (raw: string): { appId?: string; buildId?: string } => {
  try {
    const json: unknown = JSON.parse(raw);
    if (typeof json !== 'object' || json === null) return {};
    const pick = (field: string, pattern: RegExp): string | undefined => {
      const value = (json as Record<string, unknown>)[field];
      return typeof value === 'string' && pattern.test(value) ? value : undefined;
    };
    const appId = pick('appId', APP_ID_PATTERN);
    const buildId = pick('buildId', BUILD_ID_PATTERN);
    return { ...(appId ? { appId } : {}), ...(buildId ? { buildId } : {}) };
  } catch {
    return {};
  }
};

const truncate = (text: string, maxBytes: number): string => {
  const buf = Buffer.from(text, 'utf8');
  return buf.length <= maxBytes ? text : `${buf.subarray(0, maxBytes).toString('utf8')}…[truncated]`;
};

/**
 * The audit table keeps a recognisable excerpt of a rejected message, never an inline app config
 * (it may hold sensitive values): that part is replaced by its SHA-256. The rejections queue keeps
 * the whole message for whoever may read it.
 */
const redactedExcerpt = (raw: string): string => {
  try {
    // Rebuilt from the parsed value, never copied from `raw`: with a duplicated appConfig key the
    // text still holds the first (inline) config while JSON.parse kept only the last.
    return JSON.stringify(redacted(JSON.parse(raw)));
  } catch {
    // Not JSON, or too deep to write back: keep the text up to where an inline app config could
    // begin (its key, or a \u escape that could spell it).
    const cut = raw.search(/appConfig|\\u/);
    return cut === -1 ? raw : `${raw.slice(0, cut)}…[rest not kept: it may hold an inline app config]`;
  }
};

/** A message (or each message of an array) with an inline appConfig replaced by its digest. */
const redacted = (json: unknown): unknown => {
  if (Array.isArray(json)) return json.map(redacted);
  if (typeof json !== 'object' || json === null || !('appConfig' in json)) return json;
  const { appConfig } = json as { appConfig: unknown };
  if (
    appConfig &&
    typeof appConfig === 'object' &&
    's3Uri' in appConfig &&
    Object.keys(appConfig).length === 1
  )
    return json;
  const digest = createHash('sha256').update(JSON.stringify(appConfig)).digest('hex');
  return { ...json, appConfig: { redacted: true, sha256: digest } };
};
