import { TEST_ENV } from './support/env';
import {
  AccessDeniedException,
  AssociateKmsKeyCommand,
  CloudWatchLogsClient,
  CreateLogGroupCommand,
  DescribeSubscriptionFiltersCommand,
  ListTagsForResourceCommand,
  PutRetentionPolicyCommand,
  PutSubscriptionFilterCommand,
  ResourceAlreadyExistsException,
  ThrottlingException,
} from '@aws-sdk/client-cloudwatch-logs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { AuditRepository } from '../../shared/audit';
import { LogExportFailedError } from '../../shared/errors';
import {
  exportLogs,
  SUBSCRIPTION_FILTER_NAME,
  type LogExportDeps,
  type LogExportInput,
} from '../../shared/release/log-export';
import type { RunConfig } from '../../shared/run-config';
import { run as runWorker } from '../../functions/log-export/handler';
import { inCallOrder } from './support/call-order';
import {
  BUILD_ID,
  RUN_CONFIG_PARAMETER,
  RUN_ID,
  RUN_REF,
  RUN_TAGS,
  runConfigFixture,
} from './support/fixtures';

const logsMock = mockClient(CloudWatchLogsClient);
const ssmMock = mockClient(SSMClient);
const dbMock = mockClient(DynamoDBDocumentClient);

const NOW = '2025-03-04T11:12:00.000Z';
const KEY_ARN = TEST_ENV.KMS_KEY_ARN;
const STREAM_ARN = TEST_ENV.LOG_DELIVERY_STREAM_ARN;
const ROLE_ARN = TEST_ENV.LOG_SUBSCRIPTION_ROLE_ARN;
const APP_GROUP = '/app/sample-app/application';

const deps: LogExportDeps = {
  logs: new CloudWatchLogsClient({}),
  ssm: new SSMClient({}),
  audit: new AuditRepository(DynamoDBDocumentClient.from(new DynamoDBClient({})), TEST_ENV.AUDIT_TABLE),
  kmsKeyArn: KEY_ARN,
  deliveryStreamArn: STREAM_ARN,
  subscriptionRoleArn: ROLE_ARN,
  defaultRetentionDays: 30,
  now: () => new Date(NOW),
};

const input: LogExportInput = { run: { ...RUN_REF }, runConfigParameter: RUN_CONFIG_PARAMETER };

const givenRunConfig = (change: (config: RunConfig) => void = () => undefined): void => {
  const config = runConfigFixture();
  change(config);
  ssmMock.on(GetParameterCommand, { Name: RUN_CONFIG_PARAMETER }).resolves({
    Parameter: { Name: RUN_CONFIG_PARAMETER, Type: 'SecureString', Value: JSON.stringify(config) },
  });
};

const alreadyExists = () =>
  new ResourceAlreadyExistsException({ message: 'The specified log group already exists', $metadata: {} });

const resourcesWritten = (type: string) =>
  dbMock
    .commandCalls(PutCommand)
    .map((call) => call.args[0].input.Item ?? {})
    .filter((item) => item.entity === 'RESOURCE' && item.resourceType === type);

/** Runs exportLogs and returns what it threw (the test fails if it did not throw). */
const failureOf = async (): Promise<unknown> => {
  try {
    await exportLogs(input, deps);
  } catch (err) {
    return err;
  }
  throw new Error('expected exportLogs to fail');
};

beforeEach(() => {
  givenRunConfig();
  logsMock.on(CreateLogGroupCommand).resolves({});
  logsMock.on(AssociateKmsKeyCommand).resolves({});
  logsMock.on(PutRetentionPolicyCommand).resolves({});
  logsMock.on(DescribeSubscriptionFiltersCommand).resolves({ subscriptionFilters: [] });
  logsMock.on(PutSubscriptionFilterCommand).resolves({});
  logsMock.on(ListTagsForResourceCommand).resolves({ tags: {} });
  dbMock.on(PutCommand).resolves({});
});

afterEach(() => {
  logsMock.reset();
  ssmMock.reset();
  dbMock.reset();
});

describe('log export', () => {
  describe("for an app log group that does not exist yet (sample-app's first release)", () => {
    it('creates it encrypted with the stage key and tagged with the run', async () => {
      await exportLogs(input, deps);

      expect(logsMock).toHaveReceivedCommandWith(CreateLogGroupCommand, {
        logGroupName: APP_GROUP,
        kmsKeyId: KEY_ARN,
        tags: { ...RUN_TAGS },
      });
      expect(logsMock).toHaveReceivedCommandTimes(AssociateKmsKeyCommand, 0);
    });

    it("keeps its logs for the app's retention", async () => {
      await exportLogs(input, deps);

      expect(logsMock).toHaveReceivedCommandWith(PutRetentionPolicyCommand, {
        logGroupName: APP_GROUP,
        retentionInDays: 90,
      });
    });

    it('subscribes every event to the delivery stream under the fixed filter name, with the CloudWatch Logs role', async () => {
      const result = await exportLogs(input, deps);

      expect(logsMock).toHaveReceivedCommandWith(PutSubscriptionFilterCommand, {
        logGroupName: APP_GROUP,
        filterName: 'ami-pipeline-export',
        filterPattern: '',
        destinationArn: STREAM_ARN,
        roleArn: ROLE_ARN,
      });
      expect(SUBSCRIPTION_FILTER_NAME).toBe('ami-pipeline-export');
      expect(result).toEqual({ subscribed: 1, created: 1 });
    });

    it('records the log group and the subscription it added in the audit table', async () => {
      await exportLogs(input, deps);

      expect(resourcesWritten('LOG_GROUP')).toEqual([
        expect.objectContaining({
          runId: RUN_ID,
          appId: 'sample-app',
          environment: 'dev',
          buildId: BUILD_ID,
          resourceId: APP_GROUP,
          createdAt: NOW,
          detail: { kmsKeyArn: KEY_ARN, retentionInDays: 90 },
        }),
      ]);
      expect(resourcesWritten('LOG_SUBSCRIPTION')).toEqual([
        expect.objectContaining({
          runId: RUN_ID,
          resourceId: `${APP_GROUP}#ami-pipeline-export`,
          gsi1pk: `RESOURCE#${APP_GROUP}#ami-pipeline-export`,
          detail: {
            logGroupName: APP_GROUP,
            filterName: 'ami-pipeline-export',
            destinationArn: STREAM_ARN,
            roleArn: ROLE_ARN,
            replaced: null,
          },
        }),
      ]);
    });

    it('records the subscription before putting it, so a failed put is still compensated', async () => {
      logsMock.on(PutSubscriptionFilterCommand).rejects(new Error('boom'));

      await failureOf();

      const recorded = dbMock
        .commandCalls(PutCommand)
        .find((call) => call.args[0].input.Item?.resourceType === 'LOG_SUBSCRIPTION');
      expect(inCallOrder(recorded, logsMock.commandCalls(PutSubscriptionFilterCommand)[0])).toBe(true);
    });
  });

  describe('for a log group an earlier release made', () => {
    beforeEach(() => {
      logsMock.on(CreateLogGroupCommand).rejects(alreadyExists());
      logsMock.on(ListTagsForResourceCommand).resolves({
        tags: { ...RUN_TAGS, 'ami-pipeline:run-id': 'b'.repeat(20) },
      });
      logsMock.on(DescribeSubscriptionFiltersCommand).resolves({
        subscriptionFilters: [
          {
            filterName: 'ami-pipeline-export',
            logGroupName: APP_GROUP,
            filterPattern: '',
            destinationArn: STREAM_ARN,
            roleArn: ROLE_ARN,
          },
        ],
      });
    });

    it('puts it on the stage key and its retention again, and does not claim to have made it', async () => {
      const result = await exportLogs(input, deps);

      expect(logsMock).toHaveReceivedCommandWith(AssociateKmsKeyCommand, {
        logGroupName: APP_GROUP,
        kmsKeyId: KEY_ARN,
      });
      expect(logsMock).toHaveReceivedCommandWith(PutRetentionPolicyCommand, {
        logGroupName: APP_GROUP,
        retentionInDays: 90,
      });
      expect(logsMock).toHaveReceivedCommandWith(ListTagsForResourceCommand, {
        resourceArn: `arn:aws:logs:eu-west-1:123456789012:log-group:${APP_GROUP}`,
      });
      expect(resourcesWritten('LOG_GROUP')).toEqual([]);
      expect(result).toEqual({ subscribed: 1, created: 0 });
    });

    it('replaces the subscription of the same name instead of adding a second one, and records what it replaced', async () => {
      await exportLogs(input, deps);

      expect(logsMock).toHaveReceivedCommandWith(DescribeSubscriptionFiltersCommand, {
        logGroupName: APP_GROUP,
        filterNamePrefix: 'ami-pipeline-export',
      });
      expect(
        logsMock.commandCalls(PutSubscriptionFilterCommand).map((call) => call.args[0].input.filterName),
      ).toEqual(['ami-pipeline-export']);
      expect(resourcesWritten('LOG_SUBSCRIPTION')).toEqual([
        expect.objectContaining({
          detail: expect.objectContaining({
            replaced: { destinationArn: STREAM_ARN, roleArn: ROLE_ARN, filterPattern: '' },
          }),
        }),
      ]);
    });
  });

  it('still records a log group it made when a retry finds it (the first attempt died after creating it)', async () => {
    logsMock.on(CreateLogGroupCommand).rejects(alreadyExists());
    logsMock.on(ListTagsForResourceCommand).resolves({ tags: { ...RUN_TAGS } });

    const result = await exportLogs(input, deps);

    expect(resourcesWritten('LOG_GROUP')).toEqual([expect.objectContaining({ resourceId: APP_GROUP })]);
    expect(result.created).toBe(1);
  });

  it("uses the stage's retention for a log group whose config sets none", async () => {
    givenRunConfig((config) => {
      config.app.logGroups = [{ name: '/app/sample-app/audit' }, { name: APP_GROUP, retentionDays: 365 }];
    });

    const result = await exportLogs(input, deps);

    expect(logsMock.commandCalls(PutRetentionPolicyCommand).map((call) => call.args[0].input)).toEqual([
      { logGroupName: '/app/sample-app/audit', retentionInDays: 30 },
      { logGroupName: APP_GROUP, retentionInDays: 365 },
    ]);
    expect(result).toEqual({ subscribed: 2, created: 2 });
  });

  it('does nothing for an app without log groups', async () => {
    givenRunConfig((config) => {
      config.app.logGroups = [];
    });

    const result = await exportLogs(input, deps);

    expect(result).toEqual({ subscribed: 0, created: 0 });
    expect(logsMock.calls()).toHaveLength(0);
  });

  it('fails with LogExportFailedError naming the log group when CloudWatch Logs refuses', async () => {
    logsMock
      .on(PutSubscriptionFilterCommand)
      .rejects(
        new AccessDeniedException({ message: 'not authorized to perform iam:PassRole', $metadata: {} }),
      );

    const err = await failureOf();

    expect(err).toBeInstanceOf(LogExportFailedError);
    expect(String((err as Error).message)).toBe(
      `log group ${APP_GROUP}: AccessDeniedException: not authorized to perform iam:PassRole`,
    );
  });

  it("passes throttling on unchanged, for the state machine's Retry", async () => {
    logsMock
      .on(CreateLogGroupCommand)
      .rejects(new ThrottlingException({ message: 'Rate exceeded', $metadata: {} }));

    const err = await failureOf();

    expect(err).toBeInstanceOf(ThrottlingException);
  });

  it('refuses a task input without the run config parameter, before calling AWS', async () => {
    await expect(runWorker({ run: { ...RUN_REF } }, deps)).rejects.toMatchObject({
      name: 'InvalidTaskInputError',
    });
    expect(logsMock.calls()).toHaveLength(0);
  });
});
