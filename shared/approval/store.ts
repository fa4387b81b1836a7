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
  /**
   * When the decision reached the run: set by the decision once Step Functions took it, or by a
   * retried AwaitApproval request before it answers its new token with the decision. Once set, the
   * decision is never expired.
   */
  appliedAt?: string;
  /** Which path applied it: the approver's `decision`, or a retried `request`. */
  appliedBy?: 'decision' | 'request';
  expiredAt?: string;
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
            'requestedAt = if_not_exists(requestedAt, :requestedAt), deadline = :deadline, expiresAt = :expiresAt ' +
            // An earlier decision that never reached the run (expired) is not this attempt's.
            'REMOVE decidedBy, decidedAt, reason, expiredAt',
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

  /**
   * The decision reached Step Functions: it is applied (unless a retried request applied it first)
   * and the token is of no further use, so it is not kept.
   */
  async forgetToken(runId: string, at: string): Promise<void> {
    await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: approvalKey(runId),
        UpdateExpression:
          'SET appliedAt = if_not_exists(appliedAt, :at), appliedBy = if_not_exists(appliedBy, :by) REMOVE taskToken',
        ConditionExpression: '#status IN (:approved, :rejected)',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: {
          ':approved': 'APPROVED',
          ':rejected': 'REJECTED',
          ':at': at,
          ':by': 'decision',
        },
      }),
    );
  }

  /**
   * A retried AwaitApproval request is about to answer its new token with the recorded decision:
   * marks it applied first, so the approver's own answer to the old token, refused as gone, does not
   * expire it (expire's condition). Returns false when the decision is no longer there (it was
   * expired meanwhile: the request then parks its token and waits for a new decision).
   */
  async markApplied(
    runId: string,
    decided: { status: 'APPROVED' | 'REJECTED'; decidedAt: string },
    at: string,
  ): Promise<boolean> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: approvalKey(runId),
          UpdateExpression:
            'SET appliedAt = if_not_exists(appliedAt, :at), appliedBy = if_not_exists(appliedBy, :by)',
          ConditionExpression: '#status = :decision AND decidedAt = :decidedAt',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':decision': decided.status,
            ':decidedAt': decided.decidedAt,
            ':at': at,
            ':by': 'request',
          },
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  /**
   * Puts a decided approval back to PENDING (Step Functions could not be told, for a reason worth
   * trying again): only the decision this caller made, still holding the same token, and not one a
   * retried request applied meanwhile. Returns whether it put it back.
   */
  async undoDecision(runId: string, taskToken: string, decidedAt: string): Promise<boolean> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: approvalKey(runId),
          UpdateExpression: 'SET #status = :pending REMOVE decidedBy, decidedAt, reason',
          ConditionExpression: 'taskToken = :token AND decidedAt = :at AND attribute_not_exists(appliedAt)',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':pending': 'PENDING', ':token': taskToken, ':at': decidedAt },
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  /**
   * The token `mine` no longer answers (its state timed out, or the execution ended): the approval is
   * EXPIRED and its token dropped. Only while the item still holds that token in the status the
   * caller saw (PENDING past its deadline, or the caller's own decision Step Functions refused as too
   * late), and never once a decision was applied: a retried request that parked a newer token, or
   * that answered its new token with the decision, is left alone. Returns whether it expired it.
   */
  async expire(
    runId: string,
    mine: { taskToken: string; status: ApprovalStatus },
    at: string,
  ): Promise<boolean> {
    return this.expireIf(
      runId,
      'taskToken = :token AND #status = :seen AND attribute_not_exists(appliedAt)',
      { ':token': mine.taskToken, ':seen': mine.status },
      at,
    );
  }

  /**
   * The execution left AwaitApproval without an approval (it timed out, was rejected, or its success
   * was not verified): a still PENDING approval of that execution is EXPIRED and its token dropped.
   */
  async expirePending(runId: string, executionArn: string, at: string): Promise<boolean> {
    return this.expireIf(
      runId,
      '#status = :pending AND executionArn = :executionArn',
      { ':pending': 'PENDING', ':executionArn': executionArn },
      at,
    );
  }

  private async expireIf(
    runId: string,
    condition: string,
    values: Record<string, string>,
    at: string,
  ): Promise<boolean> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: approvalKey(runId),
          UpdateExpression: 'SET #status = :expired, expiredAt = :at REMOVE taskToken',
          ConditionExpression: condition,
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':expired': 'EXPIRED', ':at': at, ...values },
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }
}
