import { AuditRepository, type ResourceRecord, type RunEvent } from '../../shared/audit';
import type { CliDeps } from '../../cli/main';
import { PIPELINE_STAGES } from '../../shared/progress';
import { runIdFor } from '../../shared/trigger/message';
import { expectedStages, recordFailure, recordSuccess, runStartedOf, type SeededRun } from './seed';
import {
  captureIo,
  cli,
  csvRecords,
  expectQueriesOnly,
  seededDynamo,
  tableRecords,
  tableRows,
  testContexts,
  type TestContexts,
} from './support';

/**
 * `runs` and `status` (with `--follow`) against a real DynamoDB emulator: a smaller seeded table,
 * plus runs this file writes itself and moves forward milestone by milestone, as the workers would.
 */
describe('ami-pipeline runs and status', () => {
  let env: Awaited<ReturnType<typeof seededDynamo>>;
  let contexts: TestContexts;
  let deps: CliDeps;
  let audit: AuditRepository;

  beforeAll(async () => {
    env = await seededDynamo({ runsPerAppEnv: 24, rejectionsPerEnv: 2, seed: 7 });
    contexts = testContexts({ dynamodb: env.dynamo.endpoint });
    deps = { open: contexts.open, now: () => env.seed.now, pollMs: 2 };
    audit = new AuditRepository(env.db, env.seed.table);
  });

  afterAll(async () => {
    await env?.stop();
  });

  afterEach(() => {
    expect(contexts.closed).toBe(contexts.opened.length);
  });

  /** Runs a command line (io captured by `capture`) and checks it sent DynamoDB Queries only. */
  const command = async (argv: string[], capture = captureIo()) => {
    await env.dynamo.record();
    const printed = await cli(argv, deps, capture);
    const requests = await env.dynamo.requests();
    expect(requests.length).toBeGreaterThan(0);
    expectQueriesOnly(requests);
    return { ...printed, json: () => JSON.parse(printed.stdout) as Record<string, unknown> };
  };

  const seed = () => env.seed;
  const pick = (predicate: (run: SeededRun) => boolean, nth = 0): SeededRun => {
    const found = seed().runs.filter(predicate)[nth];
    if (!found) throw new Error('the seed has no such run');
    return found;
  };
  const stateOf = (stages: { stage: string; state: string }[]) =>
    Object.fromEntries(stages.map((s) => [s.stage, s.state]));
  /** The `runs` table truncates causes to 120 characters. */
  const shortCause = (cause: string | undefined) =>
    cause && cause.length > 120 ? `${cause.slice(0, 117)}…` : (cause ?? '');

  describe('runs <app>', () => {
    it('lists the app’s latest 20 runs, newest first, each with its stages', async () => {
      const expected = seed().runsOf('payments-api').slice(0, 20);

      const { code, json } = await command(['runs', 'payments-api', '--output', 'json']);

      expect(code).toBe(0);
      const rows = json() as unknown as (Record<string, unknown> & {
        stages: { stage: string; state: string }[];
      })[];
      expect(rows.map((r) => r.runId)).toEqual(expected.map((r) => r.runId));
      rows.forEach((row, i) => {
        const run = expected[i] as SeededRun;
        expect(row).toMatchObject({
          status: run.status,
          environment: run.environment,
          startedAt: run.startedAt,
          finishedAt: run.finishedAt,
        });
        expect(stateOf(row.stages)).toEqual(expectedStages(run));
      });
    });

    it('keeps to --env, --since and --limit', async () => {
      const since = (seed().runsOf('orders-web', { environment: 'prod' })[15] as SeededRun).startedAt;
      const expected = seed().runsOf('orders-web', { environment: 'prod', since }).slice(0, 9);

      const { code, json } = await command([
        'runs',
        'orders-web',
        '--env',
        'prod',
        '--since',
        since,
        '--limit',
        '9',
        '--output',
        'json',
      ]);

      expect(code).toBe(0);
      expect((json() as unknown as { runId: string }[]).map((r) => r.runId)).toEqual(
        expected.map((r) => r.runId),
      );
    });

    it('shows where each run got to, with a failed run’s error and its cause cut to 120 characters', async () => {
      const expected = seed().runsOf('ledger-worker', { environment: 'dev' });
      expect(expected.some((r) => r.status === 'FAILED' && (r.errorCause?.length ?? 0) > 120)).toBe(true);

      const table = await command(['runs', 'ledger-worker', '--env', 'dev', '--limit', '50']);
      const csv = await command([
        'runs',
        'ledger-worker',
        '--env',
        'dev',
        '--limit',
        '50',
        '--output',
        'csv',
      ]);

      expect(table.code).toBe(0);
      const lines = table.stdout.split('\n');
      for (const run of expected) {
        const line = lines.find((l) => l.includes(run.runId)) ?? '';
        expect(line).toContain(run.status);
        expect(line).toContain(run.status === 'SUCCEEDED' ? 'live' : `${run.failedStage} ✗`);
        if (run.errorName) expect(line).toContain(run.errorName);
      }
      expect(table.stdout).toContain(`${expected.length} runs (newest first; --limit 50)`);
      const { header, records } = csvRecords(csv.stdout);
      expect(header).toEqual([
        'started',
        'run',
        'env',
        'version',
        'build',
        'status',
        'reached',
        'seconds',
        'error',
        'cause',
      ]);
      expect(records.map((r) => [r.run, r.reached, r.error, r.cause, r.seconds])).toEqual(
        expected.map((run) => [
          run.runId,
          run.status === 'SUCCEEDED' ? 'live' : `${run.failedStage} ✗`,
          run.errorName ?? '',
          shortCause(run.errorCause),
          String(Math.round((Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000)),
        ]),
      );
    });

    it('answers an app without runs with none', async () => {
      const { code, stdout } = await command(['runs', 'no-such-app']);

      expect(code).toBe(0);
      expect(stdout).toContain('(none)');
      expect(stdout).toContain('0 runs');
    });
  });

  describe('status <app>', () => {
    it('shows the app’s latest run, stage by stage, with the exit code of its outcome', async () => {
      const [latest] = seed().runsOf('payments-api') as [SeededRun];

      const { code, json } = await command(['status', 'payments-api', '--output', 'json']);

      expect(code).toBe(latest.status === 'FAILED' ? 1 : 0);
      const answer = json() as { run: Record<string, unknown>; stages: { stage: string; state: string }[] };
      expect(answer.run).toMatchObject({ runId: latest.runId, status: latest.status });
      expect(stateOf(answer.stages)).toEqual(expectedStages(latest));
    });

    it('shows the latest run of one environment with --env', async () => {
      const [latest] = seed().runsOf('orders-web', { environment: 'prod' }) as [SeededRun];

      const { json } = await command(['status', 'orders-web', '--env', 'prod', '--output', 'json']);

      expect((json() as { run: { runId: string } }).run.runId).toBe(latest.runId);
    });

    it('exits 1 for a failed run and shows its stages done, failed and skipped, its error and cause', async () => {
      const failed = pick((r) => r.failedStage === 'Bake');

      const { code, json } = await command([
        'status',
        failed.appId,
        '--run',
        failed.runId,
        '--output',
        'json',
      ]);

      expect(code).toBe(1);
      const answer = json() as { run: Record<string, unknown>; stages: { stage: string; state: string }[] };
      expect(answer.run).toMatchObject({
        runId: failed.runId,
        status: 'FAILED',
        failedStage: 'Bake',
        errorName: 'BakeFailedError',
        errorCause: failed.errorCause,
        compensationStatus: failed.compensationStatus,
      });
      expect(stateOf(answer.stages)).toEqual(expectedStages(failed));
    });

    it('prints a failed run as tables and its stages as CSV', async () => {
      const failed = pick((r) => r.failedStage === 'SmokeTest');

      const table = await command(['status', failed.appId, '--run', failed.runId]);
      const csv = await command(['status', failed.appId, '--run', failed.runId, '--output', 'csv']);

      expect([table.code, csv.code]).toEqual([1, 1]);
      const run = Object.fromEntries(tableRows(table.stdout, `run ${failed.runId}`).slice(1));
      expect(run).toMatchObject({
        status: 'FAILED',
        failedStage: 'SmokeTest',
        errorName: 'SmokeTestFailedError',
      });
      const marks = { done: '✓ done', failed: '✗ failed', skipped: '- skipped' };
      expect(tableRecords(table.stdout, 'stages').map((s) => [s.stage, s.state])).toEqual(
        Object.entries(expectedStages(failed)).map(([stage, state]) => [stage, marks[state]]),
      );
      const { header, records } = csvRecords(csv.stdout);
      expect(header).toEqual(['runId', 'stage', 'state', 'seconds', 'ended', 'detail']);
      expect(records.map((r) => [r.runId, r.stage])).toEqual(PIPELINE_STAGES.map((s) => [failed.runId, s]));
      expect(records.find((r) => r.stage === 'Validate')?.detail).toBe(
        `InSpec ${failed.inspec?.passed} passed, ${failed.inspec?.failed} failed, ${failed.inspec?.skipped} skipped`,
      );
    });

    it('refuses a run of another app, and an app without runs, with exit 1 and one line', async () => {
      const other = pick((r) => r.appId === 'orders-web');

      const wrongApp = await command(['status', 'payments-api', '--run', other.runId]);
      const noRuns = await command(['status', 'no-such-app', '--env', 'prod']);

      expect(wrongApp).toMatchObject({
        code: 1,
        stdout: '',
        stderr: [`ami-pipeline: no run ${other.runId} of payments-api in the audit table`],
      });
      expect(noRuns).toMatchObject({
        code: 1,
        stdout: '',
        stderr: ['ami-pipeline: no runs of no-such-app in prod in the audit table'],
      });
    });

    // A failed command's cause is the last 2 KB of its stderr, many lines long. In a table cell it
    // breaks the one-row-per-line layout grep relies on, and cli-table3 renders a multi-line cell in
    // time cubic in its length (Cell#draw truncates the whole content once per line): about 3 s for
    // a 2 KB, 60-line cause, on every `status --follow` redraw.
    it('keeps a failed command’s multi-line cause on one table line', async () => {
      const failed = await writeRun('multiline-app', 'build-1', { at: 0 });
      await failRun(failed, 'Bake', 'BakeFailedError', 'bake command 1 ended Failed: one\ntwo\nthree');

      const { code, stdout } = await command(['status', 'multiline-app']);

      expect(code).toBe(1);
      const rows = tableRows(stdout, `run ${failed.runId}`).slice(1);
      expect(rows.filter(([field]) => field === '')).toEqual([]);
    });
  });

  // ---- runs this file writes, as the workers and the state machine would -------------------------

  const minutes = (n: number) => new Date(seed().now.getTime() + 3_600_000 + n * 60_000).toISOString();

  /** A RUNNING run of `appId` in dev, started `at` minutes after the seed, with PreProvision done. */
  const writeRun = async (appId: string, buildId: string, { at }: { at: number }): Promise<SeededRun> => {
    const runId = runIdFor(appId, 'dev', buildId);
    const run: SeededRun = {
      runId,
      appId,
      environment: 'dev',
      version: '9.0.0',
      buildId,
      kind: 'release',
      requestedBy: 'jenkins@example.com',
      executionArn: `arn:aws:states:eu-west-1:000000000000:execution:ami-pipeline-dev:${appId}-dev-${runId}`,
      startedAt: minutes(at),
      status: 'SUCCEEDED',
      finishedAt: '',
      recordedStart: true,
      events: [],
      resources: [],
    };
    await audit.recordRunStarted(runStartedOf(run));
    await event(run, 'PRE_PROVISIONED', 'PreProvision', at + 1);
    return run;
  };
  const event = (run: SeededRun, type: string, stage: string, at: number, extra: Partial<RunEvent> = {}) =>
    audit.recordEvent({ runId: run.runId, type, stage, at: minutes(at), ...extra });
  const resource = (
    run: SeededRun,
    resourceType: string,
    resourceId: string,
    at: number,
    detail?: ResourceRecord['detail'],
  ) =>
    audit.recordResource({
      runId: run.runId,
      appId: run.appId,
      environment: run.environment,
      executionArn: run.executionArn,
      buildId: run.buildId,
      version: run.version,
      resourceType,
      resourceId,
      createdAt: minutes(at),
      ...(detail ? { detail } : {}),
    });
  const failRun = async (
    run: SeededRun,
    stage: SeededRun['failedStage'],
    errorName: string,
    errorCause: string,
  ) => {
    Object.assign(run, {
      status: 'FAILED',
      failedStage: stage,
      errorName,
      errorCause,
      compensationStatus: 'COMPLETE',
      finishedAt: minutes(90),
    });
    await env.db.send(recordFailure(seed().table, run));
  };

  /**
   * Moves a run forward from the test as `--follow` reports progress: each step runs once, when
   * a stderr line matches it, after the previous step's writes.
   */
  const driver = (capture: ReturnType<typeof captureIo>, steps: [RegExp, () => Promise<unknown>][]) => {
    let next = 0;
    let chain: Promise<unknown> = Promise.resolve();
    const errors: unknown[] = [];
    capture.onErrLine((line) => {
      const step = steps[next];
      if (!step || !step[0].test(line)) return;
      next++;
      chain = chain.then(step[1]).catch((err: unknown) => errors.push(err));
    });
    return {
      async finished() {
        await chain;
        return { stepsTaken: next, errors };
      },
    };
  };
  /** stderr lines without their timestamp. */
  const progressLines = (stderr: string[]) => stderr.map((line) => line.replace(/^\S+ /, ''));

  describe('status --follow', () => {
    it('reports each stage change on stderr while the run moves, then the answer on stdout, exit 0', async () => {
      const run = await writeRun('follow-app', 'build-7', { at: 0 });
      const ami = 'ami-0f0f0f0f0f0f0f0f0';
      const capture = captureIo(false);
      const moves = driver(capture, [
        [
          / Bake running$/,
          async () => {
            await resource(run, 'AMI', ami, 20, {
              region: 'eu-west-1',
              snapshotIds: ['snap-0f0f0f0f0f0f0f0f0'],
            });
            await event(run, 'COMMAND_SUCCESS', 'bake', 20, { id: 'c-bake', detail: { mode: 'run' } });
          },
        ],
        [
          / Distribute running$/,
          async () => {
            await resource(run, 'LAUNCH_PERMISSION', `${ami}/111122223333`, 21, {
              amiId: ami,
              account: '111122223333',
            });
            await resource(run, 'KMS_GRANT', 'grant-1', 21, { grantee: '111122223333' });
          },
        ],
        [
          / Provision running$/,
          async () => {
            await resource(run, 'ASG', 'follow-app-dev-asg', 26);
            await event(run, 'COMMAND_SUCCESS', 'provision', 26, {
              id: 'c-provision',
              detail: { mode: 'apply' },
            });
          },
        ],
        [
          / Validate running$/,
          async () => {
            await resource(run, 'INSPEC_REPORT', 's3://reports/follow-app/report.json', 30, {
              passed: 200,
              failed: 1,
              skipped: 4,
            });
            await event(run, 'COMMAND_SUCCESS', 'validate', 30, {
              id: 'c-validate',
              detail: { mode: 'run' },
            });
          },
        ],
        [
          / SmokeTest running$/,
          () => event(run, 'TRAFFIC_SHIFTED', 'PostProvision', 31, { id: '10', detail: { percent: 10 } }),
        ],
        [
          / TrafficShift running$/,
          async () => {
            await event(run, 'TRAFFIC_SHIFTED', 'PostProvision', 36, { id: '50', detail: { percent: 50 } });
            await event(run, 'TRAFFIC_SHIFTED', 'PostProvision', 41, { id: '100', detail: { percent: 100 } });
          },
        ],
        [
          / ExportLogs running$/,
          () => resource(run, 'LOG_SUBSCRIPTION', '/app/follow-app/application#f', 42),
        ],
        [
          / RecordRelease running$/,
          async () => {
            await event(run, 'RELEASE_LIVE', 'PostProvision', 43);
            run.finishedAt = minutes(44);
            await env.db.send(recordSuccess(seed().table, run));
          },
        ],
      ]);

      const { code, stdout, stderr } = await command(['status', 'follow-app', '--follow'], capture);

      expect(await moves.finished()).toEqual({ stepsTaken: 8, errors: [] });
      expect(code).toBe(0);
      const lines = progressLines(stderr);
      const done = lines.filter((l) => / done/.test(l)).map((l) => l.split(' ')[0]);
      expect(done.filter((stage, i) => stage !== done[i - 1])).toEqual([...PIPELINE_STAGES]);
      for (const stage of PIPELINE_STAGES.slice(2)) {
        expect(lines.indexOf(`${stage} running`)).toBeGreaterThanOrEqual(0);
        expect(lines.indexOf(`${stage} running`)).toBeLessThan(
          lines.findIndex((l) => l.startsWith(`${stage} done`)),
        );
      }
      expect(lines).toContain(`Bake done 1140s ${ami}`);
      expect(lines).toContain('TrafficShift done 600s 10 → 50 → 100 %');
      // The answer, once, at the end: stdout holds no progress.
      expect(Object.fromEntries(tableRows(stdout, `run ${run.runId}`).slice(1))).toMatchObject({
        status: 'SUCCEEDED',
        appId: 'follow-app',
      });
      expect(tableRecords(stdout, 'stages').every((s) => s.state === '✓ done')).toBe(true);
    }, 30_000);

    it('reports a followed run’s failure on stderr and its answer as JSON on stdout', async () => {
      const run = await writeRun('follow-fails', 'build-3', { at: 0 });
      const capture = captureIo(false);
      const moves = driver(capture, [
        [
          / Bake running$/,
          () => event(run, 'COMMAND_FAILED', 'bake', 15, { id: 'c-bake', detail: { mode: 'run' } }),
        ],
        [
          / Bake failed/,
          async () => {
            await event(run, 'UNDONE', 'Compensate', 16, {
              id: 'DEREGISTER_IMAGE#ami-1',
              detail: { action: 'DEREGISTER_IMAGE' },
            });
            await failRun(
              run,
              'Bake',
              'BakeFailedError',
              'bake command c-bake ended Failed: Chef run failed',
            );
          },
        ],
      ]);

      const { stdout, stderr, json } = await command(
        ['status', 'follow-fails', '--follow', '--output', 'json'],
        capture,
      );

      expect(await moves.finished()).toEqual({ stepsTaken: 2, errors: [] });
      expect(progressLines(stderr)).toEqual([
        'AcquireLock done',
        'PreProvision done 60s',
        'Bake running',
        'Bake failed 840s',
        ...PIPELINE_STAGES.slice(3).map((stage) => `${stage} skipped`),
      ]);
      expect(stdout.startsWith('{')).toBe(true);
      const answer = json() as { run: Record<string, unknown>; stages: { stage: string; state: string }[] };
      expect(answer.run).toMatchObject({
        status: 'FAILED',
        failedStage: 'Bake',
        errorName: 'BakeFailedError',
      });
      expect(stateOf(answer.stages)).toEqual(expectedStages(run));
    }, 30_000);

    // cli/main.ts, `status` action: `exitCodeOf(ended)` is given follow()'s `{ run, stages }`, whose
    // `status` is undefined, so `status --follow` exits 0 however the run ended (`trigger --wait`
    // passes `ended.run`). README: "status sample-app --follow … (exit 1 if it fails)".
    it('exits 1 when the followed run ends FAILED', async () => {
      const failed = pick((r) => r.failedStage === 'TrafficShift');

      const { code } = await command(['status', failed.appId, '--run', failed.runId, '--follow']);

      expect(code).toBe(1);
    });

    it('waits for a run named by --run that has not started yet (it may be queued behind the lock)', async () => {
      const runId = runIdFor('late-app', 'dev', 'build-1');
      const capture = captureIo(false);
      let run: SeededRun | undefined;
      const moves = driver(capture, [
        [
          new RegExp(`waiting for run ${runId} to start`),
          async () => {
            run = await writeRun('late-app', 'build-1', { at: 0 });
            await failRun(run, 'Bake', 'BakeFailedError', 'bake command ended Failed');
          },
        ],
      ]);

      const { code } = await command(['status', 'late-app', '--run', runId, '--follow'], capture);

      expect(await moves.finished()).toEqual({ stepsTaken: 1, errors: [] });
      expect(run?.runId).toBe(runId);
      expect(code).toBe(1);
    }, 30_000);

    it('gives up on a run that never ends, with one line and exit 1', async () => {
      const run = await writeRun('stuck-app', 'build-1', { at: 0 });

      // The default budget is 24 h (--timeout <minutes> sets it); here it is spent at once.
      const { code, stderr } = await cli(
        ['status', 'stuck-app', '--run', run.runId, '--follow'],
        { ...deps, followTimeoutMs: 0 },
        captureIo(false),
      );

      expect(code).toBe(1);
      expect(stderr.at(-1)).toMatch(
        new RegExp(
          `^ami-pipeline: run ${run.runId} is still RUNNING after 0 min \\(see its execution: arn:aws:states:`,
        ),
      );
    });

    it('on a terminal, draws a finished run once on stdout, nothing on stderr', async () => {
      const failed = pick((r) => r.failedStage === 'TrafficShift');
      const capture = captureIo(true);

      const { stdout, stderr } = await command(
        ['status', failed.appId, '--run', failed.runId, '--follow'],
        capture,
      );

      expect(stderr).toEqual([]);
      expect(stdout).not.toContain('\u001b[');
      expect(Object.fromEntries(tableRows(stdout, `run ${failed.runId}`).slice(1))).toMatchObject({
        status: 'FAILED',
        failedStage: 'TrafficShift',
      });
      expect(tableRecords(stdout, 'stages').find((s) => s.stage === 'TrafficShift')?.state).toBe('✗ failed');
    });
  });
});
