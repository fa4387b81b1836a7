import { paginateQuery, type DynamoDBDocumentClient, type QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import { AUDIT_INDEXES, AuditRepository, auditKeys } from '../shared/audit';

export type Item = Record<string, unknown>;

export interface Window {
  /** ISO timestamps, inclusive. */
  since?: string | undefined;
  until?: string | undefined;
}

/**
 * A sort-key condition for a time window on keys `<prefix><ISO time>…`. DynamoDB refuses an empty
 * string as a key value (dynalite does not), so an open start is a one-sided condition.
 */
const sortKeyRange = (prefix: string, window: Window, attribute = 'sk') => {
  const from = `${prefix}${window.since ?? ''}`;
  const to = `${prefix}${window.until ?? ''}${HIGH}`;
  return from
    ? { condition: `${attribute} BETWEEN :from AND :to`, values: { ':from': from, ':to': to } }
    : { condition: `${attribute} <= :to`, values: { ':to': to } };
};

/** Per-run reads run this many at a time. */
export const PER_RUN_CONCURRENCY = 8;

/** Sorts after every character a key uses, so `<prefix><until>~` bounds all of `until`'s items. */
const HIGH = '~';

/**
 * The auditors' questions, each one or more DynamoDB Queries on the audit table and its indexes —
 * never a Scan — read page by page. Every question's cost grows with its answer, not the table.
 */
export class AuditReader {
  /** The workers' own reads of the same table (one definition of each key layout). */
  private readonly repository: AuditRepository;

  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly table: string,
  ) {
    this.repository = new AuditRepository(db, table);
  }

  /** Runs of an app, newest first, in a time window, optionally of one environment. */
  async runsOfApp(
    appId: string,
    options: Window & { environment?: string; limit?: number } = {},
  ): Promise<Item[]> {
    const { pk } = auditKeys.run(appId, '', '');
    const range = sortKeyRange('RUN#', options);
    return this.query(
      {
        KeyConditionExpression: `pk = :pk AND ${range.condition}`,
        ExpressionAttributeValues: {
          ':pk': pk,
          ...range.values,
          ...(options.environment ? { ':env': options.environment } : {}),
        },
        ...(options.environment
          ? { FilterExpression: '#env = :env', ExpressionAttributeNames: { '#env': 'environment' } }
          : {}),
        ScanIndexForward: false,
      },
      options.limit,
    );
  }

  /**
   * An app's runs (as `runsOfApp`), each with everything its partition holds: one Query for the
   * runs, then one small Query per run, a few at a time — the cost of the answer, not the table.
   */
  async runsWithItems(
    appId: string,
    options: Window & { environment?: string; limit?: number } = {},
  ): Promise<{ run: Item; items: Item[] }[]> {
    const runs = await this.runsOfApp(appId, options);
    return mapLimit(runs, PER_RUN_CONCURRENCY, async (run) => ({
      run,
      items: await this.runItems(String(run.runId)),
    }));
  }

  /** The run item of a run id (byResource, where runs are keyed `RUN#<runId>`). */
  async run(runId: string): Promise<Item | undefined> {
    return this.repository.findRun(runId);
  }

  /** Everything a run recorded (events and resources), in key order. */
  async runItems(runId: string, prefix = ''): Promise<Item[]> {
    return this.query({
      KeyConditionExpression: prefix ? 'pk = :pk AND begins_with(sk, :prefix)' : 'pk = :pk',
      ExpressionAttributeValues: {
        ':pk': auditKeys.runEvents(runId),
        ...(prefix ? { ':prefix': prefix } : {}),
      },
    });
  }

  /** The resource records of an id (`ami-…`, `lt-…`, a target group ARN …), oldest first. */
  async resource(resourceId: string): Promise<Item[]> {
    return this.query({
      IndexName: AUDIT_INDEXES.byResource,
      KeyConditionExpression: 'gsi1pk = :pk',
      ExpressionAttributeValues: { ':pk': `RESOURCE#${resourceId}` },
    });
  }

  /** The live release of every app in an environment. */
  async live(environment: string): Promise<Item[]> {
    return this.repository.liveReleases(environment);
  }

  /** Rejected trigger messages of an environment, newest first. */
  async rejected(environment: string, options: Window & { limit?: number } = {}): Promise<Item[]> {
    const range = sortKeyRange('', options);
    return this.query(
      {
        KeyConditionExpression: `pk = :pk AND ${range.condition}`,
        ExpressionAttributeValues: { ':pk': auditKeys.rejections(environment), ...range.values },
        ScanIndexForward: false,
      },
      options.limit,
    );
  }

  /**
   * Everything recorded in an environment in a time window, across apps — runs, resources and
   * rejections, oldest first (the byEnvironment index, keyed `ENV#<env>` / `<at>#<kind>#<id>`).
   */
  async environment(environment: string, options: Window & { limit?: number } = {}): Promise<Item[]> {
    const range = sortKeyRange('', options, 'gsi2sk');
    return this.query(
      {
        IndexName: AUDIT_INDEXES.byEnvironment,
        KeyConditionExpression: `gsi2pk = :pk AND ${range.condition}`,
        ExpressionAttributeValues: { ':pk': `ENV#${environment}`, ...range.values },
      },
      options.limit,
    );
  }

  /** Every page of a Query (up to `limit` items). */
  private async query(input: Omit<QueryCommandInput, 'TableName'>, limit?: number): Promise<Item[]> {
    const items: Item[] = [];
    const pages = paginateQuery(
      { client: this.db, ...(limit ? { pageSize: Math.min(Math.max(limit, 25), 1000) } : {}) },
      { TableName: this.table, ...input },
    );
    for await (const page of pages) {
      items.push(...(page.Items ?? []));
      if (limit !== undefined && items.length >= limit) return items.slice(0, limit);
    }
    return items;
  }
}

/** Runs `fn` over `items` with at most `concurrency` at a time, keeping order. */
export const mapLimit = async <T, R>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> => {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
};
