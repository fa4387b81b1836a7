import { TEST_ENV } from './support/env';
import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  InternalServerError,
} from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { TaskStore, type CommandTask } from '../../shared/commands/tasks';
import { inCallOrder } from './support/call-order';
import { EXECUTION_ARN, RUN_ID } from './support/fixtures';

const dbMock = mockClient(DynamoDBDocumentClient);
const TABLE = TEST_ENV.COORDINATION_TABLE;
const tasks = new TaskStore(DynamoDBDocumentClient.from(new DynamoDBClient({})), TABLE);

const TOKEN = 'AQCEAAAAKgAAAAMAAAAAAAAAAbake-task-token';
const CREATED_AT = '2025-03-04T10:06:00.000Z';
const TASK: CommandTask = {
  runId: RUN_ID,
  appId: 'sample-app',
  environment: 'dev',
  step: 'bake',
  mode: 'run',
  executionArn: EXECUTION_ARN,
  taskToken: TOKEN,
  status: 'PENDING',
  commandId: 'cmd-1',
  instanceId: 'i-0123456789abcdef0',
  createdAt: CREATED_AT,
  expiresAt: 1741687560,
};

const conditionFailed = () =>
  new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });

afterEach(() => {
  dbMock.reset();
});

describe('task store', () => {
  it('reads a task consistently by run and step', async () => {
    dbMock.on(GetCommand).resolves({ Item: TASK });

    const task = await tasks.get(RUN_ID, 'bake');

    expect(task).toEqual(TASK);
    expect(dbMock).toHaveReceivedCommandWith(GetCommand, {
      TableName: TABLE,
      Key: { pk: `TASK#${RUN_ID}#bake` },
      ConsistentRead: true,
    });
  });

  it('writes a new attempt as PENDING with the sparse pending-index keys, replacing an earlier attempt', async () => {
    dbMock.on(PutCommand).resolves({});
    const { runId, appId, environment, step, mode, executionArn, taskToken, createdAt, expiresAt } = TASK;

    await tasks.putPending({
      runId,
      appId,
      environment,
      step,
      mode,
      executionArn,
      taskToken,
      createdAt,
      expiresAt,
    });

    const input = dbMock.commandCalls(PutCommand)[0]?.args[0].input;
    expect(input).toEqual({
      TableName: TABLE,
      Item: {
        pk: `TASK#${RUN_ID}#bake`,
        kind: 'TASK',
        runId,
        appId,
        environment,
        step,
        mode,
        executionArn,
        taskToken,
        createdAt,
        expiresAt,
        status: 'PENDING',
        pendingPk: 'PENDING',
        pendingSk: `${CREATED_AT}#${RUN_ID}#bake`,
      },
    });
  });

  describe('adopt', () => {
    it('swaps in the new token only while the task is pending on that same command', async () => {
      dbMock.on(UpdateCommand).resolves({});

      const adopted = await tasks.adopt(RUN_ID, 'bake', 'cmd-1', 'new-token');

      expect(adopted).toBe(true);
      expect(dbMock).toHaveReceivedCommandWith(UpdateCommand, {
        TableName: TABLE,
        Key: { pk: `TASK#${RUN_ID}#bake` },
        UpdateExpression: 'SET taskToken = :token',
        ConditionExpression: '#status = :pending AND commandId = :cid',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':token': 'new-token', ':pending': 'PENDING', ':cid': 'cmd-1' },
      });
    });

    it('returns false when the task finished or moved to another command meanwhile', async () => {
      dbMock.on(UpdateCommand).rejects(conditionFailed());

      await expect(tasks.adopt(RUN_ID, 'bake', 'cmd-1', 'new-token')).resolves.toBe(false);
    });

    it('propagates other DynamoDB errors', async () => {
      const failure = new InternalServerError({ message: 'internal', $metadata: {} });
      dbMock.on(UpdateCommand).rejects(failure);

      await expect(tasks.adopt(RUN_ID, 'bake', 'cmd-1', 'new-token')).rejects.toBe(failure);
    });
  });

  it('records the command on the task, then a COMMAND pointer that carries no token', async () => {
    dbMock.on(UpdateCommand).resolves({});
    dbMock.on(PutCommand).resolves({});

    await tasks.setCommand(
      { ...TASK, commandId: undefined, instanceId: undefined },
      'cmd-2',
      'i-0fedcba9876543210',
    );

    expect(dbMock).toHaveReceivedCommandWith(UpdateCommand, {
      TableName: TABLE,
      Key: { pk: `TASK#${RUN_ID}#bake` },
      UpdateExpression: 'SET commandId = :cid, instanceId = :iid',
      ExpressionAttributeValues: { ':cid': 'cmd-2', ':iid': 'i-0fedcba9876543210' },
    });
    const pointer = dbMock.commandCalls(PutCommand)[0];
    expect(pointer?.args[0].input).toEqual({
      TableName: TABLE,
      Item: { pk: 'COMMAND#cmd-2', kind: 'COMMAND', runId: RUN_ID, step: 'bake', expiresAt: TASK.expiresAt },
    });
    expect(inCallOrder(dbMock.commandCalls(UpdateCommand)[0], pointer)).toBe(true);
  });

  describe('findByCommand', () => {
    it('follows the COMMAND pointer to its task', async () => {
      dbMock.on(GetCommand).resolves({});
      dbMock
        .on(GetCommand, { Key: { pk: 'COMMAND#cmd-1' } })
        .resolves({ Item: { pk: 'COMMAND#cmd-1', kind: 'COMMAND', runId: RUN_ID, step: 'bake' } });
      dbMock.on(GetCommand, { Key: { pk: `TASK#${RUN_ID}#bake` } }).resolves({ Item: TASK });

      await expect(tasks.findByCommand('cmd-1')).resolves.toEqual(TASK);
      expect(dbMock).toHaveReceivedCommandWith(GetCommand, {
        Key: { pk: 'COMMAND#cmd-1' },
        ConsistentRead: true,
      });
    });

    it('returns undefined for a command it never recorded', async () => {
      dbMock.on(GetCommand).resolves({});

      await expect(tasks.findByCommand('cmd-unknown')).resolves.toBeUndefined();
      expect(dbMock).toHaveReceivedCommandTimes(GetCommand, 1);
    });
  });

  describe('complete', () => {
    it('marks the pending task DONE with its outcome and drops it from the pending index, conditional on status and token', async () => {
      dbMock.on(UpdateCommand).resolves({});

      const completed = await tasks.complete(TASK, 'Success/SUCCEEDED');

      expect(completed).toBe(true);
      expect(dbMock).toHaveReceivedCommandWith(UpdateCommand, {
        TableName: TABLE,
        Key: { pk: `TASK#${RUN_ID}#bake` },
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

    it('returns false when another completion got there first', async () => {
      dbMock.on(UpdateCommand).rejects(conditionFailed());

      await expect(tasks.complete(TASK, 'Success/SUCCEEDED')).resolves.toBe(false);
    });

    it('propagates other DynamoDB errors', async () => {
      const failure = new InternalServerError({ message: 'internal', $metadata: {} });
      dbMock.on(UpdateCommand).rejects(failure);

      await expect(tasks.complete(TASK, 'Failed/FAILED')).rejects.toBe(failure);
    });
  });

  it('lists pending tasks from the pending index, following every page', async () => {
    const other: CommandTask = { ...TASK, step: 'validate', commandId: 'cmd-3' };
    const lastKey = { pk: `TASK#${RUN_ID}#bake`, pendingPk: 'PENDING', pendingSk: 'x' };
    dbMock
      .on(QueryCommand)
      .resolvesOnce({ Items: [TASK], LastEvaluatedKey: lastKey })
      .resolvesOnce({ Items: [other] });

    const pending = await tasks.listPending();

    expect(pending).toEqual([TASK, other]);
    expect(dbMock).toHaveReceivedNthSpecificCommandWith(1, QueryCommand, {
      TableName: TABLE,
      IndexName: 'pending',
      KeyConditionExpression: 'pendingPk = :p',
      ExpressionAttributeValues: { ':p': 'PENDING' },
    });
    expect(dbMock).toHaveReceivedNthSpecificCommandWith(2, QueryCommand, { ExclusiveStartKey: lastKey });
  });
});
