import { LocalPipeline } from '../test/harness/pipeline';
import { triggerMessage } from '../test/fixtures/messages';
import { median, within, type BenchSection, type Target } from './section';

/**
 * Issue 7, section 4: throughput of the harness. N runs of distinct apps are triggered at once and
 * go through the real state machine and handlers in one process; the time per run is printed so a
 * regression in the harness or the workers shows up. Nothing here is asserted against a clock.
 */

const percentile = (sorted: readonly number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;

export const throughput = async (options: { runs?: number } = {}): Promise<BenchSection> => {
  const runs = options.runs ?? 50;
  const pipeline = await LocalPipeline.start();
  try {
    const bucket = pipeline.name('ArtifactsBucket');
    // One warm-up run: handler modules load and the emulators warm up outside the measurement.
    pipeline.publishTrigger(triggerMessage(bucket, { appId: 'bench-warmup', buildId: 'bench-warmup-1' }));
    await within(60_000, pipeline.settle(), 'the warm-up run');
    const known = new Set(pipeline.sfn.list().map((e) => e.executionArn));

    const cpuBefore = process.cpuUsage();
    const startedAt = performance.now();
    for (let n = 0; n < runs; n++) {
      const appId = `bench-tp-${String(n).padStart(2, '0')}`;
      pipeline.publishTrigger(triggerMessage(bucket, { appId, buildId: `${appId}-1` }));
    }
    await within(300_000, pipeline.settle(), `${runs} runs`);
    const wallMs = performance.now() - startedAt;
    const cpu = process.cpuUsage(cpuBefore);

    const executions = pipeline.sfn.list().filter((e) => !known.has(e.executionArn));
    const succeeded = executions.filter((e) => e.status === 'SUCCEEDED');
    const durations = executions
      .map((e) => (e.stopDate?.getTime() ?? 0) - e.startDate.getTime())
      .sort((a, b) => a - b);
    const figures = {
      runs,
      executions: executions.length,
      succeeded: succeeded.length,
      wallMs: Math.round(wallMs),
      amortizedMsPerRun: Math.round(wallMs / Math.max(1, executions.length)),
      runsPerMinute: Number(((executions.length / wallMs) * 60_000).toFixed(1)),
      runMs: {
        median: median(durations),
        p95: percentile(durations, 95),
        max: durations.at(-1) ?? 0,
      },
      cpuMs: Math.round((cpu.user + cpu.system) / 1000),
      transitions: executions.reduce(
        (sum, e) => sum + e.events.filter((ev) => ev.type === 'StateEntered').length,
        0,
      ),
    };
    const text = [
      `${figures.executions} runs started at once, ${figures.succeeded} succeeded, in ${figures.wallMs} ms wall`,
      `  amortized ${figures.amortizedMsPerRun} ms per run (${figures.runsPerMinute} runs a minute); ` +
        `each run start→end median ${figures.runMs.median} ms, p95 ${figures.runMs.p95} ms, max ${figures.runMs.max} ms`,
      `  ${figures.transitions} state transitions, ${figures.cpuMs} ms of CPU in this process ` +
        `(${Math.round(figures.cpuMs / Math.max(1, figures.executions))} ms per run)`,
    ].join('\n');
    const targets: Target[] = [
      {
        name: `${runs} concurrent simulated runs complete`,
        met: executions.length === runs && succeeded.length === runs,
        detail: `${succeeded.length}/${runs} SUCCEEDED`,
      },
    ];
    return {
      id: 'throughput',
      title: `Harness throughput: ${runs} runs at once`,
      text,
      data: figures,
      targets,
    };
  } finally {
    await pipeline.stop();
  }
};
