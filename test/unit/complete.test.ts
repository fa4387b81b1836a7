import { TEST_ENV } from './support/env';
import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  ProvisionedThroughputExceededException,
} from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, NoSuchKey, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import {
  InvalidToken,
  SendTaskFailureCommand,
  SendTaskSuccessCommand,
  SFNClient,
  SFNServiceException,
  TaskDoesNotExist,
  TaskTimedOut,
} from '@aws-sdk/client-sfn';
import { ListCommandInvocationsCommand, ListCommandsCommand, SSMClient } from '@aws-sdk/client-ssm';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { AuditRepository } from '../../shared/audit';
import { completeCommand, type CompletionDeps } from '../../shared/commands/complete';
import type { CommandStep } from '../../shared/commands/contract';
import { TaskStore, type CommandTask } from '../../shared/commands/tasks';
import { BUILD_ID, EXECUTION_ARN, RUN_ID, s3Body } from './support/fixtures';

const dbMock = mockClient(DynamoDBDocumentClient);
const sfnMock = mockClient(SFNClient);
const ssmMock = mockClient(SSMClient);
const s3Mock = mockClient(S3Client);

const NOW = '2025-03-04T10:48:00.000Z';
const COMMAND_ID = '5b7c1a2e-3f4d-4e5f-8a9b-0c1d2e3f4a5b';
const BUILDER = 'i-0123456789abcdef0';
const TOKEN = 'AQCEAAAAKgAAAAMAAAAAAAAAA-waiting-task-token';
const ARTIFACTS = TEST_ENV.ARTIFACTS_BUCKET;
const COORDINATION = TEST_ENV.COORDINATION_TABLE;
const AUDIT = TEST_ENV.AUDIT_TABLE;

const db = DynamoDBDocumentClient.from(new DynamoDBClient({}));
const deps: CompletionDeps = {
  tasks: new TaskStore(db, COORDINATION),
  sfn: new SFNClient({}),
  ssm: new SSMClient({}),
  s3: new S3Client({}),
  audit: new AuditRepository(db, AUDIT),
  stage: 'dev',
  artifactsBucket: ARTIFACTS,
  reportsBucket: TEST_ENV.REPORTS_BUCKET,
  now: () => new Date(NOW),
};

const BAKE_RESULT = {
  amiId: 'ami-0a1b2c3d4e5f60718',
  snapshotIds: ['snap-0a1b2c3d4e5f60718', 'snap-0b1c2d3e4f5a60819'],
  region: 'eu-west-1',
};
const PROVISION_RESULT = {
  launchTemplateId: 'lt-0a1b2c3d4e5f60718',
  asgName: `sample-app-dev-${RUN_ID}`,
  targetGroupArn:
    'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/sample-app-green/0123456789abcdef',
  albDns: 'sample-app-dev-1234567890.eu-west-1.elb.amazonaws.com',
  terraformStateVersion: 'Vx1.c3RhdGUtdmVyc2lvbg',
};
const VALIDATE_RESULT = {
  passed: 212,
  failed: 1,
  skipped: 4,
  reportKey: `dev/sample-app/${RUN_ID}/inspec-report.json`,
};

/** The run item pre-provision wrote (what findRun returns). */
const RUN_ITEM = {
  pk: 'APP#sample-app',
  sk: `RUN#2025-03-04T10:00:02.000Z#${RUN_ID}`,
  entity: 'RUN',
  runId: RUN_ID,
  appId: 'sample-app',
  environment: 'dev',
  version: '1.4.2',
  buildId: BUILD_ID,
  kind: 'release',
  executionArn: EXECUTION_ARN,
  status: 'RUNNING',
};

const task = (overrides: Partial<CommandTask> = {}): CommandTask => ({
  runId: RUN_ID,
  appId: 'sample-app',
  environment: 'dev',
  step: 'bake',
  mode: 'run',
  executionArn: EXECUTION_ARN,
  taskToken: TOKEN,
  status: 'PENDING',
  commandId: COMMAND_ID,
  instanceId: BUILDER,
  createdAt: '2025-03-04T10:06:00.000Z',
  expiresAt: 1741687560,
  ...overrides,
});

const taskKey = (step: CommandStep) => ({ pk: `TASK#${RUN_ID}#${step}` });
const resultKey = (step: CommandStep) => `dev/sample-app/${RUN_ID}/${step}/result.json`;
const stderrKey = (step: CommandStep) =>
  `dev/sample-app/${RUN_ID}/${step}/ssm-output/${COMMAND_ID}/${BUILDER}/awsrunShellScript/${step}/stderr`;

/** The coordination table holds `waiting` and the COMMAND pointer from its command to it. */
const givenWaiting = (waiting: CommandTask): void => {
  dbMock
    .on(GetCommand, { TableName: COORDINATION, Key: { pk: `COMMAND#${COMMAND_ID}` } })
    .resolves({ Item: { pk: `COMMAND#${COMMAND_ID}`, kind: 'COMMAND', runId: RUN_ID, step: waiting.step } });
  dbMock.on(GetCommand, { TableName: COORDINATION, Key: taskKey(waiting.step) }).resolves({ Item: waiting });
};

const givenResult = (step: CommandStep, text: string): void => {
  s3Mock.on(GetObjectCommand, { Bucket: ARTIFACTS, Key: resultKey(step) }).resolves({ Body: s3Body(text) });
};

const givenStderr = (step: CommandStep, text: string): void => {
  ssmMock.on(ListCommandInvocationsCommand).resolves({
    CommandInvocations: [
      {
        CommandId: COMMAND_ID,
        InstanceId: BUILDER,
        StandardErrorUrl: `https://s3.eu-west-1.amazonaws.com/${ARTIFACTS}/${stderrKey(step)}`,
        CommandPlugins: [{ Name: step, Output: 'plugin output excerpt' }],
      },
    ],
  });
  s3Mock.on(GetObjectCommand, { Bucket: ARTIFACTS, Key: stderrKey(step) }).resolves({ Body: s3Body(text) });
};

const accessDenied = () =>
  new S3ServiceException({ name: 'AccessDenied', $fault: 'client', $metadata: {}, message: 'Access Denied' });

const auditItems = (): Record<string, unknown>[] =>
  dbMock
    .commandCalls(PutCommand)
    .filter((call) => call.args[0].input.TableName === AUDIT)
    .map((call) => call.args[0].input.Item ?? {});

const auditResources = () => auditItems().filter((item) => item.entity === 'RESOURCE');

const failureSent = () => sfnMock.commandCalls(SendTaskFailureCommand)[0]?.args[0].input;

const completionUpdate = () =>
  dbMock
    .commandCalls(UpdateCommand)
    .map((call) => call.args[0].input)
    .find((input) => input.UpdateExpression?.includes('REMOVE pendingPk'));

const resourceBase = {
  pk: `RUN#${RUN_ID}`,
  entity: 'RESOURCE',
  runId: RUN_ID,
  appId: 'sample-app',
  environment: 'dev',
  executionArn: EXECUTION_ARN,
  buildId: BUILD_ID,
  version: '1.4.2',
  createdAt: NOW,
};

beforeEach(() => {
  dbMock.on(GetCommand).resolves({});
  dbMock.on(PutCommand).resolves({});
  dbMock.on(UpdateCommand).resolves({});
  dbMock.on(QueryCommand).resolves({ Items: [RUN_ITEM] });
  sfnMock.on(SendTaskSuccessCommand).resolves({});
  sfnMock.on(SendTaskFailureCommand).resolves({});
  ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
  ssmMock.on(ListCommandInvocationsCommand).resolves({ CommandInvocations: [] });
  s3Mock
    .on(GetObjectCommand)
    .rejects(new NoSuchKey({ message: 'The specified key does not exist.', $metadata: {} }));
});

afterEach(() => {
  dbMock.reset();
  sfnMock.reset();
  ssmMock.reset();
  s3Mock.reset();
});

describe('command completion', () => {
  describe('when the command succeeded with a valid result', () => {
    it('hands the parsed result.json to the waiting state and marks the task done, once', async () => {
      givenWaiting(task());
      givenResult('bake', JSON.stringify(BAKE_RESULT));

      const outcome = await completeCommand(COMMAND_ID, 'Success', deps);

      expect(outcome).toBe('SUCCEEDED');
      expect(s3Mock).toHaveReceivedCommandWith(GetObjectCommand, {
        Bucket: ARTIFACTS,
        Key: resultKey('bake'),
      });
      expect(sfnMock).toHaveReceivedCommandTimes(SendTaskSuccessCommand, 1);
      expect(sfnMock).toHaveReceivedCommandWith(SendTaskSuccessCommand, { taskToken: TOKEN });
      const output = sfnMock.commandCalls(SendTaskSuccessCommand)[0]?.args[0].input.output ?? '';
      expect(JSON.parse(output)).toEqual(BAKE_RESULT);
      expect(sfnMock).toHaveReceivedCommandTimes(SendTaskFailureCommand, 0);
      expect(completionUpdate()).toEqual({
        TableName: COORDINATION,
        Key: taskKey('bake'),
        UpdateExpression: 'SET #status = :done, outcome = :outcome REMOVE pendingPk, pendingSk',
        ConditionExpression: '#status = :pending AND taskToken = :token',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: {
          ':done': 'DONE',
          ':pending': 'PENDING',
          ':outcome': 'Success/SUCCEEDED',
          ':token': TOKEN,
        },
      });
    });

    it('records COMMAND_SUCCESS and the AMI and each of its snapshots as resources of the run', async () => {
      givenWaiting(task());
      givenResult('bake', JSON.stringify(BAKE_RESULT));

      await completeCommand(COMMAND_ID, 'Success', deps);

      expect(dbMock).toHaveReceivedCommandWith(QueryCommand, {
        TableName: AUDIT,
        IndexName: 'byResource',
        ExpressionAttributeValues: { ':pk': `RUN#${RUN_ID}`, ':sk': 'RUN' },
      });
      expect(auditItems()).toContainEqual({
        pk: `RUN#${RUN_ID}`,
        sk: `EVENT#${NOW}#COMMAND_SUCCESS#${COMMAND_ID}`,
        entity: 'EVENT',
        runId: RUN_ID,
        type: 'COMMAND_SUCCESS',
        stage: 'bake',
        at: NOW,
        id: COMMAND_ID,
        detail: { commandId: COMMAND_ID, instanceId: BUILDER, mode: 'run', outcome: 'SUCCEEDED' },
      });
      expect(auditResources()).toEqual([
        expect.objectContaining({
          ...resourceBase,
          sk: `RESOURCE#AMI#${BAKE_RESULT.amiId}`,
          resourceType: 'AMI',
          resourceId: BAKE_RESULT.amiId,
          detail: { region: 'eu-west-1', snapshotIds: BAKE_RESULT.snapshotIds },
        }),
        expect.objectContaining({
          ...resourceBase,
          resourceType: 'SNAPSHOT',
          resourceId: 'snap-0a1b2c3d4e5f60718',
          detail: { amiId: BAKE_RESULT.amiId },
        }),
        expect.objectContaining({
          ...resourceBase,
          resourceType: 'SNAPSHOT',
          resourceId: 'snap-0b1c2d3e4f5a60819',
          detail: { amiId: BAKE_RESULT.amiId },
        }),
      ]);
    });

    it('records the launch template, ASG, target group and Terraform state a provision apply made', async () => {
      givenWaiting(task({ step: 'provision', mode: 'apply' }));
      givenResult('provision', JSON.stringify(PROVISION_RESULT));

      const outcome = await completeCommand(COMMAND_ID, 'Success', deps);

      expect(outcome).toBe('SUCCEEDED');
      expect(auditResources().map((item) => [item.resourceType, item.resourceId, item.detail])).toEqual([
        ['LAUNCH_TEMPLATE', PROVISION_RESULT.launchTemplateId, { asgName: PROVISION_RESULT.asgName }],
        ['ASG', PROVISION_RESULT.asgName, { launchTemplateId: PROVISION_RESULT.launchTemplateId }],
        ['TARGET_GROUP', PROVISION_RESULT.targetGroupArn, { albDns: PROVISION_RESULT.albDns }],
        ['TERRAFORM_STATE', `${RUN_ID}/release`, { versionId: PROVISION_RESULT.terraformStateVersion }],
      ]);
    });

    it('records the InSpec report by its S3 URI in the reports bucket', async () => {
      givenWaiting(task({ step: 'validate' }));
      givenResult('validate', JSON.stringify(VALIDATE_RESULT));

      await completeCommand(COMMAND_ID, 'Success', deps);

      expect(auditResources()).toEqual([
        expect.objectContaining({
          ...resourceBase,
          resourceType: 'INSPEC_REPORT',
          resourceId: `s3://${TEST_ENV.REPORTS_BUCKET}/${VALIDATE_RESULT.reportKey}`,
          detail: { passed: 212, failed: 1, skipped: 4 },
        }),
      ]);
    });

    it('records a provision destroy as an UNDONE event of the compensation, not as resources', async () => {
      givenWaiting(task({ step: 'provision', mode: 'destroy' }));
      givenResult('provision', '{"destroyed":true}');

      const outcome = await completeCommand(COMMAND_ID, 'Success', deps);

      expect(outcome).toBe('SUCCEEDED');
      expect(sfnMock).toHaveReceivedCommandWith(SendTaskSuccessCommand, {
        taskToken: TOKEN,
        output: '{"destroyed":true}',
      });
      expect(auditResources()).toEqual([]);
      expect(auditItems()).toContainEqual(
        expect.objectContaining({
          sk: `EVENT#${NOW}#UNDONE#DESTROY_STACK#${RUN_ID}/release`,
          type: 'UNDONE',
          stage: 'Compensate',
          detail: { action: 'DESTROY_STACK', resource: `${RUN_ID}/release` },
        }),
      );
    });
    it.each([
      {
        caller: 'a failed run compensating',
        executionArn: EXECUTION_ARN,
        type: 'UNDONE',
        stage: 'Compensate',
      },
      {
        caller: 'the decommission of a replaced release',
        executionArn: `arn:aws:states:eu-west-1:123456789012:execution:ami-pipeline-dev-decommission:decommission-${RUN_ID}`,
        type: 'DECOMMISSIONED',
        stage: 'Decommission',
      },
    ])('labels the destroy of $caller as $type in stage $stage', async ({ executionArn, type, stage }) => {
      givenWaiting(task({ step: 'provision', mode: 'destroy', executionArn }));
      givenResult('provision', '{"destroyed":true}');

      const outcome = await completeCommand(COMMAND_ID, 'Success', deps);

      expect(outcome).toBe('SUCCEEDED');
      const destroyEvents = auditItems().filter((item) => item.id === `DESTROY_STACK#${RUN_ID}/release`);
      expect(destroyEvents).toEqual([
        {
          pk: `RUN#${RUN_ID}`,
          sk: `EVENT#${NOW}#${type}#DESTROY_STACK#${RUN_ID}/release`,
          entity: 'EVENT',
          runId: RUN_ID,
          type,
          stage,
          at: NOW,
          id: `DESTROY_STACK#${RUN_ID}/release`,
          detail: { action: 'DESTROY_STACK', resource: `${RUN_ID}/release` },
        },
      ]);
      expect(auditResources()).toEqual([]);
    });
  });

  describe('when the command succeeded without a usable result', () => {
    it.each<[string, CommandStep, string | undefined, string, string]>([
      [
        'no result.json',
        'bake',
        undefined,
        'BakeFailedError',
        `bake command succeeded but wrote no s3://${ARTIFACTS}/dev/sample-app/${RUN_ID}/bake/result.json`,
      ],
      [
        'a result.json that is not JSON',
        'bake',
        '{"amiId": "ami-0a1b',
        'BakeFailedError',
        'bake result.json is not valid JSON',
      ],
      [
        'an AMI id that is not one',
        'bake',
        JSON.stringify({ ...BAKE_RESULT, amiId: 'ami-$(reboot)' }),
        'BakeFailedError',
        'bake result.json rejected: result.amiId: must be an AMI id',
      ],
      [
        'no snapshots',
        'bake',
        JSON.stringify({ ...BAKE_RESULT, snapshotIds: [] }),
        'BakeFailedError',
        'result.snapshotIds: Too small',
      ],
      [
        'an unexpected field',
        'bake',
        JSON.stringify({ ...BAKE_RESULT, password: 'hunter2' }),
        'BakeFailedError',
        'result: unknown field(s) "password"',
      ],
      [
        'a provision result without its ASG',
        'provision',
        JSON.stringify({ ...PROVISION_RESULT, asgName: undefined }),
        'ProvisionFailedError',
        'provision result.json rejected: result.asgName: is required',
      ],
      [
        'a validate result with a negative count',
        'validate',
        JSON.stringify({ ...VALIDATE_RESULT, failed: -1 }),
        'ValidationFailedError',
        'validate result.json rejected: result.failed: Too small',
      ],
    ])('fails the state when the command left %s', async (_case, step, text, error, reason) => {
      givenWaiting(task({ step, mode: step === 'provision' ? 'apply' : 'run' }));
      if (text !== undefined) givenResult(step, text);

      const outcome = await completeCommand(COMMAND_ID, 'Success', deps);

      expect(outcome).toBe('FAILED');
      expect(sfnMock).toHaveReceivedCommandTimes(SendTaskSuccessCommand, 0);
      expect(failureSent()).toEqual({ taskToken: TOKEN, error, cause: expect.stringContaining(reason) });
      expect(completionUpdate()?.ExpressionAttributeValues).toMatchObject({ ':outcome': 'Success/FAILED' });
      expect(auditResources()).toEqual([]);
    });

    it('propagates an S3 failure other than a missing object, leaving the task pending for a retry', async () => {
      givenWaiting(task());
      const denied = accessDenied();
      s3Mock.on(GetObjectCommand).rejects(denied);

      await expect(completeCommand(COMMAND_ID, 'Success', deps)).rejects.toBe(denied);
      expect(sfnMock.calls()).toHaveLength(0);
      expect(completionUpdate()).toBeUndefined();
    });
  });

  describe('when the command did not succeed', () => {
    const STDERR = [
      'first line of a long build log',
      'x'.repeat(3000),
      '==> amazon-ebs: Provisioning with Chef: exit status 1',
      "Build 'amazon-ebs' errored after 14 minutes: chef-client failed",
    ].join('\n');

    it.each(['Failed', 'TimedOut', 'Cancelled'])(
      'fails the state with BakeFailedError and the tail of stderr when the command %s',
      async (status) => {
        givenWaiting(task());
        givenStderr('bake', STDERR);

        const outcome = await completeCommand(COMMAND_ID, status, deps);

        expect(outcome).toBe('FAILED');
        expect(ssmMock).toHaveReceivedCommandWith(ListCommandInvocationsCommand, {
          CommandId: COMMAND_ID,
          Details: true,
        });
        expect(s3Mock).toHaveReceivedCommandWith(GetObjectCommand, {
          Bucket: ARTIFACTS,
          Key: stderrKey('bake'),
          Range: 'bytes=-2048',
        });
        expect(s3Mock).not.toHaveReceivedCommandWith(GetObjectCommand, { Key: resultKey('bake') });
        const prefix = `bake command ${COMMAND_ID} ended ${status}: `;
        const sent = failureSent();
        expect(sent).toEqual({ taskToken: TOKEN, error: 'BakeFailedError', cause: expect.any(String) });
        expect(sent?.cause?.startsWith(prefix)).toBe(true);
        expect(sent?.cause?.endsWith('errored after 14 minutes: chef-client failed')).toBe(true);
        expect(sent?.cause).not.toContain('first line');
        expect(sent?.cause?.length).toBeLessThanOrEqual(prefix.length + 2048);
        expect(completionUpdate()?.ExpressionAttributeValues).toMatchObject({
          ':outcome': `${status}/FAILED`,
        });
        expect(auditItems()).toContainEqual(
          expect.objectContaining({ type: `COMMAND_${status.toUpperCase()}`, stage: 'bake', id: COMMAND_ID }),
        );
      },
    );

    it.each<[CommandStep, string, string]>([
      ['provision', 'apply', 'ProvisionFailedError'],
      ['validate', 'run', 'ValidationFailedError'],
    ])("fails a %s state with that step's error", async (step, mode, error) => {
      givenWaiting(task({ step, mode }));
      givenStderr(step, 'Error: creating Auto Scaling Group: ValidationError');

      await completeCommand(COMMAND_ID, 'Failed', deps);

      expect(failureSent()).toEqual({
        taskToken: TOKEN,
        error,
        cause: `${step} command ${COMMAND_ID} ended Failed: Error: creating Auto Scaling Group: ValidationError`,
      });
    });

    it("falls back to the plugin's output when the command left no stderr object", async () => {
      givenWaiting(task());
      ssmMock.on(ListCommandInvocationsCommand).resolves({
        CommandInvocations: [
          { CommandId: COMMAND_ID, CommandPlugins: [{ Name: 'bake', Output: 'packer: not found\n' }] },
        ],
      });

      await completeCommand(COMMAND_ID, 'Failed', deps);

      expect(failureSent()?.cause).toBe(`bake command ${COMMAND_ID} ended Failed: packer: not found`);
      expect(s3Mock).toHaveReceivedCommandTimes(GetObjectCommand, 0);
    });

    it("falls back to the plugin's output when stderr cannot be read", async () => {
      givenWaiting(task());
      givenStderr('bake', 'unused');
      s3Mock.on(GetObjectCommand, { Key: stderrKey('bake') }).rejects(accessDenied());

      const outcome = await completeCommand(COMMAND_ID, 'Failed', deps);

      expect(outcome).toBe('FAILED');
      expect(failureSent()?.cause).toBe(`bake command ${COMMAND_ID} ended Failed: plugin output excerpt`);
    });

    it("names SSM's status details when there is no output at all", async () => {
      givenWaiting(task());
      ssmMock.on(ListCommandInvocationsCommand).resolves({
        CommandInvocations: [{ CommandId: COMMAND_ID, StatusDetails: 'DeliveryTimedOut' }],
      });

      await completeCommand(COMMAND_ID, 'DeliveryTimedOut', deps);

      expect(failureSent()?.cause).toBe(
        `bake command ${COMMAND_ID} ended DeliveryTimedOut: DeliveryTimedOut`,
      );
    });
  });

  describe('answering a task once', () => {
    it('sends nothing for a task that is already done (a duplicated event)', async () => {
      givenWaiting(task({ status: 'DONE' }));
      givenResult('bake', JSON.stringify(BAKE_RESULT));

      const outcome = await completeCommand(COMMAND_ID, 'Success', deps);

      expect(outcome).toBe('DUPLICATE');
      expect(sfnMock.calls()).toHaveLength(0);
      expect(dbMock).toHaveReceivedCommandTimes(UpdateCommand, 0);
      expect(auditItems()).toEqual([]);
    });

    it('reports DUPLICATE when another completion closed the task first, its inventory writes being conditional repeats', async () => {
      givenWaiting(task());
      givenResult('bake', JSON.stringify(BAKE_RESULT));
      dbMock
        .on(UpdateCommand)
        .rejects(
          new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }),
        );

      const outcome = await completeCommand(COMMAND_ID, 'Success', deps);

      expect(outcome).toBe('DUPLICATE');
      const resourceWrites = dbMock
        .commandCalls(PutCommand)
        .map((call) => call.args[0].input)
        .filter((input) => input.Item?.entity === 'RESOURCE');
      expect(resourceWrites.length).toBeGreaterThan(0);
      for (const write of resourceWrites) expect(write.ConditionExpression).toBe('attribute_not_exists(pk)');
    });

    it.each([
      ['TaskTimedOut', new TaskTimedOut({ message: 'Task Timed Out', $metadata: {} })],
      ['InvalidToken', new InvalidToken({ message: 'Invalid Token', $metadata: {} })],
      ['TaskDoesNotExist', new TaskDoesNotExist({ message: 'Task does not exist', $metadata: {} })],
    ])(
      'treats a token Step Functions rejects with %s as stale and still marks the task done',
      async (_name, err) => {
        givenWaiting(task());
        givenResult('bake', JSON.stringify(BAKE_RESULT));
        sfnMock.on(SendTaskSuccessCommand).rejects(err);

        const outcome = await completeCommand(COMMAND_ID, 'Success', deps);

        expect(outcome).toBe('STALE');
        expect(completionUpdate()?.ExpressionAttributeValues).toMatchObject({ ':outcome': 'Success/STALE' });
        expect(auditItems()).toContainEqual(
          expect.objectContaining({
            type: 'COMMAND_SUCCESS',
            detail: expect.objectContaining({ outcome: 'STALE' }),
          }),
        );
      },
    );

    it('propagates any other Step Functions error and leaves the task pending for a retry', async () => {
      givenWaiting(task());
      givenStderr('bake', 'boom');
      const throttled = new SFNServiceException({
        name: 'ThrottlingException',
        $fault: 'client',
        $metadata: {},
        message: 'Rate exceeded',
      });
      sfnMock.on(SendTaskFailureCommand).rejects(throttled);

      await expect(completeCommand(COMMAND_ID, 'Failed', deps)).rejects.toBe(throttled);
      expect(completionUpdate()).toBeUndefined();
      expect(auditItems()).toEqual([]);
    });
  });

  describe('a command no task is known to wait for', () => {
    it("ignores a command whose Comment is not the pipeline's", async () => {
      ssmMock.on(ListCommandsCommand, { CommandId: COMMAND_ID }).resolves({
        Commands: [{ CommandId: COMMAND_ID, Comment: 'patch baseline run by ops', InstanceIds: [BUILDER] }],
      });

      const outcome = await completeCommand(COMMAND_ID, 'Success', deps);

      expect(outcome).toBe('UNKNOWN');
      expect(sfnMock.calls()).toHaveLength(0);
      expect(dbMock).toHaveReceivedCommandTimes(UpdateCommand, 0);
      expect(dbMock).toHaveReceivedCommandTimes(PutCommand, 0);
    });

    it('ignores a command SSM no longer lists', async () => {
      const outcome = await completeCommand(COMMAND_ID, 'Failed', deps);

      expect(outcome).toBe('UNKNOWN');
      expect(sfnMock.calls()).toHaveLength(0);
    });

    it('ignores the command of an earlier attempt when the task now waits for another command', async () => {
      givenWaiting(task({ commandId: 'cmd-of-the-retried-attempt' }));
      givenResult('bake', JSON.stringify(BAKE_RESULT));

      const outcome = await completeCommand(COMMAND_ID, 'Success', deps);

      expect(outcome).toBe('UNKNOWN');
      expect(sfnMock.calls()).toHaveLength(0);
      expect(dbMock).toHaveReceivedCommandTimes(UpdateCommand, 0);
    });

    it('finds the task by the Comment after a crash between SendCommand and recording the command', async () => {
      const unrecorded = task({ commandId: undefined, instanceId: undefined });
      dbMock.on(GetCommand, { Key: taskKey('bake') }).resolves({ Item: unrecorded });
      ssmMock.on(ListCommandsCommand, { CommandId: COMMAND_ID }).resolves({
        Commands: [
          { CommandId: COMMAND_ID, Comment: `ami-pipeline ${RUN_ID} bake run`, InstanceIds: [BUILDER] },
        ],
      });
      givenResult('bake', JSON.stringify(BAKE_RESULT));

      const outcome = await completeCommand(COMMAND_ID, 'Success', deps);

      expect(outcome).toBe('SUCCEEDED');
      expect(dbMock).toHaveReceivedCommandWith(UpdateCommand, {
        Key: taskKey('bake'),
        UpdateExpression: 'SET commandId = :cid, instanceId = :iid',
        ExpressionAttributeValues: { ':cid': COMMAND_ID, ':iid': BUILDER },
      });
      expect(dbMock).toHaveReceivedCommandWith(PutCommand, {
        TableName: COORDINATION,
        Item: expect.objectContaining({ pk: `COMMAND#${COMMAND_ID}`, runId: RUN_ID, step: 'bake' }),
      });
      expect(sfnMock).toHaveReceivedCommandWith(SendTaskSuccessCommand, { taskToken: TOKEN });
      expect(completionUpdate()?.ExpressionAttributeValues).toMatchObject({
        ':outcome': 'Success/SUCCEEDED',
      });
    });

    it('ignores a Comment naming a task that already waits for another command', async () => {
      dbMock.on(GetCommand, { Key: taskKey('bake') }).resolves({ Item: task({ commandId: 'cmd-other' }) });
      ssmMock.on(ListCommandsCommand, { CommandId: COMMAND_ID }).resolves({
        Commands: [{ CommandId: COMMAND_ID, Comment: `ami-pipeline ${RUN_ID} bake run` }],
      });

      const outcome = await completeCommand(COMMAND_ID, 'Success', deps);

      expect(outcome).toBe('UNKNOWN');
      expect(sfnMock.calls()).toHaveLength(0);
      expect(dbMock).toHaveReceivedCommandTimes(UpdateCommand, 0);
    });
  });
});

describe('command completion when an audit write fails', () => {
  it('leaves the task pending, so the redelivered event records the inventory and then completes it', async () => {
    givenWaiting(task());
    givenResult('bake', JSON.stringify(BAKE_RESULT));
    dbMock
      .on(PutCommand, { TableName: AUDIT, Item: { resourceType: 'AMI' } })
      .rejectsOnce(new ProvisionedThroughputExceededException({ message: 'throttled', $metadata: {} }))
      .resolves({});

    // First delivery: the task is answered, then the inventory write fails before the task is closed.
    await expect(completeCommand(COMMAND_ID, 'Success', deps)).rejects.toThrow(
      ProvisionedThroughputExceededException,
    );
    expect(completionUpdate()).toBeUndefined();
    // Lambda retries the asynchronous EventBridge invocation; the task is still pending.
    await completeCommand(COMMAND_ID, 'Success', deps);

    const amiWrites = dbMock
      .commandCalls(PutCommand)
      .filter((call) => call.args[0].input.Item?.resourceType === 'AMI');
    expect(amiWrites).toHaveLength(2);
    expect(completionUpdate()).toBeDefined();
  });
});
