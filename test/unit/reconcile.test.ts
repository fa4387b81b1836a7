import { TEST_ENV } from './support/env';
import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  DescribeExecutionCommand,
  ExecutionDoesNotExist,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  SFNClient,
  TaskTimedOut,
  type ExecutionStatus,
} from '@aws-sdk/client-sfn';
import {
  CancelCommandCommand,
  InternalServerError,
  ListCommandsCommand,
  SSMClient,
  type CommandStatus,
} from '@aws-sdk/client-ssm';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { AuditRepository } from '../../shared/audit';
import type { CompletionDeps } from '../../shared/commands/complete';
import { reconcile } from '../../shared/commands/reconcile';
import { TaskStore, type CommandTask } from '../../shared/commands/tasks';
import { BUILD_ID, EXECUTION_ARN, RUN_ID, s3Body } from './support/fixtures';

const dbMock = mockClient(DynamoDBDocumentClient);
const sfnMock = mockClient(SFNClient);
const ssmMock = mockClient(SSMClient);
const s3Mock = mockClient(S3Client);

const NOW = '2025-03-04T11:00:00.000Z';
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
  artifactsBucket: TEST_ENV.ARTIFACTS_BUCKET,
  reportsBucket: TEST_ENV.REPORTS_BUCKET,
  now: () => new Date(NOW),
};

const pendingTask = (overrides: Partial<CommandTask> = {}): CommandTask => ({
  runId: RUN_ID,
  appId: 'sample-app',
  environment: 'dev',
  step: 'bake',
  mode: 'run',
  executionArn: EXECUTION_ARN,
  taskToken: 'token-of-the-bake-state',
  status: 'PENDING',
  commandId: 'cmd-bake',
  instanceId: 'i-0123456789abcdef0',
  createdAt: '2025-03-04T10:06:00.000Z',
  expiresAt: 1741687560,
  ...overrides,
});

const givenPending = (...tasks: CommandTask[]): void => {
  dbMock.on(QueryCommand, { TableName: COORDINATION }).resolves({ Items: tasks });
};

const givenCommandStatus = (commandId: string, Status: CommandStatus): void => {
  ssmMock
    .on(ListCommandsCommand, { CommandId: commandId })
    .resolves({ Commands: [{ CommandId: commandId, Status }] });
};

const givenExecutionStatus = (status: ExecutionStatus): void => {
  sfnMock.on(DescribeExecutionCommand, { executionArn: EXECUTION_ARN }).resolves({
    executionArn: EXECUTION_ARN,
    stateMachineArn: TEST_ENV.STATE_MACHINE_ARN,
    status,
    startDate: new Date('2025-03-04T10:00:02.000Z'),
  });
};

const auditEvents = (): Record<string, unknown>[] =>
  dbMock
    .commandCalls(PutCommand)
    .filter((call) => call.args[0].input.TableName === AUDIT)
    .map((call) => call.args[0].input.Item ?? {});

beforeEach(() => {
  dbMock.on(QueryCommand).resolves({ Items: [] });
  dbMock.on(GetCommand).resolves({});
  dbMock.on(PutCommand).resolves({});
  dbMock.on(UpdateCommand).resolves({});
  sfnMock.on(SendTaskHeartbeatCommand).resolves({});
  sfnMock.on(SendTaskSuccessCommand).resolves({});
  ssmMock.on(CancelCommandCommand).resolves({});
  givenExecutionStatus('RUNNING');
});

afterEach(() => {
  dbMock.reset();
  sfnMock.reset();
  ssmMock.reset();
  s3Mock.reset();
});

describe('reconciler', () => {
  it('reads pending tasks from the pending index, every page, and never scans', async () => {
    const bake = pendingTask();
    const validate = pendingTask({
      runId: 'abcdefabcdefabcdefab',
      step: 'validate',
      commandId: 'cmd-validate',
    });
    const lastKey = { pk: `TASK#${RUN_ID}#bake`, pendingPk: 'PENDING', pendingSk: 'x' };
    dbMock
      .on(QueryCommand, { TableName: COORDINATION })
      .resolvesOnce({ Items: [bake], LastEvaluatedKey: lastKey })
      .resolvesOnce({ Items: [validate] });
    givenCommandStatus('cmd-bake', 'InProgress');
    givenCommandStatus('cmd-validate', 'InProgress');

    const report = await reconcile(deps);

    expect(report.pending).toBe(2);
    expect(dbMock).toHaveReceivedNthSpecificCommandWith(1, QueryCommand, {
      TableName: COORDINATION,
      IndexName: 'pending',
      KeyConditionExpression: 'pendingPk = :p',
    });
    expect(dbMock).toHaveReceivedNthSpecificCommandWith(2, QueryCommand, { ExclusiveStartKey: lastKey });
    expect(dbMock).toHaveReceivedCommandTimes(ScanCommand, 0);
    expect(sfnMock).toHaveReceivedCommandTimes(SendTaskHeartbeatCommand, 2);
  });

  it('sends a heartbeat for a command still running in a running execution', async () => {
    givenPending(pendingTask());
    givenCommandStatus('cmd-bake', 'InProgress');

    const report = await reconcile(deps);

    expect(report).toEqual({
      pending: 1,
      actions: [{ runId: RUN_ID, step: 'bake', commandId: 'cmd-bake', action: 'HEARTBEAT' }],
    });
    expect(ssmMock).toHaveReceivedCommandWith(ListCommandsCommand, { CommandId: 'cmd-bake' });
    expect(sfnMock).toHaveReceivedCommandWith(DescribeExecutionCommand, { executionArn: EXECUTION_ARN });
    expect(sfnMock).toHaveReceivedCommandWith(SendTaskHeartbeatCommand, {
      taskToken: 'token-of-the-bake-state',
    });
    expect(ssmMock).toHaveReceivedCommandTimes(CancelCommandCommand, 0);
    expect(dbMock).toHaveReceivedCommandTimes(UpdateCommand, 0);
  });

  it('completes a task whose command ended but whose event was lost', async () => {
    givenPending(pendingTask());
    givenCommandStatus('cmd-bake', 'Success');
    dbMock
      .on(GetCommand, { Key: { pk: 'COMMAND#cmd-bake' } })
      .resolves({ Item: { pk: 'COMMAND#cmd-bake', kind: 'COMMAND', runId: RUN_ID, step: 'bake' } });
    dbMock.on(GetCommand, { Key: { pk: `TASK#${RUN_ID}#bake` } }).resolves({ Item: pendingTask() });
    dbMock
      .on(QueryCommand, { TableName: AUDIT })
      .resolves({ Items: [{ runId: RUN_ID, buildId: BUILD_ID, version: '1.4.2' }] });
    const result = {
      amiId: 'ami-0a1b2c3d4e5f60718',
      snapshotIds: ['snap-0a1b2c3d4e5f60718'],
      region: 'eu-west-1',
    };
    s3Mock.on(GetObjectCommand).resolves({ Body: s3Body(JSON.stringify(result)) });

    const report = await reconcile(deps);

    expect(report.actions).toEqual([
      { runId: RUN_ID, step: 'bake', commandId: 'cmd-bake', action: 'COMPLETED' },
    ]);
    expect(sfnMock).toHaveReceivedCommandWith(SendTaskSuccessCommand, {
      taskToken: 'token-of-the-bake-state',
      output: JSON.stringify(result),
    });
    expect(sfnMock).toHaveReceivedCommandTimes(SendTaskHeartbeatCommand, 0);
    expect(ssmMock).toHaveReceivedCommandTimes(CancelCommandCommand, 0);
  });

  it.each<ExecutionStatus>(['SUCCEEDED', 'FAILED', 'ABORTED', 'TIMED_OUT'])(
    'cancels a running command whose execution is %s, completes its task and records why',
    async (status) => {
      givenPending(pendingTask());
      givenCommandStatus('cmd-bake', 'InProgress');
      givenExecutionStatus(status);

      const report = await reconcile(deps);

      expect(report.actions).toEqual([
        { runId: RUN_ID, step: 'bake', commandId: 'cmd-bake', action: 'CANCELLED' },
      ]);
      expect(ssmMock).toHaveReceivedCommandWith(CancelCommandCommand, { CommandId: 'cmd-bake' });
      expect(sfnMock).toHaveReceivedCommandTimes(SendTaskHeartbeatCommand, 0);
      expect(dbMock).toHaveReceivedCommandWith(UpdateCommand, {
        TableName: COORDINATION,
        Key: { pk: `TASK#${RUN_ID}#bake` },
        ConditionExpression: '#status = :pending AND taskToken = :token',
        ExpressionAttributeValues: expect.objectContaining({
          ':outcome': 'CANCELLED/execution no longer running',
        }),
      });
      expect(auditEvents()).toEqual([
        {
          pk: `RUN#${RUN_ID}`,
          sk: `EVENT#${NOW}#COMMAND_CANCELLED_BY_RECONCILER#cmd-bake`,
          entity: 'EVENT',
          runId: RUN_ID,
          type: 'COMMAND_CANCELLED_BY_RECONCILER',
          stage: 'bake',
          at: NOW,
          id: 'cmd-bake',
          detail: { commandId: 'cmd-bake', reason: 'execution no longer running' },
        },
      ]);
    },
  );

  it('cancels a running command whose execution no longer exists', async () => {
    givenPending(pendingTask());
    givenCommandStatus('cmd-bake', 'InProgress');
    sfnMock
      .on(DescribeExecutionCommand)
      .rejects(new ExecutionDoesNotExist({ message: 'Execution Does Not Exist', $metadata: {} }));

    const report = await reconcile(deps);

    expect(report.actions.map((a) => a.action)).toEqual(['CANCELLED']);
    expect(ssmMock).toHaveReceivedCommandWith(CancelCommandCommand, { CommandId: 'cmd-bake' });
    expect(auditEvents()).toContainEqual(
      expect.objectContaining({ type: 'COMMAND_CANCELLED_BY_RECONCILER' }),
    );
  });

  it('cancels a running command whose state already timed out (heartbeat refused)', async () => {
    givenPending(pendingTask());
    givenCommandStatus('cmd-bake', 'InProgress');
    sfnMock
      .on(SendTaskHeartbeatCommand)
      .rejects(new TaskTimedOut({ message: 'Task Timed Out', $metadata: {} }));

    const report = await reconcile(deps);

    expect(report.actions.map((a) => a.action)).toEqual(['CANCELLED']);
    expect(ssmMock).toHaveReceivedCommandWith(CancelCommandCommand, { CommandId: 'cmd-bake' });
    expect(dbMock).toHaveReceivedCommandWith(UpdateCommand, {
      ExpressionAttributeValues: expect.objectContaining({
        ':outcome': 'CANCELLED/task no longer accepted (state timed out)',
      }),
    });
  });

  it('records no second cancellation when the task was completed meanwhile', async () => {
    givenPending(pendingTask());
    givenCommandStatus('cmd-bake', 'InProgress');
    givenExecutionStatus('ABORTED');
    dbMock
      .on(UpdateCommand)
      .rejects(
        new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }),
      );

    const report = await reconcile(deps);

    expect(report.actions.map((a) => a.action)).toEqual(['CANCELLED']);
    expect(auditEvents()).toEqual([]);
  });

  it('leaves a task whose command is not recorded yet to the completion path while its execution runs', async () => {
    givenPending(pendingTask({ commandId: undefined, instanceId: undefined }));

    const report = await reconcile(deps);

    expect(report.actions).toEqual([
      { runId: RUN_ID, step: 'bake', commandId: undefined, action: 'WAITING' },
    ]);
    expect(ssmMock.calls()).toHaveLength(0);
    expect(sfnMock).not.toHaveReceivedCommand(SendTaskHeartbeatCommand);
  });

  it('closes such a task once its execution ended, cancelling the unrecorded command its Comment finds', async () => {
    givenPending(pendingTask({ commandId: undefined, instanceId: undefined }));
    givenExecutionStatus('FAILED');
    ssmMock.on(ListCommandsCommand).resolves({
      Commands: [
        { CommandId: 'cmd-unknown', Comment: `ami-pipeline ${RUN_ID} bake run`, Status: 'InProgress' },
        {
          CommandId: 'cmd-other-run',
          Comment: 'ami-pipeline 0000000000aaaaaaaaaa bake run',
          Status: 'InProgress',
        },
      ],
    });

    const report = await reconcile(deps);

    expect(report.actions).toEqual([
      { runId: RUN_ID, step: 'bake', commandId: undefined, action: 'CANCELLED' },
    ]);
    expect(ssmMock.commandCalls(CancelCommandCommand).map((c) => c.args[0].input.CommandId)).toEqual([
      'cmd-unknown',
    ]);
    expect(dbMock).toHaveReceivedCommandWith(UpdateCommand, {
      ExpressionAttributeValues: expect.objectContaining({
        ':outcome': 'CANCELLED/execution ended, no command recorded',
      }),
    });
    expect(dbMock).toHaveReceivedCommandWith(PutCommand, {
      Item: expect.objectContaining({ type: 'COMMAND_CANCELLED_BY_RECONCILER', id: 'cmd-unknown' }),
    });
  });

  it('goes on with the other tasks when one of them fails', async () => {
    const broken = pendingTask({ runId: '0000000000aaaaaaaaaa', commandId: 'cmd-broken' });
    const healthy = pendingTask({ commandId: 'cmd-healthy', taskToken: 'token-of-the-healthy-task' });
    givenPending(broken, healthy);
    ssmMock
      .on(ListCommandsCommand, { CommandId: 'cmd-broken' })
      .rejects(new InternalServerError({ message: 'internal', $metadata: {} }));
    givenCommandStatus('cmd-healthy', 'InProgress');

    const report = await reconcile(deps);

    expect(report).toEqual({
      pending: 2,
      actions: [{ runId: RUN_ID, step: 'bake', commandId: 'cmd-healthy', action: 'HEARTBEAT' }],
    });
    expect(sfnMock).toHaveReceivedCommandWith(SendTaskHeartbeatCommand, {
      taskToken: 'token-of-the-healthy-task',
    });
  });

  it('reports nothing to do when no task is pending', async () => {
    const report = await reconcile(deps);

    expect(report).toEqual({ pending: 0, actions: [] });
    expect(ssmMock.calls()).toHaveLength(0);
    expect(sfnMock.calls()).toHaveLength(0);
  });
});
