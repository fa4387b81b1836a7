import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, paginateScan } from '@aws-sdk/lib-dynamodb';
import Table from 'cli-table3';
import {
  auditApp,
  auditEnvironment,
  auditLive,
  auditRejected,
  auditResource,
  auditRun,
} from '../cli/commands/audit';
import { stageConfig } from '../cli/context';
import type { CommandResult } from '../cli/output';
import { AuditReader, type Item, type Window } from '../cli/queries';
import { parseWindow } from '../cli/time';
import type { StageConfig } from '../shared/config/stage';
import { generateSeed, SEED_APPS, type Seed, type SeedOptions } from '../test/cli/seed';
import { CREDENTIALS, seededDynamo, type WireRequest } from '../test/cli/support';
import { median, type BenchSection, type Target } from './section';

/**
 * Issue 7, section 3: the CLI's audit questions against a seeded audit table (dynalite, in a child
 * process on 127.0.0.1 and a random port — test/cli/support.ts), each answered twice through the
 * same command code (cli/commands/audit.ts): once by the real AuditReader (Queries), once by a
 * reader that answers the same reads with Scans + FilterExpression, paginated to the end. The two
 * answers are compared, so the Scan baseline answers exactly the same question.
 */

/** Items in the default seed (test/cli/seed.ts, 2,400 runs): the scale the seeds below start from. */
const DEFAULT_SEED_ITEMS = 52_843;
/** The Scan must take at least this many times the Query's median at the largest size. */
const MIN_SPEEDUP = 20;
/** Items read per item returned may grow at most this much from the smallest to the largest table. */
const MAX_AMPLIFICATION_GROWTH = 1.25;

/** What one pass of a question cost, from the responses (ScannedCount, Count, ConsumedCapacity). */
interface Cost {
  requests: number;
  operations: Record<string, number>;
  /** Responses that ended a page with LastEvaluatedKey (i.e. pages beyond the first of a read). */
  continued: number;
  /** Sum of ScannedCount: items DynamoDB read (before any FilterExpression). */
  read: number;
  /** Sum of Count: items returned. */
  returned: number;
  /** Response bytes (Content-Length). */
  bytes: number;
  /** ConsumedCapacity.CapacityUnits as dynalite computes it (ReturnConsumedCapacity: TOTAL). */
  capacity: number;
}

const emptyCost = (): Cost => ({
  requests: 0,
  operations: {},
  continued: 0,
  read: 0,
  returned: 0,
  bytes: 0,
  capacity: 0,
});

/**
 * A DocumentClient that adds every response's counts to `meter.cost` (a few µs a response), and
 * asks for ConsumedCapacity while `meter.capacity` is on (untimed passes only: dynalite then sizes
 * every item it reads).
 */
const meteredClient = (endpoint: string, region: string) => {
  const meter = { cost: emptyCost(), capacity: false };
  const client = new DynamoDBClient({ endpoint, region, credentials: CREDENTIALS });
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const result = await next(
        meter.capacity
          ? { ...args, input: { ...(args.input as object), ReturnConsumedCapacity: 'TOTAL' } }
          : args,
      );
      const output = result.output as {
        ScannedCount?: number;
        Count?: number;
        LastEvaluatedKey?: unknown;
        ConsumedCapacity?: { CapacityUnits?: number };
      };
      const headers = (result.response as { headers?: Record<string, string> }).headers ?? {};
      const cost = meter.cost;
      const operation = String(context.commandName).replace(/Command$/, '');
      cost.requests++;
      cost.operations[operation] = (cost.operations[operation] ?? 0) + 1;
      if (output.LastEvaluatedKey) cost.continued++;
      cost.read += output.ScannedCount ?? 0;
      cost.returned += output.Count ?? 0;
      cost.bytes += Number(headers['content-length'] ?? 0);
      cost.capacity += output.ConsumedCapacity?.CapacityUnits ?? 0;
      return result;
    },
    { step: 'initialize', name: 'benchCost' },
  );
  return {
    meter,
    // As the CLI's context builds it.
    db: DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } }),
    destroy: () => client.destroy(),
  };
};

/** Sorts after every character a key uses (as cli/queries.ts). */
const HIGH = '~';

/** DynamoDB orders string keys by bytes; these keys are ASCII, so code-unit order is the same. */
const byKeys =
  (keys: string[], descending = false) =>
  (a: Item, b: Item): number => {
    for (const key of keys) {
      const x = String(a[key] ?? '');
      const y = String(b[key] ?? '');
      if (x !== y) return (x < y ? -1 : 1) * (descending ? -1 : 1);
    }
    return 0;
  };

/**
 * The reads the audit commands make, answered by Scans with a FilterExpression over the whole table
 * and paginated to the end — what a table without the key design (or a naive reader) would do. It
 * is given every advantage: a run's item and its partition come from one Scan, an app's runs' items
 * from one more Scan (their ids in IN lists), so each question costs the fewest table passes.
 * Results are ordered as the Queries order them, so the commands build the same answer.
 */
class ScanReader {
  /** Full-table Scans this reader started (each paginated to the end). */
  scans = 0;
  private readonly stories = new Map<string, Promise<{ run: Item | undefined; items: Item[] }>>();

  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  private async scan(
    filter: string,
    values: Record<string, unknown>,
    names?: Record<string, string>,
  ): Promise<Item[]> {
    this.scans++;
    const items: Item[] = [];
    const pages = paginateScan(
      { client: this.db },
      {
        TableName: this.table,
        FilterExpression: filter,
        ExpressionAttributeValues: values,
        ...(names ? { ExpressionAttributeNames: names } : {}),
      },
    );
    for await (const page of pages) items.push(...(page.Items ?? []));
    return items;
  }

  /** `<attribute>` within a window, as cli/queries.ts `sortKeyRange` bounds it. */
  private static range(attribute: string, prefix: string, window: Window) {
    const from = `${prefix}${window.since ?? ''}`;
    const to = `${prefix}${window.until ?? ''}${HIGH}`;
    return window.since
      ? { condition: `${attribute} BETWEEN :from AND :to`, values: { ':from': from, ':to': to } }
      : { condition: `${attribute} <= :to`, values: { ':to': to } };
  }

  /** A run's item (byResource `RUN#<runId>`) and its partition (`RUN#<runId>`): one Scan. */
  private story(runId: string) {
    let story = this.stories.get(runId);
    if (!story) {
      const key = `RUN#${runId}`;
      story = this.scan('pk = :key OR (gsi1pk = :key AND gsi1sk = :run)', {
        ':key': key,
        ':run': 'RUN',
      }).then((items) => ({
        run: items.find((i) => i.gsi1pk === key && i.gsi1sk === 'RUN'),
        items: items.filter((i) => i.pk === key).sort(byKeys(['sk'])),
      }));
      this.stories.set(runId, story);
    }
    return story;
  }

  async run(runId: string): Promise<Item | undefined> {
    return (await this.story(runId)).run;
  }

  async runItems(runId: string, prefix = ''): Promise<Item[]> {
    return (await this.story(runId)).items.filter((i) => String(i.sk).startsWith(prefix));
  }

  async resource(resourceId: string): Promise<Item[]> {
    const items = await this.scan('gsi1pk = :pk', { ':pk': `RESOURCE#${resourceId}` });
    return items.sort(byKeys(['gsi1sk', 'pk', 'sk']));
  }

  async runsOfApp(appId: string, options: Window & { environment?: string; limit?: number } = {}) {
    const range = ScanReader.range('sk', 'RUN#', options);
    const runs = await this.scan(
      `pk = :pk AND ${range.condition}${options.environment ? ' AND #env = :env' : ''}`,
      {
        ':pk': `APP#${appId}`,
        ...range.values,
        ...(options.environment ? { ':env': options.environment } : {}),
      },
      options.environment ? { '#env': 'environment' } : undefined,
    );
    runs.sort(byKeys(['sk'], true));
    return options.limit ? runs.slice(0, options.limit) : runs;
  }

  /** The runs, then every item of their partitions in one more Scan (`pk IN (…)`, 100 a list). */
  async runsWithItems(
    appId: string,
    options: Window & { environment?: string; limit?: number } = {},
  ): Promise<{ run: Item; items: Item[] }[]> {
    const runs = await this.runsOfApp(appId, options);
    const keys = runs.map((r) => `RUN#${String(r.runId)}`);
    const byPartition = new Map<string, Item[]>(keys.map((k) => [k, []]));
    // An expression is at most 4 KB: a few hundred keys a Scan.
    for (let start = 0; start < keys.length; start += 500) {
      const chunk = keys.slice(start, start + 500);
      const lists: string[] = [];
      for (let i = 0; i < chunk.length; i += 100) {
        lists.push(
          `pk IN (${chunk
            .slice(i, i + 100)
            .map((_, j) => `:k${i + j}`)
            .join(',')})`,
        );
      }
      const values = Object.fromEntries(chunk.map((k, j) => [`:k${j}`, k]));
      for (const item of await this.scan(lists.join(' OR '), values))
        byPartition.get(String(item.pk))?.push(item);
    }
    return runs.map((run) => ({
      run,
      items: (byPartition.get(`RUN#${String(run.runId)}`) ?? []).sort(byKeys(['sk'])),
    }));
  }

  async live(environment: string): Promise<Item[]> {
    return (await this.scan('pk = :pk', { ':pk': `LIVE#${environment}` })).sort(byKeys(['sk']));
  }

  async rejected(environment: string, options: Window & { limit?: number } = {}): Promise<Item[]> {
    const range = ScanReader.range('sk', '', options);
    const items = await this.scan(`pk = :pk AND ${range.condition}`, {
      ':pk': `REJECTED#${environment}`,
      ...range.values,
    });
    items.sort(byKeys(['sk'], true));
    return options.limit ? items.slice(0, options.limit) : items;
  }

  async environment(environment: string, options: Window & { limit?: number } = {}): Promise<Item[]> {
    const range = ScanReader.range('gsi2sk', '', options);
    const items = await this.scan(`gsi2pk = :pk AND ${range.condition}`, {
      ':pk': `ENV#${environment}`,
      ...range.values,
    });
    items.sort(byKeys(['gsi2sk', 'pk', 'sk']));
    return options.limit ? items.slice(0, options.limit) : items;
  }
}

interface Question {
  id: string;
  /** The command line it stands for. */
  cli: string;
  /** The arguments picked from the seed's ground truth. */
  args: Record<string, unknown>;
  answer: (reader: AuditReader) => Promise<CommandResult>;
  /** Throws when the answer does not match the seed's ground truth; returns its size (rows). */
  check: (result: CommandResult) => number;
}

const fail = (message: string): never => {
  throw new Error(`audit bench: ${message}`);
};

const expectCount = (what: string, actual: number, expected: number): number =>
  actual === expected ? actual : fail(`${what}: ${actual} rows, the seed has ${expected}`);

/** The CLI's audit questions, with arguments picked from the seed's ground truth. */
const questionsFor = (seed: Seed): Question[] => {
  const env = 'prod';
  const live = seed.live.find((l) => l.appId === 'payments-api' && l.environment === env);
  if (!live) return fail('the seed has no live payments-api release in prod');
  // A run that failed late and was compensated (the longest kind of story), else any failed run.
  const ofApp = seed.runs.filter((r) => r.appId === 'payments-api' && r.environment === env).reverse();
  const failed =
    ofApp.find((r) => r.failedStage === 'TrafficShift') ?? ofApp.find((r) => r.failedStage) ?? ofApp[0];
  if (!failed) return fail('the seed has no payments-api run in prod');
  const app = 'orders-web';
  const appWindow = parseWindow({ since: '30d' }, seed.now);
  const rejectedWindow = parseWindow({ since: '90d' }, seed.now);
  const envWindow = parseWindow({ since: '90d' }, seed.now);
  // `audit env` without --since: the CLI's default window.
  const envDefaultWindow = parseWindow({ since: '7d' }, seed.now);
  const inWindow = (at: string, window: Window) =>
    (!window.since || at >= window.since) && (!window.until || at <= window.until);
  const envQuestion = (id: string, cli: string, window: Window): Question => ({
    id,
    cli,
    args: { environment: env, ...window },
    answer: (reader) => auditEnvironment(reader, env, window),
    check: (result) => {
      const data = result.data as { runs: unknown[]; rejected: unknown[] };
      expectCount(
        `rejected in ${env} (${cli})`,
        data.rejected.length,
        seed.rejections.filter((r) => r.environment === env && inWindow(r.receivedAt, window)).length,
      );
      // A run is in the window by its start (a run that failed before PreProvision has its item too).
      return expectCount(
        `runs in ${env} (${cli})`,
        data.runs.length,
        seed.runs.filter((r) => r.environment === env && inWindow(r.startedAt, window)).length,
      );
    },
  });
  return [
    {
      id: 'resource',
      cli: `audit resource <live payments-api AMI in ${env}>`,
      args: { resourceId: live.amiId },
      answer: (reader) => auditResource(reader, live.amiId),
      check: (result) => {
        const runs = (result.data as { runs: { run: { runId: string } }[] }).runs;
        const expected = seed.runsWithResource(live.amiId).map((r) => r.runId);
        if (JSON.stringify(runs.map((r) => r.run.runId)) !== JSON.stringify(expected)) {
          fail(`resource ${live.amiId}: runs ${runs.map((r) => r.run.runId).join()} ≠ ${expected.join()}`);
        }
        return (result.data as { resource: unknown[] }).resource.length;
      },
    },
    {
      id: 'run',
      cli: `audit run <${env} run failed at ${failed.failedStage ?? '(none)'}>`,
      args: { runId: failed.runId },
      answer: (reader) => auditRun(reader, failed.runId),
      check: (result) =>
        expectCount(
          `run ${failed.runId} timeline`,
          (result.data as { timeline: unknown[] }).timeline.length,
          failed.events.length + failed.resources.length,
        ),
    },
    {
      id: 'app',
      cli: `audit app ${app} --env ${env} --since 30d`,
      args: { appId: app, environment: env, ...appWindow },
      answer: (reader) => auditApp(reader, app, { ...appWindow, environment: env }),
      check: (result) =>
        expectCount(
          `runs of ${app}`,
          (result.data as unknown[]).length,
          seed.runsOf(app, { environment: env, ...appWindow }).length,
        ),
    },
    {
      id: 'live',
      cli: `audit live --env ${env}`,
      args: { environment: env },
      answer: (reader) => auditLive(reader, env),
      check: (result) =>
        expectCount(
          `live in ${env}`,
          (result.data as unknown[]).length,
          seed.live.filter((l) => l.environment === env).length,
        ),
    },
    {
      id: 'rejected',
      cli: `audit rejected --env ${env} --since 90d`,
      args: { environment: env, ...rejectedWindow },
      answer: (reader) => auditRejected(reader, env, rejectedWindow),
      check: (result) =>
        expectCount(
          `rejected in ${env}`,
          (result.data as unknown[]).length,
          seed.rejections.filter((r) => r.environment === env && inWindow(r.receivedAt, rejectedWindow))
            .length,
        ),
    },
    envQuestion('env', `audit env --env ${env} --since 90d`, envWindow),
    envQuestion('env-7d', `audit env --env ${env} (default: 7d)`, envDefaultWindow),
  ];
};

/** JSON with sorted keys: the Query and Scan answers compared whatever their attribute order. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );

/** Seed options that scale the default seed (apps' release rates, rejections) to about `items`. */
const scaledSeed = (stage: StageConfig, items: number): SeedOptions => {
  const options = (factor: number): SeedOptions => ({
    apps: SEED_APPS.map((app) => ({ ...app, runsPerEnv: Math.max(2, Math.round(app.runsPerEnv * factor)) })),
    rejectionsPerEnv: Math.max(2, Math.round(40 * factor)),
  });
  // One correction: the mix of outcomes (and so items per run) shifts a little with the run count.
  const first = items / DEFAULT_SEED_ITEMS;
  const generated = generateSeed(stage, options(first)).items;
  return options((first * items) / generated);
};

const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

interface QuestionFigures {
  id: string;
  cli: string;
  args: Record<string, unknown>;
  /** Rows in the answer (runs, releases, rejections, resource records, timeline entries). */
  rows: number;
  /** The Scan-based answer equals the CLI's (compared as canonical JSON). */
  sameAnswerAsScan: boolean;
  query: {
    ms: number[];
    medianMs: number;
    /** Operations as they reached the emulator (its wire log). */
    wire: Record<string, number>;
    emptyKeyValues: string[];
    /** From the first (untimed, capacity-metered) pass. */
    cost: Cost;
    /** Items read per item returned. */
    amplification: number;
  };
  scan: {
    ms: number[];
    medianMs: number;
    /** Full-table Scans the answer took. */
    scans: number;
    /** From the first timed pass; capacity = scans × one full Scan's (a filter does not reduce it). */
    cost: Cost;
    amplification: number;
  };
  /** Scan median / Query median. */
  speedup: number;
  /** Scan capacity / Query capacity: what the ratio of read units would be on DynamoDB. */
  capacityRatio: number;
}

interface SizeFigures {
  requestedItems: number;
  items: number;
  runs: number;
  rejections: number;
  seedMs: number;
  seedOptions: SeedOptions;
  /** One full Scan of the table (Select COUNT): pages and read capacity (dynalite's sizing). */
  fullScan: { ms: number; pages: number; capacity: number };
  questions: QuestionFigures[];
}

const countOperations = (requests: readonly WireRequest[]) =>
  requests.reduce<Record<string, number>>(
    (acc, r) => ({ ...acc, [r.operation]: (acc[r.operation] ?? 0) + 1 }),
    {},
  );

/** Key-condition values DynamoDB refuses (an empty string), which dynalite accepts. */
const emptyKeyValues = (requests: readonly WireRequest[]) =>
  requests
    .filter((r) => r.operation === 'Query')
    .flatMap((r) => Object.entries((r.input.ExpressionAttributeValues ?? {}) as Record<string, unknown>))
    .filter(([, value]) => JSON.stringify(value) === '{"S":""}')
    .map(([name]) => name);

const measureSize = async (
  requestedItems: number,
  runs: number,
  scanRuns: number,
  log: (line: string) => void,
): Promise<SizeFigures> => {
  const seedOptions = scaledSeed(stageConfig('dev'), requestedItems);
  const env = await seededDynamo(seedOptions);
  const client = meteredClient(env.dynamo.endpoint, env.stage.region);
  const { meter, db } = client;
  /** Runs `fn` metered from a zero cost; returns its result, cost and duration. */
  const metered = async <T>(capacity: boolean, fn: () => Promise<T>) => {
    meter.cost = emptyCost();
    meter.capacity = capacity;
    const started = performance.now();
    const result = await fn();
    const ms = performance.now() - started;
    const cost = meter.cost;
    // Later requests (an unmetered warm-up) must not add to this pass's cost.
    meter.cost = emptyCost();
    meter.capacity = false;
    return { result, cost, ms };
  };
  try {
    const { seed, table } = env;
    log(
      `audit bench: seeded ${seed.items} items (${seed.runs.length} runs) in ${(env.seedMs / 1000).toFixed(1)} s`,
    );
    // What one pass over the whole table reads, whatever its filter.
    const full = await metered(true, async () => {
      let count = 0;
      for await (const page of paginateScan({ client: db }, { TableName: table, Select: 'COUNT' })) {
        count += page.Count ?? 0;
      }
      return count;
    });
    if (full.result !== seed.items)
      fail(`the table holds ${full.result} items, the seed wrote ${seed.items}`);
    const fullScan = { ms: round(full.ms), pages: full.cost.requests, capacity: full.cost.capacity };

    const questions: QuestionFigures[] = [];
    for (const question of questionsFor(seed)) {
      // One metered pass (also the warm-up), checked against the seed and on the wire: Queries only.
      await env.dynamo.record();
      const first = await metered(true, () => question.answer(new AuditReader(db, table)));
      const requests = await env.dynamo.requests();
      const rows = question.check(first.result);
      // One more warm-up pass (the code paths of this answer, at this size).
      await question.answer(new AuditReader(db, table));

      // Query and Scan passes interleaved, so both see the same machine (other work, GC).
      const queryMs: number[] = [];
      const scanMs: number[] = [];
      let scan: { answer: CommandResult; cost: Cost; scans: number } | undefined;
      for (let i = 0; i < Math.max(runs, scanRuns); i++) {
        if (i < runs) {
          queryMs.push((await metered(false, () => question.answer(new AuditReader(db, table)))).ms);
        }
        if (i < scanRuns) {
          const reader = new ScanReader(db, table);
          const pass = await metered(false, () => question.answer(reader as unknown as AuditReader));
          scanMs.push(pass.ms);
          scan ??= { answer: pass.result, cost: pass.cost, scans: reader.scans };
        }
      }
      if (!scan) return fail('no Scan pass');
      const sameAnswerAsScan = canonical(scan.answer) === canonical(first.result);
      if (!sameAnswerAsScan) fail(`${question.id}: the Scan-based answer differs from the CLI's`);
      scan.cost.capacity = scan.scans * fullScan.capacity;

      const figures: QuestionFigures = {
        id: question.id,
        cli: question.cli,
        args: question.args,
        rows,
        sameAnswerAsScan,
        query: {
          ms: queryMs.map((ms) => round(ms, 2)),
          medianMs: round(median(queryMs), 2),
          wire: countOperations(requests),
          emptyKeyValues: emptyKeyValues(requests),
          cost: first.cost,
          amplification: round(first.cost.read / Math.max(1, first.cost.returned), 3),
        },
        scan: {
          ms: scanMs.map((ms) => round(ms, 1)),
          medianMs: round(median(scanMs), 1),
          scans: scan.scans,
          cost: scan.cost,
          amplification: round(scan.cost.read / Math.max(1, scan.cost.returned), 1),
        },
        speedup: round(median(scanMs) / median(queryMs), 1),
        capacityRatio: round(scan.cost.capacity / Math.max(0.5, first.cost.capacity), 1),
      };
      log(
        `audit bench: ${seed.items} items, ${question.id}: Query ${figures.query.medianMs} ms, Scan ${figures.scan.medianMs} ms (${figures.speedup}×)`,
      );
      questions.push(figures);
    }
    return {
      requestedItems,
      items: seed.items,
      runs: seed.runs.length,
      rejections: seed.rejections.length,
      seedMs: env.seedMs,
      seedOptions,
      fullScan,
      questions,
    };
  } finally {
    client.destroy();
    await env.stop();
  }
};

const int = (n: number) => n.toLocaleString('en-US');
const ms = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));

export const auditQueries = async (
  options: { sizes?: number[]; runs?: number; quick?: boolean } = {},
): Promise<BenchSection> => {
  const sizes = [...(options.sizes ?? [10_000, 100_000])].sort((a, b) => a - b);
  const runs = options.runs ?? (options.quick ? 3 : 7);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const started = performance.now();
  const loadBefore = os.loadavg();
  const results: SizeFigures[] = [];
  for (const size of sizes) {
    // Scans of a large table take seconds: fewer of them there.
    const scanRuns = size >= 50_000 ? Math.min(runs, options.quick ? 1 : 3) : Math.min(runs, 5);
    results.push(await measureSize(size, runs, scanRuns, log));
  }

  const smallest = results[0] as SizeFigures;
  const largest = results[results.length - 1] as SizeFigures;
  const table = new Table({
    head: [
      'question',
      'items',
      'rows',
      'Query ms',
      'requests',
      'read / returned',
      'RCU',
      'Scan ms',
      'Scans: read / returned',
      'RCU',
      'Scan ÷ Query\nms (RCU)',
    ],
    style: { head: [], border: [] },
  });
  for (const id of smallest.questions.map((q) => q.id)) {
    for (const size of results) {
      const q = size.questions.find((x) => x.id === id) as QuestionFigures;
      const requests = Object.entries(q.query.wire).map(([op, n]) => `${n} ${op}`);
      const next = q.query.cost.continued;
      table.push([
        size === smallest ? `${id}\n${q.cli}` : '',
        int(size.items),
        int(q.rows),
        ms(q.query.medianMs),
        `${requests.join(', ')}${next ? `\n(${next} next page${next > 1 ? 's' : ''})` : ''}`,
        `${int(q.query.cost.read)} / ${int(q.query.cost.returned)}`,
        int(q.query.cost.capacity),
        ms(q.scan.medianMs),
        `${q.scan.scans}: ${int(q.scan.cost.read)} / ${int(q.scan.cost.returned)}`,
        int(q.scan.cost.capacity),
        `${q.speedup.toFixed(1)}× (${q.capacityRatio.toFixed(0)}×)`,
      ]);
    }
  }

  const targets: Target[] = [];
  const all = results.flatMap((r) => r.questions.map((q) => ({ size: r.items, q })));
  // The emulator's log must hold every request the client saw, and nothing but Queries.
  const logged = (q: QuestionFigures) => Object.values(q.query.wire).reduce((n, c) => n + c, 0);
  const notQuery = all.filter(
    ({ q }) =>
      Object.keys(q.query.wire).some((op) => op !== 'Query') ||
      q.query.emptyKeyValues.length > 0 ||
      logged(q) === 0 ||
      logged(q) !== q.query.cost.requests,
  );
  targets.push({
    name: 'every audit question is answered by Queries only (wire log of the emulator)',
    met: notQuery.length === 0,
    detail:
      notQuery.length === 0
        ? `${all.length} answers (${smallest.questions.length} questions × ${results.length} sizes): Query only, ${all.reduce((n, { q }) => n + q.query.cost.requests, 0)} requests, no empty key value`
        : notQuery
            .map(
              ({ size, q }) =>
                `${q.id} @ ${int(size)}: ${JSON.stringify(q.query.wire)} logged, ${q.query.cost.requests} sent${q.query.emptyKeyValues.length ? `, empty key values ${q.query.emptyKeyValues.join()}` : ''}`,
            )
            .join('; '),
  });
  for (const q of largest.questions) {
    targets.push({
      name: `audit ${q.id}: ≥ ${MIN_SPEEDUP}× faster than a Scan at ${int(largest.items)} items`,
      met: q.speedup >= MIN_SPEEDUP,
      detail: `${q.speedup.toFixed(1)}× (Query ${ms(q.query.medianMs)} ms, Scan ${ms(q.scan.medianMs)} ms; limit ${MIN_SPEEDUP}×); read units ${q.capacityRatio.toFixed(0)}× fewer (${int(q.query.cost.capacity)} vs ${int(q.scan.cost.capacity)} RCU)`,
    });
  }
  if (results.length > 1) {
    const growth = largest.questions.map((q) => {
      const small = smallest.questions.find((x) => x.id === q.id) as QuestionFigures;
      return { q, small, growth: q.query.amplification / small.query.amplification };
    });
    targets.push({
      name: `Query cost grows with the answer, not the table: items read per item returned at ${int(largest.items)} ≤ ${MAX_AMPLIFICATION_GROWTH}× that at ${int(smallest.items)} (table ${(largest.items / smallest.items).toFixed(1)}×)`,
      met: growth.every((g) => g.growth <= MAX_AMPLIFICATION_GROWTH),
      detail: growth
        .map(
          ({ q, small, growth: g }) =>
            `${q.id} ${small.query.amplification}→${q.query.amplification} (${g.toFixed(2)}×; read ${int(small.query.cost.read)}→${int(q.query.cost.read)} for ${int(small.query.cost.returned)}→${int(q.query.cost.returned)} returned; Scan ${small.scan.amplification}→${q.scan.amplification})`,
        )
        .join('; '),
    });
  }

  const totalMs = performance.now() - started;
  const text = [
    `Audit questions: the CLI's Queries vs Scan + FilterExpression (dynalite, median of ${runs} Query runs; Scan: ${results.map((r) => `${r.questions[0]?.scan.ms.length} at ${int(r.items)}`).join(', ')})`,
    ...results.map(
      (r) =>
        `  ${int(r.items)} items (${int(r.runs)} runs, ${int(r.rejections)} rejections; asked for ${int(r.requestedItems)}): seeded in ${(r.seedMs / 1000).toFixed(1)} s; one full Scan ${int(r.fullScan.pages)} pages, ${int(r.fullScan.capacity)} RCU, ${ms(r.fullScan.ms)} ms`,
    ),
    table.toString(),
    'rows: runs / releases / rejections / resource records / timeline entries in the answer. requests: as logged by the',
    "emulator (next page: a LastEvaluatedKey follow-up). read / returned: ScannedCount / Count summed over the answer's",
    'requests. RCU: read capacity units as dynalite computes ConsumedCapacity (eventually consistent; a Scan is charged',
    'for every item it reads, filter or not). Scans: the full-table Scans + FilterExpression the same answer needs, each',
    "paginated to the end, answers checked equal to the CLI's. Times include building the answer (cli/commands/audit.ts),",
    'not printing it.',
    `Load average ${loadBefore.map((l) => l.toFixed(1)).join(' ')} before, ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} after (2 cores); section took ${(totalMs / 1000).toFixed(0)} s.`,
  ].join('\n');

  return {
    id: 'audit',
    title: `Audit questions: Query vs Scan at ${results.map((r) => int(r.items)).join(' and ')} items`,
    text,
    data: {
      runs,
      sizes: results,
      totalMs: Math.round(totalMs),
      loadavg: { before: loadBefore, after: os.loadavg() },
    },
    targets,
  };
};
