import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import {
  GetCommand,
  paginateQuery,
  PutCommand,
  QueryCommand,
  type DynamoDBDocumentClient,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { AuditConflictError } from './errors';

/**
 * Key layout of the audit table. The state machine writes the run's final status with the same
 * layout through `dynamodb:updateItem` (see statemachines/ami-pipeline.asl.yml), so keep both in step.
 *
 * | item      | pk                 | sk                          | gsi1 (by resource / run)         | gsi2 (by environment + time)        |
 * |-----------|--------------------|-----------------------------|----------------------------------|-------------------------------------|
 * | run       | APP#<appId>        | RUN#<startedAt>#<runId>     | RUN#<runId> / RUN                | ENV#<env> / <startedAt>#RUN#<runId> |
 * | event     | RUN#<runId>        | EVENT#<at>#<type>           |                                  |                                     |
 * | resource  | RUN#<runId>        | RESOURCE#<type>#<id>        | RESOURCE#<id> / <at>#<runId>     | ENV#<env> / <at>#RESOURCE#<id>      |
 * | rejection | REJECTED#<env>     | <receivedAt>#<messageId>    |                                  | ENV#<env> / <at>#REJECTED#<msgId>   |
 */
export const auditKeys = {
  run: (appId: string, startedAt: string, runId: string) => ({
    pk: `APP#${appId}`,
    sk: `RUN#${startedAt}#${runId}`,
  }),
  runEvents: (runId: string) => `RUN#${runId}`,
  rejections: (environment: string) => `REJECTED#${environment}`,
  /** The live release of an app (the one pointer that moves; shared/release/live.ts). */
  live: (environment: string, appId: string) => ({ pk: `LIVE#${environment}`, sk: `APP#${appId}` }),
} as const;

export const AUDIT_INDEXES = { byResource: 'byResource', byEnvironment: 'byEnvironment' } as const;

export type RunStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED';

export interface RunStarted {
  runId: string;
  appId: string;
  environment: string;
  version: string;
  buildId: string;
  kind: string;
  requestedBy: string;
  executionArn: string;
  startedAt: string;
}

export interface RunEvent {
  runId: string;
  type: string;
  at: string;
  stage: string;
  /** Distinguishes events of one type at the same instant (a command id, a resource id). */
  id?: string;
  detail?: Record<string, unknown>;
}

export interface ResourceRecord {
  runId: string;
  appId: string;
  environment: string;
  executionArn: string;
  buildId: string;
  version: string;
  /** e.g. PARAMETER, AMI, SNAPSHOT, KMS_GRANT, LAUNCH_TEMPLATE … */
  resourceType: string;
  resourceId: string;
  createdAt: string;
  detail?: Record<string, unknown>;
}

export interface Rejection {
  environment: string;
  messageId: string;
  receivedAt: string;
  topicArn: string;
  reason: string;
  violations: readonly string[];
  appId?: string | undefined;
  buildId?: string | undefined;
  /** SHA-256 of the raw message; the message itself is kept whole in the rejections queue. */
  messageSha256: string;
  /** The first bytes of the raw message, enough to recognise it. */
  excerpt: string;
  queueMessageId: string;
}

/**
 * Append-only writes to the audit table: every put is conditional on the item not existing, and no
 * code path deletes. When the item exists, the write is a Lambda retry of the same fact and is
 * accepted — except for a run item held by a different execution, which is an AuditConflictError.
 * (Event, resource and rejection keys already name their fact: run id, resource id, message id.)
 */
export class AuditRepository {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async recordRunStarted(run: RunStarted): Promise<void> {
    const key = auditKeys.run(run.appId, run.startedAt, run.runId);
    await this.putOnce(
      {
        ...key,
        entity: 'RUN',
        ...run,
        status: 'RUNNING' satisfies RunStatus,
        gsi1pk: `RUN#${run.runId}`,
        gsi1sk: 'RUN',
        gsi2pk: `ENV#${run.environment}`,
        gsi2sk: `${run.startedAt}#RUN#${run.runId}`,
      },
      (existing) => existing.executionArn === run.executionArn,
    );
  }

  /**
   * Records an event once per (run, type, id): a retried step (a Lambda retry after a lost
   * answer, a redelivered completion, a retried state) finds the event its first attempt wrote
   * and keeps that one, timestamp included, instead of adding a second under a new time. The check
   * is a strongly consistent read of the run's own events (a few dozen items), or `known`: the
   * run's events as the caller has just read them (eventsOf).
   */
  async recordEvent(event: RunEvent, known?: readonly Record<string, unknown>[]): Promise<void> {
    const recorded = known
      ? known.some((i) => i.type === event.type && i.id === event.id)
      : await this.hasEvent(event);
    if (recorded) return;
    await this.putOnce(
      {
        pk: auditKeys.runEvents(event.runId),
        sk: `EVENT#${event.at}#${event.type}${event.id ? `#${event.id}` : ''}`,
        entity: 'EVENT',
        ...event,
      },
      () => true,
    );
  }

  async recordResource(resource: ResourceRecord): Promise<void> {
    await this.putOnce(
      {
        pk: auditKeys.runEvents(resource.runId),
        sk: `RESOURCE#${resource.resourceType}#${resource.resourceId}`,
        entity: 'RESOURCE',
        ...resource,
        gsi1pk: `RESOURCE#${resource.resourceId}`,
        gsi1sk: `${resource.createdAt}#${resource.runId}`,
        gsi2pk: `ENV#${resource.environment}`,
        gsi2sk: `${resource.createdAt}#RESOURCE#${resource.resourceId}`,
      },
      (existing) => existing.runId === resource.runId,
    );
  }

  /** The run item for a run id (one Query on byResource, where runs are keyed `RUN#<runId>`). */
  async findRun(runId: string): Promise<Record<string, unknown> | undefined> {
    const { Items } = await this.db.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: AUDIT_INDEXES.byResource,
        KeyConditionExpression: 'gsi1pk = :pk AND gsi1sk = :sk',
        ExpressionAttributeValues: { ':pk': `RUN#${runId}`, ':sk': 'RUN' },
      }),
    );
    return Items?.[0];
  }

  /** The run id of an app's live release in an environment, if it has one (consistent read). */
  async liveRunId(environment: string, appId: string): Promise<string | undefined> {
    const out = await this.db.send(
      new GetCommand({
        TableName: this.tableName,
        Key: auditKeys.live(environment, appId),
        ConsistentRead: true,
      }),
    );
    return typeof out?.Item?.runId === 'string' ? out.Item.runId : undefined;
  }

  /** Every app's live release in an environment (one Query on `LIVE#<env>`, all pages). */
  async liveReleases(environment: string): Promise<Record<string, unknown>[]> {
    return this.queryAll({
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': `LIVE#${environment}` },
    });
  }

  /** Resources a run recorded, optionally of one type. */
  async resourcesOf(runId: string, resourceType?: string): Promise<ResourceRecord[]> {
    return (await this.queryRun(
      runId,
      resourceType ? `RESOURCE#${resourceType}#` : 'RESOURCE#',
    )) as unknown as ResourceRecord[];
  }

  /** A run's events, oldest first. */
  async eventsOf(runId: string): Promise<Record<string, unknown>[]> {
    return this.queryRun(runId, 'EVENT#');
  }

  /** Whether the run already has this event (same type and id; an event without id is one per type). */
  private async hasEvent(event: RunEvent): Promise<boolean> {
    const pages = paginateQuery(
      { client: this.db },
      {
        TableName: this.tableName,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        FilterExpression: event.id === undefined ? '#type = :type' : '#type = :type AND #id = :id',
        ExpressionAttributeNames: { '#type': 'type', ...(event.id === undefined ? {} : { '#id': 'id' }) },
        ExpressionAttributeValues: {
          ':pk': auditKeys.runEvents(event.runId),
          ':prefix': 'EVENT#',
          ':type': event.type,
          ...(event.id === undefined ? {} : { ':id': event.id }),
        },
        ConsistentRead: true,
      },
    );
    for await (const page of pages) {
      // Checked here too: the filter is the table's, the decision is ours.
      if ((page?.Items ?? []).some((i) => i.type === event.type && i.id === event.id)) return true;
    }
    return false;
  }

  /** Every item of a run's partition whose sort key starts with `prefix`, all pages. */
  private async queryRun(runId: string, prefix: string): Promise<Record<string, unknown>[]> {
    return this.queryAll({
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
      ExpressionAttributeValues: { ':pk': auditKeys.runEvents(runId), ':prefix': prefix },
    });
  }

  private async queryAll(
    params: Pick<QueryCommandInput, 'KeyConditionExpression' | 'ExpressionAttributeValues'>,
  ): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    for await (const page of paginateQuery({ client: this.db }, { TableName: this.tableName, ...params })) {
      items.push(...(page.Items ?? []));
    }
    return items;
  }

  async recordRejection(rejection: Rejection): Promise<void> {
    await this.putOnce(
      {
        pk: auditKeys.rejections(rejection.environment),
        sk: `${rejection.receivedAt}#${rejection.messageId}`,
        entity: 'REJECTION',
        status: 'REJECTED',
        ...rejection,
        gsi2pk: `ENV#${rejection.environment}`,
        gsi2sk: `${rejection.receivedAt}#REJECTED#${rejection.messageId}`,
      },
      () => true,
    );
  }

  /** Puts an item that must not exist yet; when it does, `sameFact` decides retry (ok) vs conflict. */
  private async putOnce(
    item: Record<string, unknown> & { pk: string; sk: string },
    sameFact: (existing: Record<string, unknown>) => boolean,
  ): Promise<void> {
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.tableName,
          Item: item,
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      const { Item: existing } = await this.db.send(
        new GetCommand({
          TableName: this.tableName,
          Key: { pk: item.pk, sk: item.sk },
          ConsistentRead: true,
        }),
      );
      if (!existing || !sameFact(existing)) {
        throw new AuditConflictError(
          `audit item ${item.pk} / ${item.sk} already exists with different content`,
          {
            cause: err,
          },
        );
      }
    }
  }
}
