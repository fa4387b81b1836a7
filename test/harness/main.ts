/**
 * `npm start`: one release of config/apps/sample-app.yml through the real state machine and the
 * real handlers, against the local harness. Prints each state as it runs, then the run summary and
 * the audit records read back from the (dynalite) audit table.
 *
 *   npm start                               the sample app's release
 *   npm start -- --scenario rule-violation  and: duplicate, lock-contention, rejected
 *   npm start -- --reset                    forget the local state in .local/ first
 */
import './polyfills';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { parseYaml } from '../../shared/config/files';
import { LocalPipeline } from './pipeline';
import type { ExecutionEvent, ExecutionRecord } from './sim/sfn';
import { LOCAL_ACCOUNT_ID, REPO_ROOT } from './template';

const SCENARIOS = {
  release: "the sample app's first release, then a second one switched blue-green (10 → 50 → 100 %)",
  'smoke-fails': 'the smoke test through the ALB fails: blue keeps 100 %, green is destroyed',
  'canary-fails': 'green answers 5xx at the 50 % step: weights restored, green destroyed, blue still live',
  'rule-violation':
    'an app config that breaks platform rules: the run fails in PreProvision, every violation listed',
  duplicate: 'the same trigger delivered three times: one run',
  'lock-contention': 'two builds of the same app at once: the second waits for the first',
  rejected: 'a malformed trigger: kept in the rejections queue and the audit table, nothing starts',
  'bake-fails': 'Packer fails after making an AMI: compensation removes the AMI and its snapshot',
  'no-ami': 'Packer exits 0 without an AMI: the bake fails, nothing is left',
  'inspec-fails':
    'InSpec finds more failed controls than allowed: green stack destroyed, AMI, shares and grant removed',
  'provision-fails': 'terraform apply fails half-way: the partial green stack is destroyed',
  'unencrypted-ami':
    'the baked AMI is not encrypted with the stage key: Distribute replaces it with an encrypted copy',
  'lost-event': "the bake's completion event is lost: the scheduled reconciler completes the stage",
  'long-bake': 'a 5-minute and a 5-hour bake: same state transitions, only heartbeats differ',
  approval:
    'approval required (as in prod): the run waits after Validate until an approver approves it through the approval URL',
  regions:
    "the AMI copied to eu-central-1 and us-east-1 with each region's key, shared with two accounts, its ids published per region",
  'region-fails':
    "the copy to us-east-1 fails: every region's copies, shares and grants are removed, nothing is published",
} as const;

/** The distribution regions the `regions` scenarios give the stage, each with a (local) stage key. */
const LOCAL_REGIONS = ['eu-central-1', 'us-east-1'];
const localRegionKey = (region: string) =>
  `arn:aws:kms:${region}:${LOCAL_ACCOUNT_ID}:key/mrk-10ca1${region.replace(/-/g, '')}0000000000000000`;
type Scenario = keyof typeof SCENARIOS;

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'release' },
    stage: { type: 'string', default: 'dev' },
    'state-dir': { type: 'string', default: path.join(REPO_ROOT, '.local') },
    reset: { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

const usage = () =>
  [
    'usage: npm start -- [--scenario <name>] [--reset] [--verbose] [--stage dev]',
    '',
    'scenarios:',
    ...Object.entries(SCENARIOS).map(([name, text]) => `  ${name.padEnd(16)} ${text}`),
    '',
    'Local state (DynamoDB via dynalite, S3 via s3rver) is kept in --state-dir (default .local/);',
    '--reset clears it first.',
  ].join('\n');

const color = (code: number) => (text: string) =>
  process.stdout.isTTY ? `\u001b[${code}m${text}\u001b[0m` : text;
const dim = color(2);
const green = color(32);
const red = color(31);
const bold = color(1);

const printEvent = (() => {
  const entered = new Map<string, number>();
  return (execution: ExecutionRecord, event: ExecutionEvent) => {
    const who = dim(execution.name);
    const key = `${execution.executionArn}/${event.state}`;
    if (event.type === 'StateEntered') entered.set(key, event.timestamp);
    if (event.type === 'StateExited') {
      const ms = event.timestamp - (entered.get(key) ?? event.timestamp);
      console.log(`  ${who}  ${green('✓')} ${String(event.state).padEnd(26)} ${dim(`${ms} ms`)}`);
    } else if (event.type === 'StateFailed') {
      console.log(`  ${who}  ${red('✗')} ${String(event.state).padEnd(26)} ${red(String(event.error))}`);
    } else if (event.type === 'StateRetried') {
      console.log(`  ${who}  ${dim('↻')} ${String(event.state).padEnd(26)} ${dim('retrying')}`);
    }
  };
})();

const main = async (): Promise<number> => {
  if (values.help) {
    console.log(usage());
    return 0;
  }
  const scenario = values.scenario as Scenario;
  if (!(scenario in SCENARIOS)) {
    console.error(`unknown scenario "${values.scenario}"\n\n${usage()}`);
    return 2;
  }
  const stateDir = values['state-dir'];
  if (values.reset) rmSync(stateDir, { recursive: true, force: true });

  const pipeline = await LocalPipeline.start({
    stage: values.stage,
    stateDir,
    logLevel: values.verbose ? 'INFO' : 'SILENT',
    // Visible but short waits for the lock scenario.
    retryIntervalOverrides: { AcquireLock: 150 },
    onEvent: printEvent,
    // The approval gate is off in dev; this scenario turns it on, as prod has it.
    ...(scenario === 'approval'
      ? { stageOverrides: { approval: { required: true, timeoutSeconds: 3600 } } }
      : {}),
    // Two distribution regions, each with its stage key, for the apps that ask for them.
    ...(scenario === 'regions' || scenario === 'region-fails'
      ? {
          stageOverrides: {
            distribution: {
              regions: Object.fromEntries(LOCAL_REGIONS.map((r) => [r, { kmsKeyArn: localRegionKey(r) }])),
            },
          },
        }
      : {}),
  });
  try {
    console.log(bold(`ami-pipeline · local run · stage ${values.stage} · scenario ${scenario}`));
    console.log(dim(`  ${SCENARIOS[scenario]}`));
    console.log(
      dim(
        `  state kept in ${path.relative(process.cwd(), stateDir) || '.'} (dynalite + s3rver on 127.0.0.1)\n`,
      ),
    );
    const ok = await runScenario(pipeline, scenario);
    return ok ? 0 : 1;
  } finally {
    await pipeline.stop();
  }
};

const runScenario = async (pipeline: LocalPipeline, scenario: Scenario): Promise<boolean> => {
  const bucket = pipeline.name('ArtifactsBucket');
  const buildId = `local-${new Date().toISOString().replace(/[-:.]/g, '').slice(0, 15)}-${process.pid}`;
  const appConfigText = readFileSync(path.join(REPO_ROOT, 'config/apps/sample-app.yml'), 'utf8');
  const appConfig = parseYaml(appConfigText) as Record<string, unknown>;

  // Jenkins uploads the app config and the artifact next to each other, then publishes.
  const upload = async (key: string, body: string) => {
    await pipeline.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    return `s3://${bucket}/${key}`;
  };
  const message = async (build: string, version: string, config: unknown = appConfigText) => {
    const artifactBody = `sample-app ${version}`;
    const configUri = await upload(
      `inputs/sample-app/${build}/app-config.yml`,
      typeof config === 'string' ? config : JSON.stringify(config),
    );
    return {
      schemaVersion: 1,
      appId: 'sample-app',
      environment: pipeline.template.stage.stage,
      version,
      buildId: build,
      kind: 'release',
      appConfig: { s3Uri: configUri },
      artifact: {
        s3Uri: await upload(`inputs/sample-app/${build}/sample-app.tar.gz`, artifactBody),
        sha256: createHash('sha256').update(artifactBody).digest('hex'),
      },
      requestedBy: 'jenkins@example.com',
    };
  };
  const publish = (body: unknown, label: string) => {
    const sent = pipeline.publishTrigger(body);
    console.log(`${bold('→ trigger')} ${label} ${dim(`(SNS message ${sent.messageId})`)}`);
    return sent;
  };

  const before = new Set(pipeline.sfn.list().map((e) => e.executionArn));
  let expectation: (executions: ExecutionRecord[]) => boolean;
  switch (scenario) {
    case 'release': {
      publish(await message(`${buildId}-1`, '1.0.0'), `sample-app 1.0.0, build ${buildId}-1`);
      await pipeline.settle();
      publish(await message(`${buildId}-2`, '1.1.0'), `sample-app 1.1.0, build ${buildId}-2`);
      expectation = (ex) => ex.length === 2 && ex.every((e) => e.status === 'SUCCEEDED');
      break;
    }
    case 'smoke-fails':
    case 'canary-fails': {
      publish(await message(`${buildId}-1`, '2.0.0'), `sample-app 2.0.0 (blue), build ${buildId}-1`);
      await pipeline.settle();
      pipeline.elb.setScenario(
        'sample-app',
        scenario === 'smoke-fails' ? { smokeStatus: 503 } : { errorsFromPercent: 50, errorRate: 0.2 },
      );
      publish(await message(`${buildId}-2`, '2.1.0'), `sample-app 2.1.0 (green), build ${buildId}-2`);
      const error = scenario === 'smoke-fails' ? 'SmokeTestFailedError' : 'CanaryCheckFailedError';
      expectation = (ex) =>
        ex.length === 2 &&
        ex[0]?.status === 'SUCCEEDED' &&
        ex[1]?.error === error &&
        nothingLeft(pipeline, ex[1]);
      break;
    }
    case 'rule-violation': {
      const bad = {
        ...appConfig,
        runtime: { ...(appConfig.runtime as object), instanceType: 'm5.24xlarge', maxSize: 40 },
      };
      publish(
        await message(buildId, '1.0.1', bad),
        `sample-app 1.0.1 with runtime m5.24xlarge × 40, build ${buildId}`,
      );
      expectation = (ex) =>
        ex.length === 1 && ex[0]?.status === 'FAILED' && ex[0]?.error === 'AppConfigInvalidError';
      break;
    }
    case 'duplicate': {
      const body = await message(buildId, '1.0.2');
      const first = publish(body, `sample-app 1.0.2, build ${buildId}`);
      pipeline.sns.redeliver(first);
      console.log(`${bold('→ trigger')} SNS redelivers message ${first.messageId}`);
      publish(body, `sample-app 1.0.2 again (Jenkins retried its publish)`);
      expectation = (ex) => ex.length === 1 && ex[0]?.status === 'SUCCEEDED';
      break;
    }
    case 'lock-contention': {
      publish(await message(`${buildId}-a`, '1.1.0'), `sample-app 1.1.0, build ${buildId}-a`);
      publish(await message(`${buildId}-b`, '1.2.0'), `sample-app 1.2.0, build ${buildId}-b`);
      expectation = (ex) => ex.length === 2 && ex.every((e) => e.status === 'SUCCEEDED');
      break;
    }
    case 'rejected': {
      publish(
        { ...(await message(buildId, 'v 1')), appId: '../etc' },
        'a message with appId "../etc" and version "v 1"',
      );
      expectation = (ex) => ex.length === 0;
      break;
    }
    case 'bake-fails':
    case 'no-ami':
    case 'inspec-fails':
    case 'provision-fails': {
      const setups = {
        'bake-fails': ['bake', { outcome: 'fail-after-ami' }, 'BakeFailedError'],
        'no-ami': ['bake', { outcome: 'no-ami' }, 'BakeFailedError'],
        'inspec-fails': ['validate', { outcome: 'success', failedControls: 7 }, 'ValidationFailedError'],
        'provision-fails': ['provision', { outcome: 'fail' }, 'ProvisionFailedError'],
      } as const;
      const [step, behaviour, error] = setups[scenario];
      pipeline.commands.setScenario('sample-app', step, behaviour);
      publish(await message(buildId, '1.3.0'), `sample-app 1.3.0, build ${buildId}`);
      expectation = (ex) => ex.length === 1 && ex[0]?.error === error && nothingLeft(pipeline, ex[0]);
      break;
    }
    case 'unencrypted-ami': {
      pipeline.commands.setScenario('sample-app', 'bake', { outcome: 'success', unencrypted: true });
      publish(await message(buildId, '1.4.0'), `sample-app 1.4.0, build ${buildId}`);
      expectation = (ex) => ex.length === 1 && ex[0]?.status === 'SUCCEEDED';
      break;
    }
    case 'lost-event': {
      pipeline.commands.setScenario('sample-app', 'bake', { outcome: 'success', loseEvent: true });
      publish(await message(buildId, '1.5.0'), `sample-app 1.5.0, build ${buildId}`);
      await pipeline.until(
        () =>
          [...pipeline.commands.commands.values()].some((c) => c.step === 'bake' && c.status === 'Success'),
        'the bake command to end',
      );
      console.log(
        `${bold('→ the bake command ended; its event never arrives.')} ${dim('Running the reconciler…')}`,
      );
      await pipeline.reconcile();
      expectation = (ex) => ex.length === 1 && ex[0]?.status === 'SUCCEEDED';
      break;
    }
    case 'approval': {
      publish(await message(`${buildId}-1`, '3.0.0'), `sample-app 3.0.0, build ${buildId}-1`);
      let execution: ExecutionRecord | undefined;
      await pipeline.until(() => {
        execution = pipeline.sfn.list().find((e) => !before.has(e.executionArn));
        return execution !== undefined;
      }, 'the execution');
      const runId = execution!.name.split('-').pop()!;
      const pending = await pipeline.untilAwaitingApproval(runId);
      console.log(`${bold('→ waiting for approval')} ${dim(`until ${String(pending.deadline)}`)}`);
      const principal = pipeline.approverPrincipal('release-manager@example.com');
      const answer = await pipeline.approve(runId, { principal, reason: 'CAB-0001 signed off' });
      console.log(`${bold('→ approved')} by ${principal} ${dim(`(HTTP ${answer.statusCode})`)}`);
      expectation = (ex) =>
        ex.length === 1 &&
        ex[0]?.status === 'SUCCEEDED' &&
        answer.statusCode === 200 &&
        pipeline.path(ex[0].executionArn).includes('AwaitApproval');
      break;
    }
    case 'regions':
    case 'region-fails': {
      const fails = scenario === 'region-fails';
      if (fails) pipeline.ec2At('us-east-1')!.copyOutcome = 'failed';
      const spread = { ...appConfig, distribution: { regions: LOCAL_REGIONS, accounts: ['444455556666'] } };
      publish(
        await message(buildId, '4.0.0', spread),
        `sample-app 4.0.0 to ${[pipeline.template.stage.region, ...LOCAL_REGIONS].join(', ')}, build ${buildId}`,
      );
      await pipeline.settle();
      const execution = pipeline.sfn.list().find((e) => !before.has(e.executionArn));
      const runId = execution?.name.split('-').pop() ?? '';
      console.log(bold('\nwhere the AMI is'));
      for (const region of [pipeline.template.stage.region, ...LOCAL_REGIONS]) {
        const images = [...(pipeline.ec2At(region)?.images.values() ?? [])].filter(
          (i) => i.tags['ami-pipeline:run-id'] === runId,
        );
        const parameter = pipeline.ssmAt(region)?.describe('/ami-pipeline/dev/sample-app/latest-ami');
        const line = images.length
          ? images
              .map(
                (i) =>
                  `${i.imageId} ${i.state}, key ${String(i.kmsKeyId).split(':').slice(3, 4).join('')}/…, shared with ${[...i.launchPermissions].join(' ')}`,
              )
              .join('; ')
          : 'no AMI of this run';
        console.log(`  ${region.padEnd(13)} ${line}`);
        console.log(dim(`  ${''.padEnd(13)} latest-ami: ${parameter ? String(parameter.stored) : '(none)'}`));
      }
      expectation = (ex) => {
        const left = pipeline.leftovers(runId);
        return fails
          ? ex.length === 1 &&
              ex[0]?.status === 'FAILED' &&
              left.images.length === 0 &&
              left.grants.length === 0
          : ex.length === 1 && ex[0]?.status === 'SUCCEEDED' && left.images.length === 3;
      };
      break;
    }
    case 'long-bake': {
      // A first release (straight to 100 %) first, so both compared runs shift traffic in the same
      // three steps and differ only in how long the bake takes.
      publish(
        await message(`${buildId}-0`, '1.5.9'),
        'sample-app 1.5.9, so the next two are not first releases',
      );
      await pipeline.settle();
      pipeline.commands.setScenario('sample-app', 'bake', { outcome: 'success', simulatedSeconds: 300 });
      publish(await message(`${buildId}-5m`, '1.6.0'), 'sample-app 1.6.0 with a 5-minute bake');
      await pipeline.settle();
      pipeline.commands.setScenario('sample-app', 'bake', { outcome: 'success', simulatedSeconds: 5 * 3600 });
      publish(await message(`${buildId}-5h`, '1.6.1'), 'sample-app 1.6.1 with a 5-hour bake');
      expectation = (ex) =>
        ex.length === 3 &&
        ex.every((e) => e.status === 'SUCCEEDED') &&
        transitions(pipeline, ex[1]!) === transitions(pipeline, ex[2]!);
      break;
    }
  }

  await pipeline.settle();
  const executions = pipeline.sfn.list().filter((e) => !before.has(e.executionArn));
  console.log('');
  for (const execution of executions) await printRun(pipeline, execution);
  await printRejections(pipeline, scenario);
  for (const decommission of pipeline.decommissions.list()) {
    const runId = decommission.name.replace('decommission-', '');
    const retired = (await pipeline.runItems(runId)).filter((i) => i.type === 'DECOMMISSIONED');
    const status =
      decommission.status === 'SUCCEEDED' ? green(decommission.status) : red(decommission.status);
    console.log(
      `${bold('Decommission')} of run ${runId} (replaced; its retention overridden to 0 here)  ${status}` +
        (decommission.error ? `  ${red(decommission.error)}` : ''),
    );
    for (const item of retired) {
      const detail = (item.detail ?? {}) as Record<string, unknown>;
      console.log(`  EVENT     DECOMMISSIONED      ${String(detail.action)} ${String(detail.resource)}`);
    }
  }
  const ok = expectation(executions);
  console.log(
    ok
      ? green(`\n✔ scenario "${scenario}" behaved as expected`)
      : red(`\n✘ scenario "${scenario}" did not behave as expected`),
  );
  const live = await pipeline.liveRelease('sample-app');
  console.log(
    dim(
      [
        '\nAsk the audit trail what this made (the CLI reads .local/):',
        `  npx ami-pipeline audit app sample-app --local`,
        `  npx ami-pipeline audit rejected --local`,
        ...(typeof live?.amiId === 'string'
          ? [
              `  npx ami-pipeline audit resource ${live.amiId} --local   # which run, who asked, what InSpec said`,
            ]
          : []),
      ].join('\n'),
    ),
  );
  return ok;
};

const printRun = async (pipeline: LocalPipeline, execution: ExecutionRecord) => {
  const status = execution.status === 'SUCCEEDED' ? green(execution.status) : red(execution.status);
  const ms = (execution.stopDate?.getTime() ?? Date.now()) - execution.startDate.getTime();
  console.log(`${bold('Run')} ${execution.name}  ${status}  ${dim(`${ms} ms`)}`);
  if (execution.error)
    console.log(`  error  ${red(execution.error)}\n  cause  ${summarizeCause(execution.cause)}`);

  const runId = execution.name.split('-').pop() ?? '';
  const appId = (JSON.parse(execution.input) as { appId: string }).appId;
  const run = (await pipeline.runsOf(appId)).find((r) => r.runId === runId);
  const items = await pipeline.runItems(runId);
  console.log(dim('  audit records (read back from the audit table):'));
  if (run) {
    console.log(
      `  RUN       ${String(run.sk)}  ${String(run.status)}  version ${String(run.version)}  build ${String(run.buildId)}  by ${String(run.requestedBy)}` +
        (run.failedStage ? `  failed in ${String(run.failedStage)} (${String(run.errorName)})` : ''),
    );
  }
  for (const item of items) {
    if (item.entity === 'RESOURCE') {
      console.log(`  RESOURCE  ${String(item.resourceType).padEnd(19)} ${String(item.resourceId)}`);
    } else {
      const detail = (item.detail ?? {}) as Record<string, unknown>;
      const what = detail.action
        ? `${String(detail.action)} ${String(detail.resource)}`
        : detail.principal
          ? `by ${String(detail.principal)}: ${String(detail.reason)}`
          : '';
      console.log(`  EVENT     ${String(item.type).padEnd(19)} ${String(item.at)}  ${what}`);
    }
  }
  const outcome = pipeline
    .outcomes()
    .filter((o) => o.runId === runId)
    .at(-1);
  if (outcome)
    console.log(dim(`  outcome notification: ${String(outcome.status)} → ${pipeline.name('OutcomeTopic')}`));
  const weights = pipeline.elb.weights(appId);
  const live = await pipeline.liveRelease(appId);
  console.log(
    `  at the end: ALB listener ${
      Object.entries(weights)
        .map(([tg, w]) => `${w} % → ${tg.split('/').slice(-2, -1)[0] ?? tg}`)
        .join(', ') || 'no forward'
    }; live release: ${live ? `${String(live.version)} (run ${String(live.runId)})` : 'none'}`,
  );
  const heartbeats = pipeline.sfn.heartbeatsOf(execution.executionArn);
  console.log(
    dim(
      `  cost: ${transitions(pipeline, execution)} state transitions, ${heartbeats} heartbeats (not transitions)`,
    ),
  );
  if (execution.status !== 'SUCCEEDED') {
    const left = pipeline.leftovers(runId);
    const total = Object.values(left).reduce((n, list) => n + list.length, 0);
    console.log(
      total === 0 ? green('  left behind: nothing') : red(`  left behind: ${JSON.stringify(left)}`),
    );
  }
  console.log('');
};

/** State transitions of an execution (states entered): what Step Functions bills. */
const transitions = (pipeline: LocalPipeline, execution: ExecutionRecord): number =>
  pipeline.path(execution.executionArn).length;

const nothingLeft = (pipeline: LocalPipeline, execution: ExecutionRecord): boolean =>
  Object.values(pipeline.leftovers(execution.name.split('-').pop() ?? '')).every((list) => list.length === 0);

const printRejections = async (pipeline: LocalPipeline, scenario: Scenario) => {
  if (scenario !== 'rejected' && scenario !== 'duplicate') return;
  const queued = pipeline.rejectionsQueue();
  console.log(
    `${bold('Rejections')} ${dim(`(queue ${pipeline.name('RejectionsQueue')})`)}: ${queued.length}`,
  );
  for (const message of queued) {
    const body = JSON.parse(message.body) as { reason: string; snsMessageId: string };
    console.log(`  ${red('✗')} ${body.reason}`);
    const audited = (await pipeline.rejections()).find((r) => r.messageId === body.snsMessageId);
    console.log(
      dim(
        `    audit: ${audited ? `${String(audited.pk)} / ${String(audited.sk)} ${String(audited.status)}` : 'missing!'}`,
      ),
    );
  }
};

/** The Lambda error cause is JSON; show its message, not the stack. */
const summarizeCause = (cause: string | undefined): string => {
  try {
    const parsed = JSON.parse(cause ?? '') as { errorMessage?: string };
    return parsed.errorMessage ?? String(cause);
  } catch {
    return String(cause);
  }
};

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(
      red(`local run failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`),
    );
    process.exit(1);
  },
);
