import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

/**
 * A run's approval in the coordination table, `APPROVAL#<runId>`: the task token AwaitApproval
 * waits on while the item is PENDING, then who decided what, when and why. `expiresAt` is the
 * table's TTL attribute (epoch seconds), a week after the deadline, so a late decision still finds
 * the item (and is told 410) and a decided item can be looked at for a while.
 */
export type ApprovalStatus = 'PENDING' | 'APPROVED' | 'REJECTED' | 'EXPIRED';

export interface ApprovalItem {
  pk: string;
  kind: 'APPROVAL';
  runId: string;
  appId: string;
  environment: string;
  executionArn: string;
  status: ApprovalStatus;
  /** Present while PENDING only: removed once a decision has reached Step Functions. */
  taskToken?: string;
  requestedAt: string;
  /** When AwaitApproval times out (ISO): after it, the task can no longer be answered. */
  deadline: string;
  expiresAt: number;
  /** When the APPROVAL_REQUESTED notification went out (a retried request does not send it twice). */
  notifiedAt?: string;
  decidedBy?: string;
  decidedAt?: string;
  reason?: string;
}

/** Everything about an approval but its token: what may be logged, returned or shown. */
export type PublicApproval = Omit<ApprovalItem, 'taskToken'>;

export const approvalKey = (runId: string) => ({ pk: `APPROVAL#${runId}` });

/** The item without its task token. */
export const withoutToken = (item: ApprovalItem): PublicApproval => {
  const { taskToken: _token, ...rest } = item;
  return rest;
};

/** How long an approval item is kept after its deadline (DynamoDB TTL), as the token stages keep theirs. */
export const APPROVAL_RETENTION_SECONDS = 7 * 24 * 3600;

export interface PendingApproval {
  runId: string;
  appId: string;
  environment: string;
  executionArn: string;
  taskToken: string;
  requestedAt: string;
  deadline: string;
  expiresAt: number;
}

export class ApprovalStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async get(runId: string): Promise<ApprovalItem | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: approvalKey(runId), ConsistentRead: true }),
    );
    return Item as ApprovalItem | undefined;
  }

  /**
   * Parks the token of an AwaitApproval attempt: a new item, or the same run's pending (or expired:
   * a retried attempt after a lost answer) item with the new token and deadline. The first
   * request's time and notification are kept. Returns the item, or `undefined` when the run's
   * approval is decided already (APPROVED or REJECTED), which this never overwrites.
   */
  async putPending(request: PendingApproval): Promise<ApprovalItem | undefined> {
    try {
      const { Attributes } = await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: approvalKey(request.runId),
          UpdateExpression:
            'SET kind = :kind, runId = :runId, appId = :appId, environment = :environment, ' +
            'executionArn = :executionArn, #status = :pending, taskToken = :token, ' +
            'requestedAt = if_not_exists(requestedAt, :requestedAt), deadline = :deadline, expiresAt = :expiresAt',
          ConditionExpression: 'attribute_not_exists(pk) OR #status IN (:pending, :expired)',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':kind': 'APPROVAL',
            ':runId': request.runId,
            ':appId': request.appId,
            ':environment': request.environment,
            ':executionArn': request.executionArn,
            ':pending': 'PENDING',
            ':expired': 'EXPIRED',
            ':token': request.taskToken,
            ':requestedAt': request.requestedAt,
            ':deadline': request.deadline,
            ':expiresAt': request.expiresAt,
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return Attributes as ApprovalItem;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return undefined;
      throw err;
    }
  }

  async markNotified(runId: string, at: string): Promise<void> {
    await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: approvalKey(runId),
        UpdateExpression: 'SET notifiedAt = :at',
        ExpressionAttributeValues: { ':at': at },
      }),
    );
  }

  /**
   * Records a decision on the pending approval that holds `taskToken` (once: a second decision, or
   * one racing a retried request's new token, fails the condition). Returns false when it did.
   */
  async decide(
    runId: string,
    taskToken: string,
    decision: { status: 'APPROVED' | 'REJECTED'; decidedBy: string; decidedAt: string; reason?: string },
  ): Promise<boolean> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: approvalKey(runId),
          UpdateExpression:
            'SET #status = :decision, decidedBy = :by, decidedAt = :at' +
            (decision.reason === undefined ? '' : ', reason = :reason'),
          ConditionExpression: '#status = :pending AND taskToken = :token',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':decision': decision.status,
            ':by': decision.decidedBy,
            ':at': decision.decidedAt,
            ':pending': 'PENDING',
            ':token': taskToken,
            ...(decision.reason === undefined ? {} : { ':reason': decision.reason }),
          },
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  /** The decision reached Step Functions: the token is of no further use, so it is not kept. */
  async forgetToken(runId: string): Promise<void> {
    await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: approvalKey(runId),
        UpdateExpression: 'REMOVE taskToken',
        ConditionExpression: '#status <> :pending',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':pending': 'PENDING' },
      }),
    );
  }

  /**
   * Puts a decided approval back to PENDING (Step Functions could not be told, for a reason worth
   * trying again): only the decision this caller made, still holding the same token.
   */
  async undoDecision(runId: string, taskToken: string, decidedAt: string): Promise<void> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: approvalKey(runId),
          UpdateExpression: 'SET #status = :pending REMOVE decidedBy, decidedAt, reason',
          ConditionExpression: 'taskToken = :token AND decidedAt = :at',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':pending': 'PENDING', ':token': taskToken, ':at': decidedAt },
        }),
      );
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
    }
  }

  /**
   * The run no longer waits (its state timed out, or the execution ended): the approval is EXPIRED
   * and its token dropped. Only from PENDING, or from a decision Step Functions refused as too late.
   */
  async expire(runId: string, at: string): Promise<void> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: approvalKey(runId),
          UpdateExpression: 'SET #status = :expired, expiredAt = :at REMOVE taskToken',
          ConditionExpression: 'attribute_exists(pk) AND attribute_exists(taskToken)',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':expired': 'EXPIRED', ':at': at },
        }),
      );
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
    }
  }
}
