import { runProgress, type StageProgress } from '../../shared/progress';
import { CliError } from '../errors';
import { render, type CommandResult, type Io, type OutputFormat } from '../output';
import { type AuditReader, type Item, type Window } from '../queries';
import { progressLine, progressTable, runSummary, runTable } from '../views';
import { secondsBetween } from '../time';

export interface StatusOptions {
  environment?: string;
  runId?: string;
}

/** The run `status` shows: the one named, or the app's latest (in the environment, if given). */
const findRun = async (reader: AuditReader, appId: string, options: StatusOptions): Promise<Item> => {
  if (options.runId) {
    const run = await reader.run(options.runId);
    if (!run || run.appId !== appId)
      throw new CliError(`no run ${options.runId} of ${appId} in the audit table`);
    return run;
  }
  const [latest] = await reader.runsOfApp(appId, {
    ...(options.environment ? { environment: options.environment } : {}),
    limit: 1,
  });
  if (!latest) {
    throw new CliError(
      `no runs of ${appId}${options.environment ? ` in ${options.environment}` : ''} in the audit table`,
    );
  }
  return latest;
};

export const statusResult = (run: Item, stages: StageProgress[]): CommandResult => {
  const progress = progressTable(stages);
  return {
    data: { run: runSummary(run), stages },
    tables: [runTable(run), progress],
    // The plain state words (done, failed…), not the table's marks.
    csv: {
      columns: ['runId', ...progress.columns],
      rows: stages.map((st) => [String(run.runId), st.stage, st.state, st.seconds, st.endedAt, st.detail]),
    },
  };
};

/**
 * How long `--follow` waits by default: longer than any run can take (the lock's six-hour wait plus
 * the longest stage timeouts); a run still RUNNING then has lost its execution (stopped by hand, or
 * its failure could not be recorded).
 */
export const DEFAULT_FOLLOW_TIMEOUT_MS = 24 * 3600_000;

const minutes = (ms: number) => Math.round(ms / 60_000);

/** Exit code of a finished run: 0 succeeded, 1 failed (and still running: 0, it has not failed). */
export const exitCodeOf = (run: Item): 0 | 1 => (run.status === 'FAILED' ? 1 : 0);

export const status = async (reader: AuditReader, appId: string, options: StatusOptions) => {
  const run = await findRun(reader, appId, options);
  const items = await reader.runItems(String(run.runId));
  return { run, result: statusResult(run, runProgress(run, items)) };
};

/**
 * `status --follow`: re-reads the run until it ends. On a terminal (table output) the display is
 * redrawn in place; otherwise each stage change is one line on stderr and the answer comes at the end.
 */
export const follow = async (
  reader: AuditReader,
  appId: string,
  options: StatusOptions & {
    intervalMs: number;
    format: OutputFormat;
    io: Io;
    /** Print the answer when the run ends (the caller may print its own). */
    printFinal?: boolean;
    /** Give up (exit 1) when the run has not ended after this long. */
    timeoutMs?: number;
  },
): Promise<{ run: Item; stages: StageProgress[] }> => {
  const { io } = options;
  const started = Date.now();
  const timeoutMs = options.timeoutMs ?? DEFAULT_FOLLOW_TIMEOUT_MS;
  const pause = () => new Promise((resolve) => setTimeout(resolve, options.intervalMs));
  const outOfTime = () => Date.now() - started >= timeoutMs;
  // A run named by id may not be recorded yet: PreProvision writes it once the run holds the lock.
  let first = options.runId ? await reader.run(options.runId) : await findRun(reader, appId, options);
  while (!first && options.runId) {
    if (outOfTime())
      throw new CliError(`run ${options.runId} has not started after ${minutes(timeoutMs)} min`);
    io.err(`waiting for run ${options.runId} to start (it may be waiting for the lock)`);
    await pause();
    first = await reader.run(options.runId);
  }
  if (!first || first.appId !== appId)
    throw new CliError(`no run ${options.runId} of ${appId} in the audit table`);
  const runId = String(first.runId);
  const live = io.isTTY && options.format === 'table' && options.printFinal !== false;
  const seen = new Map<string, string>();
  let drawn = 0;
  for (;;) {
    const [run, items] = await Promise.all([reader.run(runId), reader.runItems(runId)]);
    if (!run) throw new CliError(`run ${runId} disappeared from the audit table`);
    const stages = runProgress(run, items);
    const done = run.status !== 'RUNNING';
    if (live) {
      // Move up over the last frame and clear it, then draw the new one.
      const frame = render(statusResult(run, stages), 'table');
      io.out(`${drawn ? `\u001b[${drawn}A\u001b[0J` : ''}${frame}`);
      drawn = frame.split('\n').length - 1;
    } else {
      for (const stage of stages) {
        const line = `${stage.stage} ${stage.state}${stage.seconds !== undefined ? ` ${stage.seconds}s` : ''}${stage.detail ? ` ${stage.detail}` : ''}`;
        if (seen.get(stage.stage) !== line && stage.state !== 'pending')
          io.err(`${new Date().toISOString()} ${line}`);
        seen.set(stage.stage, line);
      }
      if (done && options.printFinal !== false) io.out(render(statusResult(run, stages), options.format));
    }
    if (done) return { run, stages };
    if (outOfTime()) {
      throw new CliError(
        `run ${runId} is still RUNNING after ${minutes(timeoutMs)} min (see its execution: ${String(run.executionArn)})`,
      );
    }
    await pause();
  }
};

/** `runs <app>`: the app's runs, newest first, each with where it got to and how long it took. */
export const runs = async (
  reader: AuditReader,
  appId: string,
  options: Window & { environment?: string; limit: number },
): Promise<CommandResult> => {
  const rows = (await reader.runsWithItems(appId, options)).map(({ run, items }) => ({
    run,
    stages: runProgress(run, items),
  }));
  return {
    data: rows.map(({ run, stages }) => ({ ...runSummary(run), stages })),
    tables: [
      {
        title: `runs of ${appId}${options.environment ? ` in ${options.environment}` : ''}`,
        columns: [
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
        ],
        rows: rows.map(({ run, stages }) => [
          String(run.startedAt),
          String(run.runId),
          String(run.environment),
          String(run.version),
          String(run.buildId),
          String(run.status),
          progressLine(run, stages),
          secondsBetween(run.startedAt, run.finishedAt),
          run.errorName as string | undefined,
          typeof run.errorCause === 'string' && run.errorCause.length > 120
            ? `${run.errorCause.slice(0, 117)}…`
            : (run.errorCause as string | undefined),
        ]),
      },
    ],
    notes: [`${rows.length} run${rows.length === 1 ? '' : 's'} (newest first; --limit ${options.limit})`],
  };
};
