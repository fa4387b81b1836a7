// First import: the handler module reads its environment (requireEnv) when it is loaded.
import { TEST_ENV } from './support/env';
import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  ProvisionedThroughputExceededException,
} from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { run } from '../../functions/lock/handler';
import { InvalidTaskInputError, LockHeldError } from '../../shared/errors';
import type { LockDeps } from '../../shared/lock';
import { EXECUTION_ARN_PREFIX } from './support/fixtures';

const dbMock = mockClient(DynamoDBDocumentClient);

const NOW = new Date('2025-03-04T10:00:05.000Z');
const NOW_EPOCH = NOW.getTime() / 1000;
const TTL_SECONDS = 43200;
const MY_EXECUTION = `${EXECUTION_ARN_PREFIX}:sample-app-dev-aaaaaaaaaaaaaaaaaaaa`;
const OTHER_EXECUTION = `${EXECUTION_ARN_PREFIX}:sample-app-dev-bbbbbbbbbbbbbbbbbbbb`;

const deps: LockDeps = {
  db: DynamoDBDocumentClient.from(new DynamoDBClient({})),
  tableName: TEST_ENV.COORDINATION_TABLE,
  ttlSeconds: TTL_SECONDS,
  now: () => NOW,
};

const request = {
  appId: 'sample-app',
  environment: 'dev',
  runId: 'aaaaaaaaaaaaaaaaaaaa',
  executionArn: MY_EXECUTION,
};

const conditionFailed = () =>
  new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });

afterEach(() => {
  dbMock.reset();
});

describe('lock worker', () => {
  it('takes a free lock with a conditional put that also admits its own holder and an expired lock', async () => {
    dbMock.on(PutCommand).resolves({});

    const result = await run(request, deps);

    expect(result).toEqual({ lockedAt: NOW.toISOString(), expiresAt: NOW_EPOCH + TTL_SECONDS });
    expect(dbMock).toHaveReceivedCommandTimes(PutCommand, 1);
    expect(dbMock).toHaveReceivedCommandWith(PutCommand, {
      TableName: TEST_ENV.COORDINATION_TABLE,
      Item: {
        pk: 'LOCK#sample-app#dev',
        kind: 'LOCK',
        holder: MY_EXECUTION,
        runId: 'aaaaaaaaaaaaaaaaaaaa',
        lockedAt: NOW.toISOString(),
        expiresAt: NOW_EPOCH + TTL_SECONDS,
      },
      ConditionExpression: 'attribute_not_exists(pk) OR holder = :me OR expiresAt < :now',
      ExpressionAttributeValues: { ':me': MY_EXECUTION, ':now': NOW_EPOCH },
    });
    expect(dbMock).toHaveReceivedCommandTimes(GetCommand, 0);
  });

  it('keeps one lock per app and environment', async () => {
    dbMock.on(PutCommand).resolves({});

    await run({ ...request, environment: 'prod' }, deps);

    expect(dbMock).toHaveReceivedCommandWith(PutCommand, {
      Item: expect.objectContaining({ pk: 'LOCK#sample-app#prod' }),
    });
  });

  it('throws LockHeldError naming the run and execution that hold the lock', async () => {
    dbMock.on(PutCommand).rejects(conditionFailed());
    dbMock.on(GetCommand).resolves({
      Item: {
        pk: 'LOCK#sample-app#dev',
        holder: OTHER_EXECUTION,
        runId: 'bbbbbbbbbbbbbbbbbbbb',
        lockedAt: '2025-03-04T09:30:00.000Z',
        expiresAt: NOW_EPOCH + 1000,
      },
    });

    const attempt = run(request, deps);

    await expect(attempt).rejects.toThrow(LockHeldError);
    await expect(attempt).rejects.toThrow(
      `sample-app in dev is locked by run bbbbbbbbbbbbbbbbbbbb (${OTHER_EXECUTION}) since 2025-03-04T09:30:00.000Z`,
    );
    await expect(attempt).rejects.toHaveProperty('name', 'LockHeldError');
    await expect(attempt).rejects.toHaveProperty('cause', expect.any(ConditionalCheckFailedException));
    expect(dbMock).toHaveReceivedCommandWith(GetCommand, {
      TableName: TEST_ENV.COORDINATION_TABLE,
      Key: { pk: 'LOCK#sample-app#dev' },
      ConsistentRead: true,
    });
  });

  it('still throws LockHeldError when the holder vanished between the put and the read', async () => {
    dbMock.on(PutCommand).rejects(conditionFailed());
    dbMock.on(GetCommand).resolves({});

    await expect(run(request, deps)).rejects.toThrow(LockHeldError);
  });

  it('propagates errors other than a failed condition without reading the holder', async () => {
    const throttled = new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} });
    dbMock.on(PutCommand).rejects(throttled);

    await expect(run(request, deps)).rejects.toBe(throttled);
    expect(dbMock).toHaveReceivedCommandTimes(GetCommand, 0);
  });

  it('refuses a task input without an execution ARN as InvalidTaskInputError', async () => {
    const attempt = run({ ...request, executionArn: 'sample-app-dev' }, deps);

    await expect(attempt).rejects.toThrow(InvalidTaskInputError);
    await expect(attempt).rejects.toThrow(/executionArn/);
    expect(dbMock).toHaveReceivedCommandTimes(PutCommand, 0);
  });
});
