import { randomUUID } from 'node:crypto';
import type { Context, SNSEvent } from 'aws-lambda';
import { AuditRepository } from '../../shared/audit';
import { dynamodb } from '../../shared/clients/dynamodb';
import { s3 } from '../../shared/clients/s3';
import { sfn } from '../../shared/clients/sfn';
import { sqs } from '../../shared/clients/sqs';
import { requireEnv, requirePositiveIntEnv } from '../../shared/env';
import { logger, withLogContext } from '../../shared/logger';
import { TriggerClaims } from '../../shared/trigger/claim';
import { handleTrigger, type TriggerDeps, type TriggerOutcome } from '../../shared/trigger/handle';

/**
 * A holder that has not started its execution keeps the claim this long: three times the
 * function's 30 s timeout. Its own retries keep the claim whatever the lease (same request id); a
 * duplicate delivery retried by Lambda (about 1 and 3 minutes later) takes over a holder that died.
 */
const CLAIM_LEASE_SECONDS = 90;
/** Claims are kept a week (TTL); Step Functions itself remembers execution names for 90 days. */
const CLAIM_RETENTION_SECONDS = 7 * 24 * 3600;

const defaultDeps: TriggerDeps = {
  ctx: { stage: requireEnv('STAGE'), artifactsBucket: requireEnv('ARTIFACTS_BUCKET') },
  maxMessageBytes: requirePositiveIntEnv('MAX_MESSAGE_BYTES'),
  stateMachineArn: requireEnv('STATE_MACHINE_ARN'),
  rejectionsQueueUrl: requireEnv('REJECTIONS_QUEUE_URL'),
  audit: new AuditRepository(dynamodb, requireEnv('AUDIT_TABLE')),
  claims: new TriggerClaims({
    db: dynamodb,
    tableName: requireEnv('COORDINATION_TABLE'),
    leaseSeconds: CLAIM_LEASE_SECONDS,
    retentionSeconds: CLAIM_RETENTION_SECONDS,
  }),
  sfn,
  sqs,
  s3,
  now: () => new Date(),
};

/**
 * Processes each SNS record; infrastructure errors propagate so Lambda retries, then the DLQ keeps
 * the message. `invocationId` is the Lambda request id (kept across Lambda's retries of one invocation).
 */
export const run = async (
  event: SNSEvent,
  deps: TriggerDeps = defaultDeps,
  invocationId: string = randomUUID(),
): Promise<TriggerOutcome[]> => {
  const outcomes: TriggerOutcome[] = [];
  for (const record of event.Records) {
    outcomes.push(
      await handleTrigger(
        {
          message: record.Sns.Message,
          messageId: record.Sns.MessageId,
          topicArn: record.Sns.TopicArn,
          timestamp: record.Sns.Timestamp,
          invocationId,
        },
        deps,
      ),
    );
  }
  logger.info('trigger processed', { outcomes: outcomes.map((o) => o.status) });
  return outcomes;
};

export const handler = async (event: SNSEvent, context: Context): Promise<TriggerOutcome[]> =>
  withLogContext(context, {}, () => run(event, defaultDeps, context.awsRequestId));
