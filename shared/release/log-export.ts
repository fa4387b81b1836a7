import {
  AssociateKmsKeyCommand,
  CreateLogGroupCommand,
  DescribeSubscriptionFiltersCommand,
  ListTagsForResourceCommand,
  PutRetentionPolicyCommand,
  PutSubscriptionFilterCommand,
  ResourceAlreadyExistsException,
  type CloudWatchLogsClient,
} from '@aws-sdk/client-cloudwatch-logs';
import type { SSMClient } from '@aws-sdk/client-ssm';
import * as z from 'zod';
import type { AuditRepository } from '../audit';
import { errorMessage, errorName, isAwsTransient, LogExportFailedError } from '../errors';
import { logger } from '../logger';
import { loadRunConfig, type RunConfig } from '../run-config';
import { runRefSchema } from '../run-ref';

/**
 * The one subscription filter the pipeline keeps on each app log group. A fixed name makes the
 * export idempotent: PutSubscriptionFilter with an existing name replaces that filter, so every
 * release re-applies it instead of adding another (a log group holds at most two filters).
 */
export const SUBSCRIPTION_FILTER_NAME = 'ami-pipeline-export';

export const logExportInputSchema = z.object({
  run: runRefSchema,
  runConfigParameter: z.string().startsWith('/ami-pipeline/'),
});

export type LogExportInput = z.infer<typeof logExportInputSchema>;

export interface LogExportDeps {
  logs: CloudWatchLogsClient;
  ssm: SSMClient;
  audit: AuditRepository;
  /** The stage key every app log group is encrypted with. */
  kmsKeyArn: string;
  /** The Firehose stream that delivers to the logs bucket, and the role CloudWatch Logs uses to put into it. */
  deliveryStreamArn: string;
  subscriptionRoleArn: string;
  /** Retention of a log group whose app config sets none (the stage's logRetentionDays). */
  defaultRetentionDays: number;
  now: () => Date;
}

export interface LogExportOutput {
  subscribed: number;
  created: number;
}

/** What a LOG_SUBSCRIPTION resource records (compensation reads it back). */
export interface LogSubscriptionDetail {
  logGroupName: string;
  filterName: string;
  destinationArn: string;
  roleArn: string;
  /** The filter of the same name this run replaced (an earlier release's), or null when it added one. */
  replaced: { destinationArn: string | null; roleArn: string | null; filterPattern: string | null } | null;
}

/**
 * Errors worth the state machine's Retry (the whole export is idempotent, so running it again is
 * safe): AWS's transient ones, and CloudWatch Logs' conflict with a concurrent change.
 */
const worthRetrying = (err: unknown): boolean =>
  isAwsTransient(err) || errorName(err) === 'OperationAbortedException';

/**
 * A log group's ARN for the tagging APIs (no trailing `:*`), in the account and region of the
 * delivery stream: the stack makes both, so they always share them.
 */
const logGroupArn = (deliveryStreamArn: string, name: string): string => {
  const [, partition, , region, account] = deliveryStreamArn.split(':');
  return `arn:${partition}:logs:${region}:${account}:log-group:${name}`;
};

/**
 * After the traffic switch, before the release is recorded live: each of the app's log groups
 * exists, is encrypted with the stage key, keeps its logs for the app's (or the stage's) retention,
 * and is subscribed to the delivery stream that writes into the encrypted logs bucket. Every
 * subscription is inventoried as LOG_SUBSCRIPTION (before it is put, so compensation finds it even
 * when the put is what failed) and every log group this run made as LOG_GROUP. Safe to run again.
 */
export const exportLogs = async (input: LogExportInput, deps: LogExportDeps): Promise<LogExportOutput> => {
  const config = await loadRunConfig(deps.ssm, input.runConfigParameter);
  let created = 0;
  for (const group of config.app.logGroups) {
    const retentionInDays = group.retentionDays ?? deps.defaultRetentionDays;
    try {
      if (await ensureLogGroup(group.name, retentionInDays, input, config, deps)) created++;
      await subscribe(group.name, input, config, deps);
    } catch (err) {
      if (worthRetrying(err)) throw err;
      throw new LogExportFailedError(`log group ${group.name}: ${errorName(err)}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
  }
  logger.info('app log groups subscribed', { subscribed: config.app.logGroups.length, created });
  return { subscribed: config.app.logGroups.length, created };
};

const resourceOf = (input: LogExportInput, config: RunConfig, deps: LogExportDeps) => ({
  runId: input.run.runId,
  appId: input.run.appId,
  environment: input.run.environment,
  executionArn: input.run.executionArn,
  buildId: config.release.buildId,
  version: config.release.version,
  createdAt: deps.now().toISOString(),
});

/** Creates the group (tagged with the run) or brings an existing one onto the stage key; sets retention. True when this run made it. */
const ensureLogGroup = async (
  logGroupName: string,
  retentionInDays: number,
  input: LogExportInput,
  config: RunConfig,
  deps: LogExportDeps,
): Promise<boolean> => {
  let createdByRun: boolean;
  try {
    await deps.logs.send(
      new CreateLogGroupCommand({ logGroupName, kmsKeyId: deps.kmsKeyArn, tags: config.platform.tags }),
    );
    createdByRun = true;
  } catch (err) {
    if (!(err instanceof ResourceAlreadyExistsException)) throw err;
    // An earlier release made it, or someone did by hand: either way it must use the stage key from now on.
    await deps.logs.send(new AssociateKmsKeyCommand({ logGroupName, kmsKeyId: deps.kmsKeyArn }));
    // A Lambda retry of this run finds the group its first attempt made: still this run's to record.
    const { tags = {} } = await deps.logs.send(
      new ListTagsForResourceCommand({ resourceArn: logGroupArn(deps.deliveryStreamArn, logGroupName) }),
    );
    createdByRun = tags['ami-pipeline:run-id'] === input.run.runId;
  }
  await deps.logs.send(new PutRetentionPolicyCommand({ logGroupName, retentionInDays }));
  if (createdByRun) {
    await deps.audit.recordResource({
      ...resourceOf(input, config, deps),
      resourceType: 'LOG_GROUP',
      resourceId: logGroupName,
      detail: { kmsKeyArn: deps.kmsKeyArn, retentionInDays },
    });
  }
  return createdByRun;
};

const subscribe = async (
  logGroupName: string,
  input: LogExportInput,
  config: RunConfig,
  deps: LogExportDeps,
): Promise<void> => {
  const { subscriptionFilters = [] } = await deps.logs.send(
    new DescribeSubscriptionFiltersCommand({ logGroupName, filterNamePrefix: SUBSCRIPTION_FILTER_NAME }),
  );
  const previous = subscriptionFilters.find((f) => f.filterName === SUBSCRIPTION_FILTER_NAME);
  const detail: LogSubscriptionDetail = {
    logGroupName,
    filterName: SUBSCRIPTION_FILTER_NAME,
    destinationArn: deps.deliveryStreamArn,
    roleArn: deps.subscriptionRoleArn,
    replaced: previous
      ? {
          destinationArn: previous.destinationArn ?? null,
          roleArn: previous.roleArn ?? null,
          filterPattern: previous.filterPattern ?? null,
        }
      : null,
  };
  // Recorded first (a retry keeps the first attempt's record, and with it what was there before the run).
  await deps.audit.recordResource({
    ...resourceOf(input, config, deps),
    resourceType: 'LOG_SUBSCRIPTION',
    resourceId: `${logGroupName}#${SUBSCRIPTION_FILTER_NAME}`,
    detail: { ...detail },
  });
  await deps.logs.send(
    new PutSubscriptionFilterCommand({
      logGroupName,
      filterName: SUBSCRIPTION_FILTER_NAME,
      // Every event: selection is Splunk's job, not the pipeline's.
      filterPattern: '',
      destinationArn: deps.deliveryStreamArn,
      roleArn: deps.subscriptionRoleArn,
    }),
  );
};
