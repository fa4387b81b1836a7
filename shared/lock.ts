import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { LockHeldError } from './errors';

export interface LockRequest {
  appId: string;
  environment: string;
  runId: string;
  executionArn: string;
}

export interface LockDeps {
  db: DynamoDBDocumentClient;
  tableName: string;
  ttlSeconds: number;
  now: () => Date;
}

/** Coordination-table key of the one-run-per-app+environment lock; ReleaseLock in the ASL uses the same. */
export const lockKey = (appId: string, environment: string) => ({ pk: `LOCK#${appId}#${environment}` });

/**
 * Takes the app+environment lock with a conditional write. Succeeds when the lock is free, already
 * ours (a retried or redriven execution) or abandoned (past its expiry: its run died without
 * releasing it; DynamoDB TTL would remove it too, but only eventually). Otherwise throws
 * LockHeldError naming the holder, and the state machine's Retry waits.
 */
export const acquireLock = async (
  req: LockRequest,
  deps: LockDeps,
): Promise<{ lockedAt: string; expiresAt: number }> => {
  const now = deps.now();
  const nowEpoch = Math.floor(now.getTime() / 1000);
  const expiresAt = nowEpoch + deps.ttlSeconds;
  try {
    await deps.db.send(
      new PutCommand({
        TableName: deps.tableName,
        Item: {
          ...lockKey(req.appId, req.environment),
          kind: 'LOCK',
          holder: req.executionArn,
          runId: req.runId,
          lockedAt: now.toISOString(),
          expiresAt,
        },
        ConditionExpression: 'attribute_not_exists(pk) OR holder = :me OR expiresAt < :now',
        ExpressionAttributeValues: { ':me': req.executionArn, ':now': nowEpoch },
      }),
    );
    return { lockedAt: now.toISOString(), expiresAt };
  } catch (err) {
    if (!(err instanceof ConditionalCheckFailedException)) throw err;
    const { Item: held } = await deps.db.send(
      new GetCommand({
        TableName: deps.tableName,
        Key: lockKey(req.appId, req.environment),
        ConsistentRead: true,
      }),
    );
    throw new LockHeldError(
      `${req.appId} in ${req.environment} is locked by run ${String(held?.runId ?? 'unknown')} ` +
        `(${String(held?.holder ?? 'unknown execution')}) since ${String(held?.lockedAt ?? 'unknown')}`,
      { cause: err },
    );
  }
};
