import type { Context, SNSEvent } from 'aws-lambda';
import { AuditRepository } from '../../shared/audit';
import { dynamodb } from '../../shared/clients/dynamodb';
import { s3 } from '../../shared/clients/s3';
import { sfn } from '../../shared/clients/sfn';
import { sqs } from '../../shared/clients/sqs';
import { requireEnv, requirePositiveIntEnv } from '../../shared/env';
import { logger, withLogContext } from '../../shared/logger';
import { handleTrigger, type TriggerDeps, type TriggerOutcome } from '../../shared/trigger/handle';

const defaultDeps: TriggerDeps = {
  ctx: { stage: requireEnv('STAGE'), artifactsBucket: requireEnv('ARTIFACTS_BUCKET') },
  maxMessageBytes: requirePositiveIntEnv('MAX_MESSAGE_BYTES'),
  stateMachineArn: requireEnv('STATE_MACHINE_ARN'),
  rejectionsQueueUrl: requireEnv('REJECTIONS_QUEUE_URL'),
  audit: new AuditRepository(dynamodb, requireEnv('AUDIT_TABLE')),
  sfn,
  sqs,
  s3,
  now: () => new Date(),
};

/** Processes each SNS record; infrastructure errors propagate so Lambda retries, then the DLQ keeps the message. */
export const run = async (event: SNSEvent, deps: TriggerDeps = defaultDeps): Promise<TriggerOutcome[]> => {
  const outcomes: TriggerOutcome[] = [];
  for (const record of event.Records) {
    outcomes.push(
      await handleTrigger(
        {
          message: record.Sns.Message,
          messageId: record.Sns.MessageId,
          topicArn: record.Sns.TopicArn,
          timestamp: record.Sns.Timestamp,
        },
        deps,
      ),
    );
  }
  logger.info('trigger processed', { outcomes: outcomes.map((o) => o.status) });
  return outcomes;
};

export const handler = async (event: SNSEvent, context: Context): Promise<TriggerOutcome[]> =>
  withLogContext(context, {}, () => run(event));
