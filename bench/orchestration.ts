import { LocalPipeline } from '../test/harness/pipeline';
import type { ExecutionRecord } from '../test/harness/sim/sfn';
import { triggerMessage } from '../test/fixtures/messages';
import { within, type BenchSection, type Target } from './section';

/**
 * Issue 7, section 2: what one successful run costs the orchestration, from the local harness (the
 * real state machine definition and the real handlers): state transitions, Lambda invocations and
 * AWS API calls, with the bake and provision commands simulated at 5 minutes and at 5 hours. The
 * long stages wait on a task token (completion arrives by event), so the counts must not depend on
 * how long they take; a 30-second polling loop is priced beside them for comparison.
 */

/**
 * List prices, us-east-1, as published on aws.amazon.com/step-functions/pricing and
 * aws.amazon.com/lambda/pricing (checked 2026-11): Standard workflows bill per state transition;
 * Lambda bills per request and per GB-second (the functions run on arm64).
 */
export const PRICES = {
  stateTransition: 0.025 / 1000,
  lambdaRequest: 0.2 / 1_000_000,
  lambdaArmGbSecond: 0.0000133334,
} as const;

/**
 * The harness answers AWS calls in microseconds; in AWS a call takes tens of milliseconds. The
 * Lambda duration estimate adds this much per SDK call a worker makes (an assumption, printed).
 */
const ASSUMED_MS_PER_AWS_CALL = 40;

/** The comparison: a loop of Wait 30 s → check (a Lambda) → Choice per long stage. */
const POLL_SECONDS = 30;
const POLL_TRANSITIONS_PER_ITERATION = 3;

/** The budget the issue sets for a full run with a three-step shift. */
const TRANSITION_BUDGET = 40;

export interface RunCost {
  label: string;
  simulatedStageSeconds: number;
  status: string;
  /** States entered plus retries: what Step Functions bills for a Standard workflow. */
  transitions: number;
  trafficSteps: number;
  lambdaInvocations: Record<string, number>;
  lambdaInvocationsTotal: number;
  /** Reconciler passes while the run was in flight (scheduled every 5 min per stage, runs or not). */
  reconcilerPasses: number;
  /** AWS calls of those passes, heartbeats included. */
  reconcilerCalls: number;
  heartbeats: number;
  /** SDK calls the workers made, and integration calls the state machine made (DynamoDB, SNS). */
  sdkCalls: number;
  integrationCalls: number;
  localHandlerMs: number;
  estimatedCostUsd: { stepFunctions: number; lambdaRequests: number; lambdaDuration: number; total: number };
  polling: { iterations: number; transitions: number; lambdaInvocations: number; costUsd: number };
}

/** Counts every invocation of a handler (and its local run time) while `fn` runs. */
const countInvocations = async <T>(
  pipeline: LocalPipeline,
  fn: () => Promise<T>,
): Promise<{ result: T; counts: Record<string, number>; ms: Record<string, number> }> => {
  const counts: Record<string, number> = {};
  const ms: Record<string, number> = {};
  const original = pipeline.lambda.invoke.bind(pipeline.lambda);
  pipeline.lambda.invoke = async (...args: Parameters<typeof original>) => {
    const key = pipeline.lambda.definition(args[0]).key;
    counts[key] = (counts[key] ?? 0) + 1;
    const started = performance.now();
    try {
      return await original(...args);
    } finally {
      ms[key] = (ms[key] ?? 0) + performance.now() - started;
    }
  };
  try {
    return { result: await fn(), counts, ms };
  } finally {
    pipeline.lambda.invoke = original;
  }
};

const transitionsOf = (execution: ExecutionRecord): number =>
  execution.events.filter((e) => e.type === 'StateEntered' || e.type === 'StateRetried').length;

const runOnce = async (
  pipeline: LocalPipeline,
  appId: string,
  buildId: string,
  version: string,
  label: string,
  stageSeconds: number,
): Promise<RunCost> => {
  for (const step of ['bake', 'provision'] as const)
    pipeline.commands.setScenario(appId, step, { outcome: 'success', simulatedSeconds: stageSeconds });
  const callsBefore = pipeline.faults.calls.length;
  const known = new Set(pipeline.sfn.list().map((e) => e.executionArn));
  const { counts, ms } = await countInvocations(pipeline, async () => {
    pipeline.publishTrigger(triggerMessage(pipeline.name('ArtifactsBucket'), { appId, buildId, version }));
    await within(120_000, pipeline.settle(), `${label}: the run`);
  });
  const execution = pipeline.sfn
    .list()
    .find((e) => !known.has(e.executionArn) && e.name.startsWith(`${appId}-`));
  if (!execution) throw new Error(`${label}: no execution started`);
  const calls = pipeline.faults.calls.slice(callsBefore).filter((c) => c.caller !== 'harness');
  // The scheduled reconciler's calls are its own (it runs every 5 minutes, runs or not): apart.
  const reconcilerCalls = calls.filter((c) => c.caller === 'reconciler');
  const sdkCalls = calls.filter((c) => c.layer === 'sdk' && c.caller !== 'reconciler').length;
  const integrationCalls = calls.filter((c) => c.layer === 'states' && c.service !== 'Lambda').length;
  const heartbeats = reconcilerCalls.filter((c) => c.operation === 'SendTaskHeartbeat').length;
  const reconcilerPasses = counts.reconciler ?? 0;
  // Per run: the invocations the run caused; the scheduled reconciler runs whether or not it exists.
  const perRun = Object.fromEntries(Object.entries(counts).filter(([key]) => key !== 'reconciler'));
  const lambdaInvocationsTotal = Object.values(perRun).reduce((sum, n) => sum + n, 0);
  const perRunMs = Object.entries(ms)
    .filter(([key]) => key !== 'reconciler')
    .reduce((sum, [, v]) => sum + v, 0);
  const gbSeconds =
    Object.keys(perRun).reduce(
      (sum, key) => sum + ((ms[key] ?? 0) / 1000) * (pipeline.lambda.definition(key).memorySize / 1024),
      0,
    ) +
    ((sdkCalls * ASSUMED_MS_PER_AWS_CALL) / 1000) * (256 / 1024);
  const transitions = transitionsOf(execution);
  const stepFunctions = transitions * PRICES.stateTransition;
  const lambdaRequests = lambdaInvocationsTotal * PRICES.lambdaRequest;
  const lambdaDuration = gbSeconds * PRICES.lambdaArmGbSecond;

  // The same run with each long stage polled every 30 s instead of waiting on a token.
  const iterations = 2 * Math.ceil(stageSeconds / POLL_SECONDS);
  const pollTransitions = transitions + iterations * POLL_TRANSITIONS_PER_ITERATION;
  const pollInvocations = lambdaInvocationsTotal + iterations;
  const pollCost =
    pollTransitions * PRICES.stateTransition +
    pollInvocations * PRICES.lambdaRequest +
    lambdaDuration +
    ((iterations * ASSUMED_MS_PER_AWS_CALL) / 1000) * (256 / 1024) * PRICES.lambdaArmGbSecond;

  const trafficSteps = pipeline.path(execution.executionArn).filter((state) => state === 'ShiftStep').length;

  return {
    label,
    simulatedStageSeconds: stageSeconds,
    status: execution.status,
    transitions,
    trafficSteps,
    lambdaInvocations: perRun,
    lambdaInvocationsTotal,
    reconcilerPasses,
    reconcilerCalls: reconcilerCalls.length,
    heartbeats,
    sdkCalls,
    integrationCalls,
    localHandlerMs: Math.round(perRunMs),
    estimatedCostUsd: {
      stepFunctions,
      lambdaRequests,
      lambdaDuration,
      total: stepFunctions + lambdaRequests + lambdaDuration,
    },
    polling: {
      iterations,
      transitions: pollTransitions,
      lambdaInvocations: pollInvocations,
      costUsd: pollCost,
    },
  };
};

const usd = (value: number): string => `$${value.toFixed(value < 0.01 ? 5 : 4)}`;

export const orchestration = async (): Promise<BenchSection> => {
  const pipeline = await LocalPipeline.start({ faults: true });
  try {
    const appId = 'bench-orchestration';
    // A first release goes straight to 100 %; the measured runs replace it in three steps.
    const first = await runOnce(pipeline, appId, `${appId}-0`, '1.0.0', 'first release (one 100 % step)', 0);
    const short = await runOnce(pipeline, appId, `${appId}-5m`, '1.1.0', '5-minute bake and provision', 300);
    const long = await runOnce(
      pipeline,
      appId,
      `${appId}-5h`,
      '1.2.0',
      '5-hour bake and provision',
      5 * 3600,
    );
    const runs = [first, short, long];

    const callsPerPass = long.reconcilerCalls / Math.max(1, long.reconcilerPasses);
    const reconcilerPerDay =
      288 *
      (PRICES.lambdaRequest +
        ((callsPerPass * ASSUMED_MS_PER_AWS_CALL) / 1000) *
          (pipeline.lambda.definition('reconciler').memorySize / 1024) *
          PRICES.lambdaArmGbSecond);
    const rows: [string, ...string[]][] = [
      ['', ...runs.map((r) => r.label)],
      ['status', ...runs.map((r) => r.status)],
      ['traffic steps', ...runs.map((r) => String(r.trafficSteps))],
      ['state transitions', ...runs.map((r) => String(r.transitions))],
      ['Lambda invocations (per run)', ...runs.map((r) => String(r.lambdaInvocationsTotal))],
      ['AWS SDK calls by workers', ...runs.map((r) => String(r.sdkCalls))],
      ['service integration calls (DynamoDB, SNS)', ...runs.map((r) => String(r.integrationCalls))],
      [
        'reconciler calls meanwhile (incl. heartbeats)',
        ...runs.map((r) => `${r.reconcilerCalls} (${r.heartbeats})`),
      ],
      [
        'reconciler passes meanwhile (scheduled, not per run)',
        ...runs.map((r) => String(r.reconcilerPasses)),
      ],
      ['est. cost: Step Functions', ...runs.map((r) => usd(r.estimatedCostUsd.stepFunctions))],
      [
        'est. cost: Lambda requests + duration',
        ...runs.map((r) => usd(r.estimatedCostUsd.lambdaRequests + r.estimatedCostUsd.lambdaDuration)),
      ],
      ['est. cost: total per run', ...runs.map((r) => usd(r.estimatedCostUsd.total))],
      ['30 s polling loop (modelled): transitions', ...runs.map((r) => String(r.polling.transitions))],
      [
        '30 s polling loop (modelled): Lambda invocations',
        ...runs.map((r) => String(r.polling.lambdaInvocations)),
      ],
      ['30 s polling loop (modelled): est. cost', ...runs.map((r) => usd(r.polling.costUsd))],
    ];
    const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
    const text = [
      ...rows.map((row) =>
        row
          .map((cell, i) => (i === 0 ? cell.padEnd(widths[0] ?? 0) : cell.padStart(widths[i] ?? 0)))
          .join('  '),
      ),
      '',
      `Prices: us-east-1 list, $${(PRICES.stateTransition * 1000).toFixed(3)} per 1,000 transitions, $${(PRICES.lambdaRequest * 1e6).toFixed(2)} per 1M Lambda requests, $${PRICES.lambdaArmGbSecond} per GB-s (arm64).`,
      `Lambda duration = local handler time + ${ASSUMED_MS_PER_AWS_CALL} ms per AWS call (assumed; the harness answers in microseconds).`,
      `Polling loop: each of bake and provision polled every ${POLL_SECONDS} s (Wait → check → Choice = ${POLL_TRANSITIONS_PER_ITERATION} transitions + 1 invocation per iteration).`,
      `The reconciler runs every 5 minutes per stage whether or not a run is in flight: 288 passes a day, about ${usd(reconcilerPerDay)}`,
      `a day at ${callsPerPass.toFixed(1)} AWS calls per pass. It heartbeats waiting tasks and finishes commands whose event was lost, so`,
      'it is not a per-run cost; its calls are shown apart.',
    ].join('\n');

    const targets: Target[] = [
      {
        name: `≤ ${TRANSITION_BUDGET} transitions for a full run with a three-step shift`,
        met:
          short.trafficSteps === 3 &&
          long.trafficSteps === 3 &&
          Math.max(short.transitions, long.transitions) <= TRANSITION_BUDGET,
        detail: `${short.transitions} (5 min), ${long.transitions} (5 h); ${short.trafficSteps} traffic steps`,
      },
      {
        name: 'transitions, invocations and API calls constant in bake/provision duration',
        met:
          short.transitions === long.transitions &&
          short.lambdaInvocationsTotal === long.lambdaInvocationsTotal &&
          short.sdkCalls + short.integrationCalls === long.sdkCalls + long.integrationCalls,
        detail: `transitions ${short.transitions} vs ${long.transitions}, invocations ${short.lambdaInvocationsTotal} vs ${long.lambdaInvocationsTotal}, AWS calls ${short.sdkCalls + short.integrationCalls} vs ${long.sdkCalls + long.integrationCalls} (the scheduled reconciler's heartbeats apart: ${short.heartbeats} vs ${long.heartbeats})`,
      },
      {
        name: 'every measured run succeeded',
        met: runs.every((r) => r.status === 'SUCCEEDED'),
        detail: runs.map((r) => r.status).join(', '),
      },
    ];
    return {
      id: 'orchestration',
      title: 'Orchestration cost per run (local harness, real definition and handlers)',
      text,
      data: {
        prices: PRICES,
        assumedMsPerAwsCall: ASSUMED_MS_PER_AWS_CALL,
        pollSeconds: POLL_SECONDS,
        runs,
        reconciler: { passesPerDay: 288, callsPerPass, costPerDayUsd: reconcilerPerDay },
      },
      targets,
    };
  } finally {
    await pipeline.stop();
  }
};
