import type { CliDeps } from '../../cli/main';
import { PIPELINE_STAGES } from '../../shared/progress';
import { expectedStages, generateSeed, type SeededRun } from './seed';
import {
  cli,
  csvRecords,
  expectQueriesOnly,
  seededDynamo,
  tableRecords,
  tableRows,
  testContexts,
  type TestContexts,
  type WireRequest,
} from './support';

/**
 * The auditors' questions against a real DynamoDB emulator holding 2,400 runs (seed.ts): every
 * answer is compared with what was seeded, and every command is checked to have sent Queries only.
 */
describe('ami-pipeline audit', () => {
  let env: Awaited<ReturnType<typeof seededDynamo>>;
  let contexts: TestContexts;
  let deps: CliDeps;

  beforeAll(async () => {
    env = await seededDynamo();
    contexts = testContexts({ dynamodb: env.dynamo.endpoint });
    deps = { open: contexts.open, now: () => env.seed.now, pollMs: 1 };
    console.log(
      `seeded ${env.seed.runs.length} runs, ${env.seed.items} items in ${(env.seedMs / 1000).toFixed(1)} s`,
    );
    // About 11 s on an idle 2-core machine; generous, as seeding shares the machine with other suites.
  }, 240_000);

  afterAll(async () => {
    await env?.stop();
  });

  afterEach(() => {
    // Every command closes the context it opened, whatever happened.
    expect(contexts.closed).toBe(contexts.opened.length);
  });

  /** Runs a command line and checks what reached DynamoDB: Queries, nothing else. */
  const audit = async (argv: string[]) => {
    await env.dynamo.record();
    const printed = await cli(argv, deps);
    const requests = await env.dynamo.requests();
    expect(requests.length).toBeGreaterThan(0);
    expectQueriesOnly(requests);
    return { ...printed, requests, json: () => JSON.parse(printed.stdout) as unknown };
  };

  const seed = () => env.seed;
  const pick = (predicate: (run: SeededRun) => boolean, nth = 0): SeededRun => {
    const found = seed().runs.filter(predicate)[nth];
    if (!found) throw new Error('the seed has no such run');
    return found;
  };
  /** A run's partition as the seed wrote it: kind, type, id and time of each event and resource. */
  const storyOf = (run: SeededRun) =>
    [
      ...run.events.map((e) => `event|${e.type}|${e.id ?? ''}|${e.at}`),
      ...run.resources.map((r) => `resource|${r.resourceType}|${r.resourceId}|${r.createdAt}`),
    ].sort();
  const storyIn = (timeline: { kind: string; type: string; id?: string; at: string }[]) =>
    timeline.map((t) => `${t.kind}|${t.type}|${t.id ?? ''}|${t.at}`).sort();
  const stateOf = (stages: { stage: string; state: string }[]) =>
    Object.fromEntries(stages.map((s) => [s.stage, s.state]));
  const seconds = (run: SeededRun) =>
    Math.round((Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000);
  /** Queries of the runs of an app (the table's APP#<appId> partition) among the requests. */
  const appQueries = (requests: WireRequest[], appId: string) =>
    requests.filter(
      (r) =>
        r.input.IndexName === undefined &&
        JSON.stringify(r.input.ExpressionAttributeValues ?? {}).includes(`"APP#${appId}"`),
    );

  interface RunJson {
    run: Record<string, unknown>;
    stages: { stage: string; state: string; detail?: string }[];
    inspec: { report: string; passed: number; failed: number; skipped: number } | null;
    timeline: { kind: string; type: string; id?: string; at: string; detail?: Record<string, unknown> }[];
  }

  it('seeds thousands of runs with their events and resources, the same ones every time', () => {
    const again = generateSeed(env.stage);
    expect(again.runs).toEqual(seed().runs);
    expect(again.live).toEqual(seed().live);
    expect(again.rejections).toEqual(seed().rejections);
    expect(seed().runs.length).toBeGreaterThanOrEqual(2400);
    expect(seed().items).toBeGreaterThan(50_000);
    const failed = seed().runs.filter((r) => r.status === 'FAILED');
    expect(new Set(failed.map((r) => r.failedStage))).toEqual(
      new Set([
        'AcquireLock',
        'PreProvision',
        'Bake',
        'Distribute',
        'Provision',
        'Validate',
        'SmokeTest',
        'TrafficShift',
      ]),
    );
  });

  describe('audit resource <id>', () => {
    it('answers which run made an AMI, for which app and version, who asked for it and what InSpec said', async () => {
      const made = pick(
        (r) => r.appId === 'orders-web' && r.environment === 'prod' && r.status === 'SUCCEEDED',
        40,
      );
      const amiId = made.amiId as string;

      const { code, stderr, json } = await audit(['audit', 'resource', amiId, '--output', 'json']);

      expect({ code, stderr }).toEqual({ code: 0, stderr: [] });
      const answer = json() as { resource: Record<string, unknown>[]; runs: RunJson[] };
      expect(answer.resource).toEqual([
        {
          resourceType: 'AMI',
          resourceId: amiId,
          runId: made.runId,
          createdAt: made.resources.find((r) => r.resourceType === 'AMI')?.createdAt,
          detail: { region: 'eu-west-1', snapshotIds: expect.any(Array) },
        },
      ]);
      expect(answer.runs).toHaveLength(1);
      const [story] = answer.runs as [RunJson];
      expect(story.run).toEqual({
        runId: made.runId,
        appId: 'orders-web',
        environment: 'prod',
        version: made.version,
        buildId: made.buildId,
        kind: made.kind,
        requestedBy: made.requestedBy,
        status: 'SUCCEEDED',
        startedAt: made.startedAt,
        finishedAt: made.finishedAt,
        seconds: seconds(made),
        executionArn: made.executionArn,
      });
      expect(story.inspec).toEqual(made.inspec);
      expect(story.inspec?.report).toMatch(/^s3:\/\/ami-pipeline-dev-reports-.+\/report\.json$/);
      expect(storyIn(story.timeline)).toEqual(storyOf(made));
      expect(stateOf(story.stages)).toEqual(expectedStages(made));
    });

    it('prints the same answer as tables: the maker, its stages, InSpec and every event and resource', async () => {
      const made = pick(
        (r) => r.appId === 'payments-api' && r.environment === 'dev' && r.status === 'SUCCEEDED',
        300,
      );
      const amiId = made.amiId as string;

      const { code, stdout } = await audit(['audit', 'resource', amiId]);

      expect(code).toBe(0);
      expect(tableRecords(stdout, `resource ${amiId}`)).toEqual([
        {
          type: 'AMI',
          'made by run': made.runId,
          app: 'payments-api',
          version: made.version,
          'requested by': made.requestedBy,
          created: made.resources.find((r) => r.resourceType === 'AMI')?.createdAt,
        },
      ]);
      expect(Object.fromEntries(tableRows(stdout, 'InSpec').slice(1))).toEqual({
        report: made.inspec?.report,
        passed: String(made.inspec?.passed),
        failed: String(made.inspec?.failed),
        skipped: String(made.inspec?.skipped),
      });
      const stages = tableRecords(stdout, 'stages');
      expect(stages.map((s) => s.stage)).toEqual([...PIPELINE_STAGES]);
      expect(stages.every((s) => s.state === '✓ done')).toBe(true);
      expect(stages.find((s) => s.stage === 'Bake')?.detail).toBe(amiId);
      const story = tableRecords(stdout, 'events and resources');
      expect(story).toHaveLength(made.events.length + made.resources.length);
      expect(story.map((row) => `${row.kind}|${row.type}|${row.id}|${row.at}`).sort()).toEqual(storyOf(made));
    });

    it('prints the run story as CSV with a header row, one record per event or resource', async () => {
      const made = pick((r) => r.appId === 'ledger-worker' && r.status === 'SUCCEEDED', 7);
      const snapshot = made.resources.find((r) => r.resourceType === 'SNAPSHOT')?.resourceId as string;

      const { code, stdout } = await audit(['audit', 'resource', snapshot, '--output', 'csv']);

      expect(code).toBe(0);
      const { header, records } = csvRecords(stdout);
      expect(header).toEqual(['runId', 'at', 'kind', 'type', 'id', 'detail']);
      expect(records).toHaveLength(made.events.length + made.resources.length);
      expect(new Set(records.map((r) => r.runId))).toEqual(new Set([made.runId]));
      expect(records.filter((r) => r.type === 'SNAPSHOT').map((r) => [r.kind, r.id])).toContainEqual([
        'resource',
        snapshot,
      ]);
    });

    it('lists every run that recorded a shared resource (an app log group’s subscription)', async () => {
      const id = '/app/orders-web/access#ami-pipeline-export';
      const expected = seed().runsWithResource(id);
      expect(expected.length).toBeGreaterThan(300);

      const { code, json, requests } = await audit(['audit', 'resource', id, '--output', 'json']);

      expect(code).toBe(0);
      const answer = json() as { resource: { runId: string }[]; runs: RunJson[] };
      expect(answer.resource.map((r) => r.runId).sort()).toEqual(expected.map((r) => r.runId).sort());
      expect(answer.runs.map((r) => r.run.runId).sort()).toEqual(expected.map((r) => r.runId).sort());
      for (const story of answer.runs) {
        expect(story.run.requestedBy).toBe(seed().run(String(story.run.runId)).requestedBy);
      }
      // One Query for the resource, then two per run that made it: the answer's size, not the table's.
      expect(requests).toHaveLength(1 + 2 * expected.length);
    });

    it('refuses an id no run recorded with exit 1 and one line on stderr', async () => {
      const { code, stdout, stderr } = await audit(['audit', 'resource', 'ami-0000000000000dead']);

      expect(code).toBe(1);
      expect(stdout).toBe('');
      expect(stderr).toEqual(['ami-pipeline: no run recorded resource ami-0000000000000dead']);
    });

    it('hints at `audit run` when given a run id', async () => {
      const { runId } = pick((r) => r.status === 'SUCCEEDED', 3);

      const { code, stderr } = await audit(['audit', 'resource', runId]);

      expect(code).toBe(1);
      expect(stderr).toEqual([
        `ami-pipeline: no run recorded resource ${runId} (a run id? try: audit run ${runId})`,
      ]);
    });
  });

  describe('audit run <runId>', () => {
    it('shows every event and resource of a run, its stages and InSpec summary', async () => {
      // A release later replaced: its partition also holds the DECOMMISSION_SCHEDULED of its successor.
      const made = pick(
        (r) => r.appId === 'payments-api' && r.events.some((e) => e.type === 'DECOMMISSION_SCHEDULED'),
        120,
      );

      const { code, json } = await audit(['audit', 'run', made.runId, '--output', 'json']);

      expect(code).toBe(0);
      const story = json() as RunJson;
      expect(story.timeline).toHaveLength(made.events.length + made.resources.length);
      expect(storyIn(story.timeline)).toEqual(storyOf(made));
      expect(story.inspec).toEqual(made.inspec);
      expect(stateOf(story.stages)).toEqual(expectedStages(made));
      expect(story.stages.find((s) => s.stage === 'TrafficShift')?.detail).toBe('10 → 50 → 100 %');
      expect(story.run).toMatchObject({
        runId: made.runId,
        status: 'SUCCEEDED',
        requestedBy: made.requestedBy,
      });
    });

    it('shows a failed run’s failed stage, error, cause, compensation and UNDONE events', async () => {
      const failed = pick(
        (r) => r.failedStage === 'Provision' && r.events.some((e) => e.type === 'UNDO_FAILED'),
        0,
      );
      const undone = failed.events.filter((e) => e.type === 'UNDONE');
      expect(undone.length).toBeGreaterThan(1);

      const { code, json } = await audit(['audit', 'run', failed.runId, '--output', 'json']);

      expect(code).toBe(0);
      const story = json() as RunJson;
      expect(story.run).toMatchObject({
        status: 'FAILED',
        failedStage: 'Provision',
        errorName: 'ProvisionFailedError',
        errorCause: failed.errorCause,
        compensationStatus: 'INCOMPLETE',
      });
      expect(stateOf(story.stages)).toEqual(expectedStages(failed));
      expect(story.inspec).toBeNull();
      expect(
        story.timeline
          .filter((t) => t.type === 'UNDONE')
          .map((t) => t.id)
          .sort(),
      ).toEqual(undone.map((e) => e.id).sort());
      expect(story.timeline.filter((t) => t.type === 'UNDO_FAILED')).toHaveLength(1);
      expect(storyIn(story.timeline)).toEqual(storyOf(failed));
    });

    it('prints a failed run’s stages as done, failed and skipped, and says there is no InSpec report', async () => {
      // A Lambda error's cause is one line; a command's (a 2 KB stderr tail) is covered in status.test.ts.
      const failed = pick((r) => r.failedStage === 'Distribute', 2);

      const { code, stdout } = await audit(['audit', 'run', failed.runId]);

      expect(code).toBe(0);
      expect(stdout).toContain(`run ${failed.runId}`);
      expect(
        Object.fromEntries(
          tableRows(stdout, 'stages')
            .slice(1)
            .map(([stage, state]) => [stage, state]),
        ),
      ).toEqual(
        Object.fromEntries(
          Object.entries(expectedStages(failed)).map(([stage, state]) => [
            stage,
            { done: '✓ done', failed: '✗ failed', skipped: '- skipped' }[state],
          ]),
        ),
      );
      expect(tableRows(stdout, 'InSpec')[1]).toEqual([
        'report',
        'no report (the run did not reach Validate)',
      ]);
      const story = tableRecords(stdout, 'events and resources');
      expect(
        story
          .filter((row) => row.type === 'UNDONE')
          .map((row) => row.id)
          .sort(),
      ).toEqual(
        failed.events
          .filter((e) => e.type === 'UNDONE')
          .map((e) => e.id)
          .sort(),
      );
    });

    it('shows a run that failed waiting for the lock, recorded only by RecordFailure', async () => {
      const failed = pick((r) => r.failedStage === 'AcquireLock');

      const { code, json } = await audit(['audit', 'run', failed.runId, '--output', 'json']);

      expect(code).toBe(0);
      const story = json() as RunJson;
      expect(story.run).toMatchObject({
        status: 'FAILED',
        errorName: 'LockHeldError',
        requestedBy: failed.requestedBy,
      });
      expect(story.timeline).toEqual([]);
      expect(stateOf(story.stages)).toEqual(expectedStages(failed));
    });

    it('prints the story as CSV, one record per event or resource', async () => {
      const made = pick((r) => r.failedStage === 'TrafficShift');

      const { code, stdout } = await audit(['audit', 'run', made.runId, '--output', 'csv']);

      expect(code).toBe(0);
      const { header, records } = csvRecords(stdout);
      expect(header).toEqual(['runId', 'at', 'kind', 'type', 'id', 'detail']);
      expect(records).toHaveLength(made.events.length + made.resources.length);
      expect(records.filter((r) => r.type === 'TRAFFIC_SHIFTED').map((r) => r.id)).toEqual(['10', '50']);
    });

    it('refuses an unknown run id with exit 1 and one line', async () => {
      const { code, stdout, stderr } = await audit(['audit', 'run', 'ffffffffffffffffffff']);

      expect({ code, stdout, stderr }).toEqual({
        code: 1,
        stdout: '',
        stderr: ['ami-pipeline: no run ffffffffffffffffffff in the audit table'],
      });
    });
  });

  describe('audit app <app>', () => {
    interface AppRow extends Record<string, unknown> {
      runId: string;
      amiIds: string[];
      inspec: RunJson['inspec'];
      resources: number;
    }
    const expectRowsMatch = (rows: AppRow[], expected: SeededRun[]) => {
      expect(rows.map((r) => r.runId)).toEqual(expected.map((r) => r.runId));
      rows.forEach((row, i) => {
        const run = expected[i] as SeededRun;
        expect(row.amiIds).toEqual(run.amiId ? [run.amiId] : []);
        expect(row.inspec).toEqual(run.inspec ?? null);
        expect(row.resources).toBe(run.resources.length);
        expect(row.status).toBe(run.status);
        expect(row.requestedBy).toBe(run.requestedBy);
      });
    };

    it('lists exactly the seeded runs of an environment, newest first, across Query pages', async () => {
      const expected = seed().runsOf('payments-api', { environment: 'dev' });
      expect(expected).toHaveLength(800);

      const { code, json, requests } = await audit([
        'audit',
        'app',
        'payments-api',
        '--env',
        'dev',
        '--output',
        'json',
      ]);

      expect(code).toBe(0);
      expectRowsMatch(json() as AppRow[], expected);
      // The app's 1,600 run items are more than one 1 MB page: the CLI followed LastEvaluatedKey.
      const pages = appQueries(requests, 'payments-api');
      expect(pages.length).toBeGreaterThan(1);
      expect(pages.slice(1).every((p) => p.input.ExclusiveStartKey !== undefined)).toBe(true);
      expect(pages.every((p) => p.input.ScanIndexForward === false)).toBe(true);
      // Then one Query per run for its AMI and InSpec: cost grows with the answer.
      expect(requests.length - pages.length).toBe(expected.length);
    });

    it('keeps to an inclusive --since/--until window given as ISO times', async () => {
      const all = seed().runsOf('payments-api');
      const until = (all[40] as SeededRun).startedAt;
      const since = (all[100] as SeededRun).startedAt;

      const { code, json } = await audit([
        'audit',
        'app',
        'payments-api',
        '--since',
        since,
        '--until',
        until,
        '--output',
        'json',
      ]);

      expect(code).toBe(0);
      expectRowsMatch(json() as AppRow[], all.slice(40, 101));
    });

    it('reads --since as a duration back from now', async () => {
      const since = new Date(seed().now.getTime() - 10 * 86_400_000).toISOString();
      const expected = seed().runsOf('orders-web', { since });
      expect(expected.length).toBeGreaterThan(20);

      const { code, json } = await audit([
        'audit',
        'app',
        'orders-web',
        '--since',
        '10d',
        '--output',
        'json',
      ]);

      expect(code).toBe(0);
      expectRowsMatch(json() as AppRow[], expected);
    });

    it('pages with --limit as its page size and stops at the limit, the env filter applied', async () => {
      const expected = seed().runsOf('payments-api', { environment: 'prod' }).slice(0, 60);

      const { code, json, requests } = await audit([
        'audit',
        'app',
        'payments-api',
        '--env',
        'prod',
        '--limit',
        '60',
        '--output',
        'json',
      ]);

      expect(code).toBe(0);
      expectRowsMatch(json() as AppRow[], expected);
      const pages = appQueries(requests, 'payments-api');
      expect(pages.length).toBeGreaterThan(1);
      expect(pages.every((p) => p.input.Limit === 60)).toBe(true);
    });

    it('prints a table with each run’s AMI, InSpec result and where it got to', async () => {
      const since = new Date(seed().now.getTime() - 4 * 86_400_000).toISOString();
      const expected = seed().runsOf('payments-api', { since });

      const { code, stdout } = await audit(['audit', 'app', 'payments-api', '--since', '4d']);

      expect(code).toBe(0);
      const rows = tableRecords(stdout, 'runs of payments-api');
      expect(rows).toEqual(
        expected.map((run) => ({
          started: run.startedAt,
          run: run.runId,
          env: run.environment,
          version: run.version,
          build: run.buildId,
          'requested by': run.requestedBy,
          status: run.status,
          reached: run.status === 'SUCCEEDED' ? 'live' : `${run.failedStage} ✗`,
          AMI: run.amiId ?? '',
          'InSpec (pass/fail/skip)': run.inspec
            ? `${run.inspec.passed}/${run.inspec.failed}/${run.inspec.skipped}`
            : '',
        })),
      );
      expect(stdout.trimEnd().endsWith(`${expected.length} runs`)).toBe(true);
    });

    it('prints CSV with the table’s header row', async () => {
      const expected = seed().runsOf('ledger-worker', { environment: 'prod' }).slice(0, 30);

      const { code, stdout } = await audit([
        'audit',
        'app',
        'ledger-worker',
        '--env',
        'prod',
        '--limit',
        '30',
        '--output',
        'csv',
      ]);

      expect(code).toBe(0);
      const { header, records } = csvRecords(stdout);
      expect(header).toEqual([
        'started',
        'run',
        'env',
        'version',
        'build',
        'requested by',
        'status',
        'reached',
        'AMI',
        'InSpec (pass/fail/skip)',
      ]);
      expect(records.map((r) => [r.run, r.AMI, r.status])).toEqual(
        expected.map((run) => [run.runId, run.amiId ?? '', run.status]),
      );
    });

    it('answers an app without runs with an empty list', async () => {
      const { code, json } = await audit(['audit', 'app', 'no-such-app', '--output', 'json']);

      expect(code).toBe(0);
      expect(json()).toEqual([]);
    });
  });

  describe('audit env', () => {
    it('answers every run of an environment in a window, across apps, with its InSpec result and the rejections: one paginated Query on byEnvironment', async () => {
      const prod = seed()
        .runs.filter((r) => r.environment === 'prod')
        .sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.runId.localeCompare(b.runId));
      const since = (prod[300] as SeededRun).startedAt;
      const until = (prod[700] as SeededRun).startedAt;
      const expected = prod.filter((r) => r.startedAt >= since && r.startedAt <= until);
      const rejected = seed().rejections.filter(
        (r) => r.environment === 'prod' && r.receivedAt >= since && r.receivedAt <= until,
      );

      const { code, json, requests } = await audit([
        'audit',
        'env',
        '--env',
        'prod',
        '--since',
        since,
        '--until',
        until,
        '--output',
        'json',
      ]);

      expect(code).toBe(0);
      const answer = json() as {
        runs: { runId: string; requestedBy: string; status: string; inspec: unknown; amiIds: string[] }[];
        rejected: { messageId: string }[];
      };
      expect(answer.runs.map((r) => r.runId)).toEqual(expected.map((r) => r.runId));
      // Resources recorded before the window closed carry their run's InSpec result and AMI.
      for (const [i, run] of expected.entries()) {
        const row = answer.runs[i];
        expect(row).toMatchObject({ requestedBy: run.requestedBy, status: run.status });
        if (run.finishedAt && run.finishedAt <= until) {
          expect(row?.inspec).toEqual(run.inspec ?? null);
          expect(row?.amiIds).toEqual(run.amiId ? [run.amiId] : []);
        }
      }
      expect(answer.rejected.map((r) => r.messageId).sort()).toEqual(rejected.map((r) => r.messageId).sort());
      expect(requests.every((r) => r.input.IndexName === 'byEnvironment')).toBe(true);
      expect(requests.length).toBeGreaterThan(1); // more than one page, followed
    });
  });

  describe('audit live', () => {
    const liveOf = (environment: string) =>
      seed()
        .live.filter((l) => l.environment === environment)
        .sort((a, b) => a.appId.localeCompare(b.appId));

    it('shows every app’s live release in the stage’s environment', async () => {
      const { code, json } = await audit(['audit', 'live', '--output', 'json']);

      expect(code).toBe(0);
      expect(json()).toEqual(
        liveOf('dev').map((l) => ({
          appId: l.appId,
          environment: 'dev',
          version: l.version,
          buildId: l.buildId,
          runId: l.runId,
          amiId: l.amiId,
          since: l.since,
          asgName: l.asgName,
          launchTemplateId: l.launchTemplateId,
          targetGroupArn: l.targetGroupArn,
          previousRunId: l.previousRunId,
        })),
      );
      // Each live run is the app's latest successful run.
      for (const l of liveOf('dev')) {
        expect(l.runId).toBe(
          seed()
            .runsOf(l.appId, { environment: 'dev' })
            .find((r) => r.status === 'SUCCEEDED')?.runId,
        );
      }
    });

    it('shows another environment with --env, as a table', async () => {
      const { code, stdout } = await audit(['audit', 'live', '--env', 'prod']);

      expect(code).toBe(0);
      expect(tableRecords(stdout, 'live in prod')).toEqual(
        liveOf('prod').map((l) => ({
          app: l.appId,
          version: l.version,
          build: l.buildId,
          run: l.runId,
          AMI: l.amiId,
          since: l.since,
          ASG: l.asgName,
          'replaced run': l.previousRunId ?? '',
        })),
      );
      expect(stdout).toContain('3 apps live in prod');
    });

    it('prints CSV with a header row', async () => {
      const { code, stdout } = await audit(['audit', 'live', '--env', 'prod', '--output', 'csv']);

      expect(code).toBe(0);
      const { header, records } = csvRecords(stdout);
      expect(header).toEqual(['app', 'version', 'build', 'run', 'AMI', 'since', 'ASG', 'replaced run']);
      expect(records.map((r) => r.app)).toEqual(liveOf('prod').map((l) => l.appId));
    });

    it('answers an environment with nothing live with an empty list', async () => {
      const { code, json, stdout } = await audit(['audit', 'live', '--env', 'test', '--output', 'json']);

      expect(code).toBe(0);
      expect(json()).toEqual([]);
      expect(stdout).toBe('[]\n');
    });
  });

  describe('audit rejected', () => {
    const rejectedIn = (environment: string, since = '') =>
      seed()
        .rejections.filter((r) => r.environment === environment && r.receivedAt >= since)
        .sort((a, b) => b.receivedAt.localeCompare(a.receivedAt));

    it('lists every refused trigger of the environment with its violations, newest first', async () => {
      const expected = rejectedIn('dev');

      const { code, json } = await audit(['audit', 'rejected', '--output', 'json']);

      expect(code).toBe(0);
      const rows = json() as Record<string, unknown>[];
      expect(rows.map((r) => r.messageId)).toEqual(expected.map((r) => r.messageId));
      rows.forEach((row, i) => {
        const rejection = expected[i];
        expect(row).toEqual({
          receivedAt: rejection?.receivedAt,
          messageId: rejection?.messageId,
          ...(rejection?.appId ? { appId: rejection.appId } : {}),
          ...(rejection?.buildId ? { buildId: rejection.buildId } : {}),
          reason: rejection?.reason,
          violations: rejection?.violations,
          messageSha256: rejection?.messageSha256,
          queueMessageId: rejection?.queueMessageId,
          excerpt: rejection?.excerpt,
        });
      });
    });

    it('keeps to --since and --env', async () => {
      const since = new Date(seed().now.getTime() - 30 * 86_400_000).toISOString();
      const expected = rejectedIn('prod', since);
      expect(expected.length).toBeGreaterThan(0);
      expect(expected.length).toBeLessThan(rejectedIn('prod').length);

      const { code, json } = await audit([
        'audit',
        'rejected',
        '--env',
        'prod',
        '--since',
        '30d',
        '--output',
        'json',
      ]);

      expect(code).toBe(0);
      expect((json() as { messageId: string }[]).map((r) => r.messageId)).toEqual(
        expected.map((r) => r.messageId),
      );
    });

    it('prints each rejection’s violations in the table and in CSV', async () => {
      const expected = rejectedIn('dev').slice(0, 12);

      const table = await audit(['audit', 'rejected', '--limit', '12']);
      const csv = await audit(['audit', 'rejected', '--limit', '12', '--output', 'csv']);

      expect(
        tableRecords(table.stdout, 'rejected triggers in dev').map((r) => [r.message, r.violations]),
      ).toEqual(expected.map((r) => [r.messageId, r.violations.join('; ')]));
      const { header, records } = csvRecords(csv.stdout);
      expect(header).toEqual(['received', 'message', 'app', 'build', 'violations']);
      expect(records.map((r) => [r.message, r.app, r.violations])).toEqual(
        expected.map((r) => [r.messageId, r.appId ?? '', r.violations.join('; ')]),
      );
    });
  });
});
