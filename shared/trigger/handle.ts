import { createHash } from 'node:crypto';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  StartExecutionCommand,
  type SFNClient,
} from '@aws-sdk/client-sfn';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { isDeepStrictEqual } from 'node:util';
import type { AuditRepository } from '../audit';
import { logger } from '../logger';
import {
  APP_ID_PATTERN,
  BUILD_ID_PATTERN,
  executionNameFor,
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
}

export interface TriggerDeps {
  ctx: TriggerContext;
  maxMessageBytes: number;
  stateMachineArn: string;
  rejectionsQueueUrl: string;
  audit: AuditRepository;
  sfn: SFNClient;
  sqs: SQSClient;
  s3: S3Client;
  now: () => Date;
}

export type TriggerOutcome =
  | { status: 'STARTED'; executionArn: string; executionName: string; runId: string }
  | { status: 'DUPLICATE'; executionArn: string; executionName: string; runId: string }
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

  const { message } = parsed;
  const runId = runIdFor(message.appId, message.environment, message.buildId);
  const executionName = executionNameFor(message.appId, message.environment, runId);
  const appConfigUri = await appConfigUriFor(message, runId, deps);
  const input = JSON.stringify(executionInputFor(message, runId, appConfigUri));

  try {
    const started = await deps.sfn.send(
      new StartExecutionCommand({ stateMachineArn: deps.stateMachineArn, name: executionName, input }),
    );
    // Step Functions answers an identical StartExecution for a *running* execution with its ARN.
    const executionArn = started.executionArn ?? executionArnFor(deps.stateMachineArn, executionName);
    logger.info('execution started', { executionName, executionArn, runId });
    return { status: 'STARTED', executionArn, executionName, runId };
  } catch (err) {
    if (!(err instanceof ExecutionAlreadyExists)) throw err;
  }

  // The name exists: either SNS redelivered the same message (same input: success, nothing to do),
  // or Jenkins reused a build id for different content (a conflict the sender must hear about).
  const executionArn = executionArnFor(deps.stateMachineArn, executionName);
  const existing = await deps.sfn.send(new DescribeExecutionCommand({ executionArn }));
  if (existing.input !== undefined && isDeepStrictEqual(JSON.parse(existing.input), JSON.parse(input))) {
    logger.info('duplicate trigger ignored: execution already exists with the same input', {
      executionName,
      executionArn,
      status: existing.status,
    });
    return { status: 'DUPLICATE', executionArn, executionName, runId };
  }
  return reject(
    delivery,
    [
      `buildId: "${message.buildId}" already started execution ${executionName} with different content; use a new build id`,
    ],
    deps,
    message,
  );
};

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
    excerpt: truncate(delivery.message, EXCERPT_BYTES),
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
