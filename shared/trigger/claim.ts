import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

/**
 * One start per build, counted once. Step Functions answers an identical StartExecution for a
 * running execution with success, so several deliveries of one message arriving together would each
 * see a start (and log one). Before StartExecution a trigger invocation therefore claims the
 * execution name in the coordination table with a conditional write; the deliveries that find it
 * claimed report DUPLICATE (or wait for the holder to start).
 *
 * The holder is the Lambda request id: Lambda keeps it across the async retries of one invocation,
 * so a retried invocation keeps its claim, and a duplicate delivery (another invocation) does not
 * get it. A holder that died before starting loses the claim when its lease ends.
 */
export interface TriggerClaimsOptions {
  db: DynamoDBDocumentClient;
  tableName: string;
  /** How long a holder that has not started yet keeps the claim (a few trigger timeouts). */
  leaseSeconds: number;
  /** How long a claim is kept (DynamoDB TTL): executions remember their names for 90 days anyway. */
  retentionSeconds: number;
}

export const triggerClaimKey = (executionName: string) => ({ pk: `TRIGGER#${executionName}` });

export class TriggerClaims {
  constructor(private readonly options: TriggerClaimsOptions) {}

  /**
   * Claims the execution name for this invocation. True when it is this invocation's to start: no
   * claim yet, already its own, or abandoned (lease over and never started). False when another
   * invocation holds it.
   */
  async claim(executionName: string, holder: string, now: Date): Promise<boolean> {
    const nowEpoch = Math.floor(now.getTime() / 1000);
    try {
      // An update, not a put: a holder claiming again (a Lambda retry) keeps what its earlier
      // attempt recorded, startedAt above all, so a started claim is never open to a takeover.
      await this.options.db.send(
        new UpdateCommand({
          TableName: this.options.tableName,
          Key: triggerClaimKey(executionName),
          UpdateExpression:
            'SET kind = :kind, holder = :me, claimedAt = if_not_exists(claimedAt, :at), leaseUntil = :lease, expiresAt = :expires',
          ConditionExpression:
            'attribute_not_exists(pk) OR holder = :me OR (attribute_not_exists(startedAt) AND leaseUntil < :now)',
          ExpressionAttributeValues: {
            ':kind': 'TRIGGER',
            ':me': holder,
            ':at': now.toISOString(),
            ':lease': nowEpoch + this.options.leaseSeconds,
            ':expires': nowEpoch + this.options.retentionSeconds,
            ':now': nowEpoch,
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
   * Marks the claim started, so it is never taken over (the execution exists now). False when the
   * claim is no longer this invocation's: it outlived its lease and another delivery took it over.
   */
  async started(executionName: string, holder: string, now: Date): Promise<boolean> {
    try {
      await this.options.db.send(
        new UpdateCommand({
          TableName: this.options.tableName,
          Key: triggerClaimKey(executionName),
          UpdateExpression: 'SET startedAt = :at',
          ConditionExpression: 'holder = :me',
          ExpressionAttributeValues: { ':at': now.toISOString(), ':me': holder },
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }
}
