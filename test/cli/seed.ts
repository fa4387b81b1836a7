import { createHash } from 'node:crypto';
import { CreateTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchWriteCommand,
  PutCommand,
  UpdateCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import { mapLimit } from '../../cli/queries';
import {
  AuditRepository,
  auditKeys,
  type Rejection,
  type ResourceRecord,
  type RunEvent,
  type RunStarted,
} from '../../shared/audit';
import type { StageConfig } from '../../shared/config/stage';
import { PIPELINE_STAGES, type PipelineStage } from '../../shared/progress';
import { executionNameFor, runIdFor } from '../../shared/trigger/message';
import { LocalTemplate } from '../harness/template';

/**
 * A realistic audit table at scale for the CLI tests: thousands of runs of several apps in several
 * environments, each with the events and resources the workers write, failures with compensation,
 * the live pointers and rejected triggers. Every item goes through the real `AuditRepository`
 * (and the state machine's own UpdateItem for the outcome, the LIVE shape of shared/release/live.ts),
 * so the CLI reads exactly what production writes. Deterministic: a seeded PRNG and a fixed clock.
 * The seed keeps its ground truth in memory for the tests to compare the CLI's answers with.
 */

export interface SeedApp {
  appId: string;
  /** The application account the AMI is shared with. */
  account: string;
  /** App log groups exported by ExportLogs (none: the stage ends with the release). */
  logGroups: string[];
  /** Runs per environment over the seeded months (apps release at different rates). */
  runsPerEnv: number;
}

/**
 * 2,400 runs: payments-api's 1,600 run items are more than one 1 MB Query page, so "runs of an
 * app" must follow LastEvaluatedKey.
 */
export const SEED_APPS: readonly SeedApp[] = [
  {
    appId: 'payments-api',
    account: '111122223333',
    logGroups: ['/app/payments-api/application'],
    runsPerEnv: 800,
  },
  {
    appId: 'orders-web',
    account: '222233334444',
    logGroups: ['/app/orders-web/access', '/app/orders-web/application'],
    runsPerEnv: 250,
  },
  { appId: 'ledger-worker', account: '333344445555', logGroups: [], runsPerEnv: 150 },
];

export interface SeedOptions {
  apps?: readonly SeedApp[];
  environments?: readonly string[];
  /** Overrides every app's `runsPerEnv` (a small table for tests that need no scale). */
  runsPerAppEnv?: number;
  rejectionsPerEnv?: number;
  /** PRNG seed. */
  seed?: number;
  /** When the first run starts. */
  base?: Date;
}

export interface InspecSummary {
  report: string;
  passed: number;
  failed: number;
  skipped: number;
}

/** One seeded run: its run item's facts, outcome and everything in its `RUN#<runId>` partition. */
export interface SeededRun extends RunStarted {
  status: 'SUCCEEDED' | 'FAILED';
  finishedAt: string;
  failedStage?: PipelineStage;
  errorName?: string;
  errorCause?: string;
  compensationStatus?: 'COMPLETE' | 'INCOMPLETE';
  /** False when the run failed before PreProvision: only RecordFailure's upsert wrote its item. */
  recordedStart: boolean;
  /** Every event in its partition, including ones later runs add (DECOMMISSION_SCHEDULED). */
  events: RunEvent[];
  resources: ResourceRecord[];
  amiId?: string;
  inspec?: InspecSummary;
  stageTimings?: Record<string, number>;
}

/** The LIVE#<env> / APP#<appId> item as shared/release/live.ts writes it. */
export interface SeededLive {
  appId: string;
  environment: string;
  runId: string;
  version: string;
  buildId: string;
  executionArn: string;
  amiId: string;
  since: string;
  asgName: string;
  launchTemplateId: string;
  targetGroupArn: string;
  listenerArn: string;
  previousRunId: string | null;
  previousRelease: { asgName: string; amiId: string; version: string; executionArn: string } | null;
}

export interface Seed {
  table: string;
  /** All runs, oldest first. */
  runs: SeededRun[];
  live: SeededLive[];
  rejections: Rejection[];
  /** A moment after everything seeded: the CLI's `now` for relative times (`--since 30d`). */
  now: Date;
  /** Items written (run items, events, resources, rejections, live pointers). */
  items: number;
  run(runId: string): SeededRun;
  /** The runs of an app, newest first, optionally of one environment and in a window (inclusive). */
  runsOf(appId: string, filter?: { environment?: string; since?: string; until?: string }): SeededRun[];
  /** The runs that recorded a resource id. */
  runsWithResource(resourceId: string): SeededRun[];
}

/** mulberry32: small, fast and good enough to make seeded data look varied. */
export const prng = (seed: number) => {
  let state = seed | 0;
  const next = () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (min: number, max: number) => min + Math.floor(next() * (max - min + 1)),
    pick: <T>(values: readonly T[]): T => values[Math.floor(next() * values.length)] as T,
    chance: (p: number) => next() < p,
  };
};

const hex = (text: string, length: number) =>
  createHash('sha256').update(text).digest('hex').slice(0, length);
const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Creates the audit table exactly as the harness does: serverless.yml's own definition (keys, both
 * GSIs), resolved for the stage by the harness's LocalTemplate.
 */
export const createAuditTable = async (client: DynamoDBClient, stage: StageConfig): Promise<string> => {
  const props = new LocalTemplate(stage).resourceProperties('AuditTable');
  const tableName = props.TableName as string;
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      AttributeDefinitions: props.AttributeDefinitions as never,
      KeySchema: props.KeySchema as never,
      BillingMode: props.BillingMode as never,
      ...(props.GlobalSecondaryIndexes
        ? { GlobalSecondaryIndexes: props.GlobalSecondaryIndexes as never }
        : {}),
    }),
  );
  return tableName;
};

interface Pending {
  item: Record<string, unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/**
 * What `AuditRepository` writes through while seeding: its conditional puts are queued and sent as
 * BatchWriteItem (25 items a request, a few in flight). BatchWriteItem takes no condition, so the
 * condition's job — a key is written once — is checked here; the items are the repository's own.
 */
class BatchingWriter {
  private readonly queue: Pending[] = [];
  private readonly keys = new Set<string>();
  written = 0;

  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  readonly client = {
    send: (command: unknown): Promise<unknown> => {
      if (
        !(command instanceof PutCommand) ||
        command.input.TableName !== this.table ||
        command.input.ConditionExpression !== 'attribute_not_exists(pk)'
      ) {
        return Promise.reject(new Error('the seed batches only the repository’s conditional puts'));
      }
      const item = command.input.Item as Record<string, unknown>;
      const key = `${String(item.pk)}\u0000${String(item.sk)}`;
      if (this.keys.has(key)) {
        return Promise.reject(new Error(`the seed writes ${key} twice (the condition would refuse it)`));
      }
      this.keys.add(key);
      return new Promise((resolve, reject) => this.queue.push({ item, resolve, reject }));
    },
  } as unknown as DynamoDBDocumentClient;

  async flush(concurrency = 4): Promise<void> {
    const chunks: Pending[][] = [];
    for (let i = 0; i < this.queue.length; i += 25) chunks.push(this.queue.slice(i, i + 25));
    this.queue.length = 0;
    await mapLimit(chunks, concurrency, async (chunk) => {
      try {
        let requests = chunk.map((p) => ({ PutRequest: { Item: p.item } }));
        for (let attempt = 0; requests.length > 0; attempt++) {
          if (attempt > 5) throw new Error(`${requests.length} items stayed unprocessed`);
          const { UnprocessedItems } = await this.db.send(
            new BatchWriteCommand({ RequestItems: { [this.table]: requests } }),
          );
          requests = (UnprocessedItems?.[this.table] ?? []) as typeof requests;
        }
        this.written += chunk.length;
        for (const p of chunk) p.resolve({});
      } catch (err) {
        for (const p of chunk) p.reject(err);
      }
    });
  }
}

const FAILURE_WEIGHTS: [PipelineStage, number][] = [
  ['AcquireLock', 0.01],
  ['PreProvision', 0.03],
  ['Bake', 0.05],
  ['Distribute', 0.02],
  ['Provision', 0.03],
  ['Validate', 0.04],
  ['SmokeTest', 0.03],
  ['TrafficShift', 0.03],
];

const REQUESTERS = [
  'jenkins@example.com',
  'alice.ng@example.com',
  'svc-jenkins-prod',
  'bob.marsh@example.com',
];

/** Step Functions' Cause for a Lambda error: the error as JSON, with its stack. */
const lambdaCause = (errorType: string, errorMessage: string, file: string) =>
  JSON.stringify({
    errorType,
    errorMessage,
    trace: [
      `${errorType}: ${errorMessage}`,
      `    at ${file} (/var/task/index.js:1:${2000 + errorMessage.length})`,
      '    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)',
      '    at async Runtime.handler (/var/task/index.js:1:48123)',
      '    at async /var/task/node_modules/@aws-lambda-powertools/commons/lib/cjs/index.js:1:9123',
    ],
  });

/**
 * A failed command's cause as command-completed builds it: the last 2,048 bytes of its stderr
 * (shared/commands/complete.ts), which for Packer and Terraform is always a long log.
 */
const stderrTail = (step: string, commandId: string, progress: string, last: string[]) => {
  const log = [...Array.from({ length: 40 }, (_, n) => `${progress} [${n * 10}s elapsed]`), ...last].join(
    '\n',
  );
  return `${step} command ${commandId} ended Failed: ${log.slice(-2048)}`;
};

/** The stage a run fails at for a roll in [0, 1), or undefined (it succeeds). */
const pickFailure = (roll: number): PipelineStage | undefined => {
  let rest = roll;
  for (const [stage, weight] of FAILURE_WEIGHTS) {
    if (rest < weight) return stage;
    rest -= weight;
  }
  return undefined;
};

/** RecordRelease's stage timings: seconds from each stage's end to the next (shared/release/live.ts). */
const stageTimingsOf = (run: SeededRun, startMs: number): Record<string, number> => {
  const ends: [string, (e: RunEvent) => boolean][] = [
    ['preProvision', (e) => e.type === 'PRE_PROVISIONED'],
    ['bake', (e) => e.type === 'COMMAND_SUCCESS' && e.stage === 'bake'],
    ['provision', (e) => e.type === 'COMMAND_SUCCESS' && e.stage === 'provision'],
    ['validate', (e) => e.type === 'COMMAND_SUCCESS' && e.stage === 'validate'],
    ['trafficShift', (e) => e.type === 'TRAFFIC_SHIFTED' && e.detail?.percent === 100],
  ];
  const timings: Record<string, number> = {};
  let from = startMs;
  for (const [name, matches] of ends) {
    const end = Date.parse(String(run.events.find(matches)?.at));
    timings[name] = Math.max(0, Math.round((end - from) / 1000));
    from = end;
  }
  return timings;
};

/** The seed's facts, generated in memory (deterministic: same options, same facts). */
export const generateSeed = (stage: StageConfig, options: SeedOptions = {}): Seed => {
  const apps = options.apps ?? SEED_APPS;
  const environments = options.environments ?? ['dev', 'prod'];
  const rejectionsPerEnv = options.rejectionsPerEnv ?? 40;
  const random = prng(options.seed ?? 20260301);
  const base = (options.base ?? new Date('2025-06-02T08:00:00.000Z')).getTime();
  const template = new LocalTemplate(stage);
  const table = template.resource('AuditTable').ref;
  const reportsBucket = template.resource('ReportsBucket').ref;
  const artifactsBucket = template.resource('ArtifactsBucket').ref;
  const stateMachineArn = template.resource('AmiPipelineStateMachine').arn;
  const kmsKeyArn = template.resource('PipelineKey').arn;
  const { region } = stage;
  const account = template.accountId;
  // Five months of runs; those of an app and environment are serialised by the lock.
  const windowMs = 150 * 86_400_000;

  const runs: SeededRun[] = [];
  const live: SeededLive[] = [];
  const logsDestinationArn = template.resource('LogsDeliveryStream').arn;
  const logsRoleArn = template.resource('LogsSubscriptionRole').arn;

  /**
   * One run through the stages, recording what each worker records, until it fails at `failAt`
   * (then compensation) or its release goes live. `previous` is the live release it replaces.
   */
  const playRun = (
    app: SeedApp,
    environment: string,
    i: number,
    startMs: number,
    listenerArn: string,
    previous: { run: SeededRun; live: SeededLive } | undefined,
    failAt: PipelineStage | undefined,
  ): { run: SeededRun; live?: SeededLive } => {
    const buildId = `jenkins-${app.appId}-${environment}-${1000 + i}`;
    const runId = runIdFor(app.appId, environment, buildId);
    const version = `${1 + Math.floor(i / 100)}.${Math.floor(i / 10) % 10}.${i % 10}`;
    const run: SeededRun = {
      runId,
      appId: app.appId,
      environment,
      version,
      buildId,
      kind: i % 25 === 24 ? 'base-image-update' : 'release',
      requestedBy: random.pick(REQUESTERS),
      executionArn: `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${executionNameFor(app.appId, environment, runId)}`,
      startedAt: iso(startMs),
      status: 'SUCCEEDED',
      finishedAt: '',
      recordedStart: true,
      events: [],
      resources: [],
    };
    let t = startMs;
    const after = (seconds: number) => {
      t += seconds * 1000 + random.int(0, 999);
      return iso(t);
    };
    const event = (
      type: string,
      stageName: string,
      at: string,
      id?: string,
      detail?: Record<string, unknown>,
    ) =>
      run.events.push({
        runId,
        type,
        stage: stageName,
        at,
        ...(id ? { id } : {}),
        ...(detail ? { detail } : {}),
      });
    const resource = (
      resourceType: string,
      resourceId: string,
      createdAt: string,
      detail?: Record<string, unknown>,
    ) =>
      run.resources.push({
        runId,
        appId: app.appId,
        environment,
        executionArn: run.executionArn,
        buildId,
        version,
        resourceType,
        resourceId,
        createdAt,
        ...(detail ? { detail } : {}),
      });
    /** command-completed's COMMAND_SUCCESS / COMMAND_FAILED for an SSM command of `step`. */
    const command = (step: string, status: 'SUCCESS' | 'FAILED', at: string, mode: string) => {
      const commandId = [8, 4, 4, 4, 12].map((n, k) => hex(`${runId}${step}${mode}${k}`, n)).join('-');
      event(`COMMAND_${status}`, step, at, commandId, {
        commandId,
        instanceId: 'i-0b5e1d3a7c9f24e68',
        mode,
        outcome: status === 'SUCCESS' ? 'SUCCEEDED' : 'FAILED',
      });
      return commandId;
    };
    // What compensation will find to undo (shared/compensate.ts).
    const made = {
      listener: false,
      grants: [] as string[],
      amis: [] as string[],
      snapshots: [] as string[],
      stack: false,
    };
    const fail = (stageName: PipelineStage, errorName: string, errorCause: string): undefined => {
      Object.assign(run, { status: 'FAILED', failedStage: stageName, errorName, errorCause });
      return undefined;
    };

    /** The stages; returns the live release, or undefined when the run failed. */
    const stages = (): SeededLive | undefined => {
      if (failAt === 'AcquireLock') {
        // The lock wait ran out before PreProvision: only RecordFailure's upsert writes the run item.
        run.recordedStart = false;
        after(3_600);
        const holder = hex(`${runId}holder`, 20);
        return fail(
          'AcquireLock',
          'LockHeldError',
          lambdaCause(
            'LockHeldError',
            `${app.appId} ${environment} is locked by run ${holder} (waited 3600 s)`,
            'acquireLock',
          ),
        );
      }
      after(random.chance(0.1) ? random.int(30, 900) : random.int(0, 2));

      // PreProvision
      if (failAt === 'PreProvision') {
        after(random.int(1, 3));
        return fail(
          'PreProvision',
          'AppConfigInvalidError',
          lambdaCause(
            'AppConfigInvalidError',
            `app config is invalid: appConfig.runtime.instanceType: m5.24xlarge is not allowed in ${environment} (allowed: t3.micro, t3.small, t3.medium); appConfig.runtime.maxSize: 40 is above the ${environment} maximum of 4`,
            'validateAppConfig',
          ),
        );
      }
      const parameter = `/ami-pipeline/${stage.stage}/runs/${app.appId}/${runId}`;
      const preAt = after(random.int(2, 8));
      resource('PARAMETER', parameter, preAt, {
        version: 1,
        tier: 'Standard',
        bytes: random.int(2_400, 3_900),
        kmsKeyArn,
      });
      event('PRE_PROVISIONED', 'PreProvision', preAt, undefined, {
        runConfigParameter: parameter,
        runConfigVersion: 1,
      });

      // Bake
      const amiId = `ami-0${hex(`${runId}ami`, 16)}`;
      const snapshotIds = Array.from(
        { length: random.chance(0.3) ? 2 : 1 },
        (_, n) => `snap-0${hex(`${runId}snap${n}`, 16)}`,
      );
      const bakeAt = after(random.int(480, 1_500));
      if (failAt === 'Bake') {
        const commandId = command('bake', 'FAILED', bakeAt, 'run');
        if (random.chance(0.5)) {
          // Packer made the AMI before it failed: compensation finds it by its run tag.
          made.amis.push(amiId);
          made.snapshots.push(...snapshotIds);
        }
        return fail(
          'Bake',
          'BakeFailedError',
          stderrTail('bake', commandId, '==> amazon-ebs.soe: Waiting for the instance to become ready...', [
            '==> amazon-ebs.soe: Provisioning with Chef Infra Client...',
            `    amazon-ebs.soe: Recipe: ${app.appId.replace(/-/g, '_')}::default`,
            '    amazon-ebs.soe:   * remote_file[/opt/app/app.tar.gz] action create (up to date)',
            '    amazon-ebs.soe:   * execute[install] action run',
            '    amazon-ebs.soe:     [execute] npm ERR! code EINTEGRITY',
            '    amazon-ebs.soe:     Expected sha512 but got a different integrity for the artifact',
            '    amazon-ebs.soe: Error executing action `run` on resource execute[install]',
            '==> amazon-ebs.soe: Provisioning step had errors: Running the cleanup provisioner, if present...',
            "Build 'amazon-ebs.soe' errored after 14 minutes 2 seconds: Error running Chef: Non-zero exit status: 1",
          ]),
        );
      }
      resource('AMI', amiId, bakeAt, { region, snapshotIds });
      for (const snapshotId of snapshotIds) resource('SNAPSHOT', snapshotId, bakeAt, { amiId });
      command('bake', 'SUCCESS', iso(t + 35), 'run');
      run.amiId = amiId;
      made.amis.push(amiId);
      made.snapshots.push(...snapshotIds);

      // Distribute
      const distAt = after(random.int(15, 60));
      resource('LAUNCH_PERMISSION', `${amiId}/${app.account}`, distAt, { amiId, account: app.account });
      snapshotIds.forEach((snapshotId, n) =>
        resource('SNAPSHOT_PERMISSION', `${snapshotId}/${app.account}`, iso(t + 120 * (n + 1)), {
          snapshotId,
          account: app.account,
        }),
      );
      if (failAt === 'Distribute') {
        after(random.int(1, 5));
        return fail(
          'Distribute',
          'DistributionFailedError',
          lambdaCause(
            'DistributionFailedError',
            `KMS CreateGrant for ${app.account} failed: AccessDeniedException: User: arn:aws:sts::${account}:assumed-role/ami-pipeline-${stage.stage}-distribute/ami-pipeline-${stage.stage}-distribute is not authorized to perform: kms:CreateGrant on resource: ${kmsKeyArn}`,
            'distribute',
          ),
        );
      }
      const grantId = hex(`${runId}grant`, 64);
      resource('KMS_GRANT', grantId, iso(t + 400), {
        keyArn: kmsKeyArn,
        grantee: app.account,
        operations: [
          'Decrypt',
          'DescribeKey',
          'CreateGrant',
          'ReEncryptFrom',
          'ReEncryptTo',
          'GenerateDataKeyWithoutPlaintext',
        ],
      });
      made.grants.push(grantId);

      // Provision (terraform apply): from here compensation destroys the green stack.
      const provAt = after(random.int(180, 420));
      made.stack = true;
      const launchTemplateId = `lt-0${hex(`${runId}lt`, 16)}`;
      const asgName = `${app.appId}-${environment}-${runId}`;
      const targetGroupArn = `arn:aws:elasticloadbalancing:${region}:${account}:targetgroup/${app.appId.slice(0, 14)}-${runId.slice(0, 12)}/${hex(`${runId}tg`, 16)}`;
      if (failAt === 'Provision') {
        const commandId = command('provision', 'FAILED', provAt, 'apply');
        return fail(
          'Provision',
          'ProvisionFailedError',
          stderrTail('provision', commandId, 'module.release.aws_autoscaling_group.app: Still creating...', [
            '╷',
            `│ Error: waiting for Auto Scaling Group (${asgName}) capacity satisfied: 1 error occurred:`,
            '│ \t* Scaling activity (b3f1c2a4-6d1e-4f5a-9c1b-2a7e8d9f0a1b): Failed: We currently do not have sufficient capacity in the Availability Zone you requested.',
            '│ ',
            '│   with module.release.aws_autoscaling_group.app,',
            '│   on modules/release/main.tf line 88, in resource "aws_autoscaling_group" "app":',
            '╵',
          ]),
        );
      }
      resource('LAUNCH_TEMPLATE', launchTemplateId, provAt, { asgName });
      resource('ASG', asgName, provAt, { launchTemplateId });
      resource('TARGET_GROUP', targetGroupArn, provAt, {
        albDns: `internal-${app.appId}-${environment}-${hex(app.appId, 9)}.${region}.elb.amazonaws.com`,
      });
      resource('TERRAFORM_STATE', `${runId}/release`, provAt, { versionId: hex(`${runId}tfstate`, 32) });
      command('provision', 'SUCCESS', iso(t + 42), 'apply');

      // Validate (InSpec)
      const valAt = after(random.int(150, 500));
      if (failAt === 'Validate') {
        const commandId = command('validate', 'FAILED', valAt, 'run');
        const failedControls = random.int(3, 17);
        return fail(
          'Validate',
          'ValidationFailedError',
          stderrTail(
            'validate',
            commandId,
            'Profile: CIS Amazon Linux 2023 Benchmark - Level 1 ... running',
            [
              '  ×  1.1.2.3: Ensure nosuid option set on /tmp partition',
              '  ×  5.2.4: Ensure sshd access is configured',
              `  ×  ${app.appId}-baseline app-03: service listens on the configured port`,
              `Profile Summary: 214 successful controls, ${failedControls} control failures, 9 controls skipped`,
              `InSpec: ${failedControls} controls failed, ${environment === 'prod' ? 0 : 2} allowed`,
            ],
          ),
        );
      }
      const inspec: InspecSummary = {
        report: `s3://${reportsBucket}/inspec/${app.appId}/${runId}/report.json`,
        passed: random.int(180, 240),
        failed: environment === 'prod' ? 0 : random.int(0, 2),
        skipped: random.int(0, 12),
      };
      resource('INSPEC_REPORT', inspec.report, valAt, {
        passed: inspec.passed,
        failed: inspec.failed,
        skipped: inspec.skipped,
      });
      command('validate', 'SUCCESS', iso(t + 28), 'run');
      run.inspec = inspec;

      // PrepareTraffic records the listener as it found it, then the smoke test through the ALB.
      const blue = previous?.live.targetGroupArn ?? null;
      resource('LISTENER_CHANGE', `${listenerArn}#${runId}`, after(2), {
        listenerArn,
        previousActions: blue
          ? [{ Type: 'forward', TargetGroupArn: blue }]
          : [{ Type: 'fixed-response', FixedResponseConfig: { StatusCode: '503' } }],
        blue,
        green: targetGroupArn,
      });
      made.listener = true;
      let shiftAt = after(random.int(20, 90));
      if (failAt === 'SmokeTest') {
        return fail(
          'SmokeTest',
          'SmokeTestFailedError',
          lambdaCause(
            'SmokeTestFailedError',
            `GET http://internal-${app.appId}-${environment}.${region}.elb.amazonaws.com/health answered 503 after 5 attempts (expected 200)`,
            'smokeTest',
          ),
        );
      }

      // TrafficShift: blue-green in steps; the first release goes straight to 100 %.
      const steps = previous ? [10, 50, 100] : [100];
      for (const [n, percent] of steps.entries()) {
        if (n > 0) shiftAt = after(300 + random.int(5, 20));
        if (failAt === 'TrafficShift' && percent === 100) {
          return fail(
            'TrafficShift',
            'CanaryCheckFailedError',
            lambdaCause(
              'CanaryCheckFailedError',
              `green ${targetGroupArn} answered 5xx for 4.2 % of requests at 50 % (limit 1 %)`,
              'checkCanary',
            ),
          );
        }
        event('TRAFFIC_SHIFTED', 'PostProvision', shiftAt, String(percent), {
          percent,
          listenerArn,
          green: targetGroupArn,
          blue,
        });
      }

      // ExportLogs
      for (const logGroupName of app.logGroups) {
        resource('LOG_SUBSCRIPTION', `${logGroupName}#ami-pipeline-export`, after(random.int(1, 4)), {
          logGroupName,
          filterName: 'ami-pipeline-export',
          destinationArn: logsDestinationArn,
          roleArn: logsRoleArn,
          replaced: null,
        });
      }

      // RecordRelease: the pointer moves, the replaced release is scheduled for decommission.
      const liveAt = after(random.int(1, 3));
      const previousRunId = previous?.run.runId ?? null;
      event('RELEASE_LIVE', 'PostProvision', liveAt, undefined, { previousRunId, amiId, targetGroupArn });
      previous?.run.events.push({
        runId: previous.run.runId,
        type: 'DECOMMISSION_SCHEDULED',
        stage: 'PostProvision',
        at: liveAt,
        id: runId,
        detail: {
          replacedBy: runId,
          decommissionAt: iso(t + 3_600_000),
          asgName: previous.live.asgName,
          amiId: previous.live.amiId,
        },
      });
      run.stageTimings = stageTimingsOf(run, startMs);
      event('STAGE_TIMINGS', 'PostProvision', liveAt, undefined, { seconds: run.stageTimings });
      return {
        appId: app.appId,
        environment,
        runId,
        version,
        buildId,
        executionArn: run.executionArn,
        amiId,
        since: liveAt,
        asgName,
        launchTemplateId,
        targetGroupArn,
        listenerArn,
        previousRunId,
        previousRelease: previous
          ? {
              asgName: previous.live.asgName,
              amiId: previous.live.amiId,
              version: previous.live.version,
              executionArn: previous.live.executionArn,
            }
          : null,
      };
    };

    const released = stages();
    if (run.status === 'FAILED') {
      // Compensate, in shared/compensate.ts's order: listener, grants, AMIs, snapshots; then the
      // green stack's destroy, whose completion records an UNDONE of its own.
      const undo: [string, string][] = [
        ...(made.listener ? [['RESTORE_LISTENER', listenerArn] as [string, string]] : []),
        ...made.grants.map((g): [string, string] => ['REVOKE_GRANT', g]),
        ...made.amis.map((a): [string, string] => ['DEREGISTER_IMAGE', a]),
        ...made.snapshots.map((s): [string, string] => ['DELETE_SNAPSHOT', s]),
      ];
      const incomplete = made.snapshots.length > 0 && random.chance(0.15);
      undo.forEach(([action, target], n) => {
        const at = after(1);
        if (incomplete && n === undo.length - 1) {
          event('UNDO_FAILED', 'Compensate', at, `${action}#${target}`, {
            action,
            resource: target,
            error: `InvalidSnapshot.InUse: The snapshot ${target} is currently in use by ${made.amis[0] ?? 'an image'}`,
          });
        } else {
          event('UNDONE', 'Compensate', at, `${action}#${target}`, {
            action,
            resource: target,
            failedStage: failAt,
          });
        }
      });
      if (made.stack) {
        const destroyAt = after(random.int(120, 300));
        command('provision', 'SUCCESS', destroyAt, 'destroy');
        event('UNDONE', 'Compensate', destroyAt, `DESTROY_STACK#${runId}/release`, {
          action: 'DESTROY_STACK',
          resource: `${runId}/release`,
        });
      }
      run.compensationStatus = incomplete ? 'INCOMPLETE' : 'COMPLETE';
    }
    run.finishedAt = after(1);
    return { run, ...(released ? { live: released } : {}) };
  };

  apps.forEach((app, appIndex) =>
    environments.forEach((environment, envIndex) => {
      const listenerArn = `arn:aws:elasticloadbalancing:${region}:${account}:listener/app/${app.appId}-${environment}/${hex(`${app.appId}${environment}alb`, 16)}/${hex(`${app.appId}${environment}listener`, 16)}`;
      const count = options.runsPerAppEnv ?? app.runsPerEnv;
      const spacingMs = Math.floor(windowMs / count);
      let current: { run: SeededRun; live: SeededLive } | undefined;
      for (let i = 0; i < count; i++) {
        const startMs =
          base +
          i * spacingMs +
          (appIndex * environments.length + envIndex) * 7 * 60_000 +
          random.int(0, 3_600) * 1000 +
          random.int(0, 999);
        // The first release of an app and environment goes through; later ones may fail anywhere.
        const failAt = current ? pickFailure(random.next()) : undefined;
        const played = playRun(app, environment, i, startMs, listenerArn, current, failAt);
        runs.push(played.run);
        if (played.live) current = { run: played.run, live: played.live };
      }
      if (current) live.push(current.live);
    }),
  );

  const lastMs = Math.max(...runs.map((r) => Date.parse(r.finishedAt)));
  const rejections: Rejection[] = [];
  for (const environment of environments) {
    for (let i = 0; i < rejectionsPerEnv; i++) {
      const receivedAt = iso(
        base + Math.round(((lastMs - base) * (i + 0.5)) / rejectionsPerEnv) + random.int(0, 59_999),
      );
      const messageId = [8, 4, 4, 4, 12].map((n, k) => hex(`${environment}${i}rej${k}`, n)).join('-');
      const app = random.pick(apps);
      const buildId = `jenkins-${app.appId}-${environment}-r${i}`;
      const shapes: { violations: string[]; appId?: string; buildId?: string; excerpt: string }[] = [
        {
          violations: ['artifact.sha256: must be 64 lowercase hex characters (SHA-256)'],
          appId: app.appId,
          buildId,
          excerpt: `{"schemaVersion":1,"appId":"${app.appId}","environment":"${environment}","version":"2.0.${i}","buildId":"${buildId}"`,
        },
        {
          violations: [
            `environment: must be "${environment}" (the stage this message was sent to)`,
            'requestedBy: is required (string)',
          ],
          appId: app.appId,
          buildId,
          excerpt: `{"schemaVersion":1,"appId":"${app.appId}","environment":"staging","version":"2.0.${i}"`,
        },
        {
          violations: ['(message): is not valid JSON (Unexpected token } in JSON at position 212)'],
          excerpt: '{"schemaVersion":1,"appId":"',
        },
        {
          violations: [
            `appId: must match ^[a-z][a-z0-9-]{1,38}[a-z0-9]$`,
            `artifact.s3Uri: must be in the stage's artifacts bucket s3://${artifactsBucket}/`,
          ],
          buildId,
          excerpt: `{"schemaVersion":1,"appId":"Payments_API","environment":"${environment}"`,
        },
      ];
      const shape = random.pick(shapes);
      rejections.push({
        environment,
        messageId,
        receivedAt,
        topicArn: template.resource('TriggerTopic').arn,
        reason: shape.violations.join('; '),
        violations: shape.violations,
        appId: shape.appId,
        buildId: shape.buildId,
        messageSha256: hex(`${messageId}body`, 64),
        excerpt: shape.excerpt,
        queueMessageId: [8, 4, 4, 4, 12].map((n, k) => hex(`${messageId}queue${k}`, n)).join('-'),
      });
    }
  }

  const byId = new Map(runs.map((r) => [r.runId, r]));
  return {
    table,
    runs,
    live,
    rejections,
    now: new Date(lastMs + 3_600_000),
    items:
      runs.reduce((n, r) => n + 1 + r.events.length + r.resources.length, 0) +
      rejections.length +
      live.length,
    run: (runId) => {
      const found = byId.get(runId);
      if (!found) throw new Error(`the seed has no run ${runId}`);
      return found;
    },
    runsOf: (appId, filter = {}) =>
      runs
        .filter(
          (r) =>
            r.appId === appId &&
            (!filter.environment || r.environment === filter.environment) &&
            (!filter.since || r.startedAt >= filter.since) &&
            (!filter.until || r.startedAt <= filter.until),
        )
        .sort((a, b) => b.startedAt.localeCompare(a.startedAt)),
    runsWithResource: (resourceId) =>
      runs.filter((r) => r.resources.some((x) => x.resourceId === resourceId)),
  };
};

/**
 * Seeds the audit table: every fact through the real `AuditRepository` (batched), each run's
 * outcome as the state machine's RecordSuccess / RecordFailure, the live pointers as RecordRelease.
 */
export const seedAuditTable = async (
  db: DynamoDBDocumentClient,
  stage: StageConfig,
  options: SeedOptions = {},
): Promise<Seed> => {
  const seed = generateSeed(stage, options);
  const { table, runs, rejections, live } = seed;
  const artifactsBucket = new LocalTemplate(stage).resource('ArtifactsBucket').ref;
  const writer = new BatchingWriter(db, table);
  const audit = new AuditRepository(writer.client, table);
  const puts: Promise<void>[] = [];
  for (const run of runs) {
    if (run.recordedStart) puts.push(audit.recordRunStarted(runStartedOf(run)));
    // `known: []`: the seed's events are distinct by construction, no need to read for duplicates.
    for (const e of run.events) puts.push(audit.recordEvent(e, []));
    for (const r of run.resources) puts.push(audit.recordResource(r));
  }
  for (const r of rejections) puts.push(audit.recordRejection(r));
  await writer.flush();
  await Promise.all(puts);

  // The run's outcome, as the state machine's RecordSuccess / RecordFailure update it.
  await mapLimit(runs, 16, (run) =>
    db.send(run.status === 'SUCCEEDED' ? recordSuccess(table, run) : recordFailure(table, run)),
  );
  for (const item of live) {
    await db.send(
      new PutCommand({
        TableName: table,
        Item: {
          ...auditKeys.live(item.environment, item.appId),
          entity: 'LIVE',
          ...item,
          baseImage: { ssmParameter: '/soe/amazon-linux-2023/latest' },
          appConfigUri: `s3://${artifactsBucket}/inputs/${item.appId}/${item.runId}/app-config-${hex(item.runId, 16)}.yml`,
          artifact: {
            s3Uri: `s3://${artifactsBucket}/inputs/${item.appId}/${item.runId}/artifact-${hex(`${item.runId}art`, 16)}-app.tar.gz`,
            sha256: hex(`${item.runId}artifact`, 64),
          },
        },
        ConditionExpression: 'attribute_not_exists(pk)',
      }),
    );
  }

  // Runs that failed before PreProvision got their item from RecordFailure's upsert alone.
  const written = writer.written + live.length + runs.filter((r) => !r.recordedStart).length;
  if (written !== seed.items) throw new Error(`seeded ${written} items, generated ${seed.items}`);
  return seed;
};

/** What PreProvision records of a run when it starts (`AuditRepository.recordRunStarted`). */
export const runStartedOf = (run: SeededRun): RunStarted => ({
  runId: run.runId,
  appId: run.appId,
  environment: run.environment,
  version: run.version,
  buildId: run.buildId,
  kind: run.kind,
  requestedBy: run.requestedBy,
  executionArn: run.executionArn,
  startedAt: run.startedAt,
});

/** statemachines/ami-pipeline.asl.yml RecordSuccess. */
export const recordSuccess = (table: string, run: SeededRun) =>
  new UpdateCommand({
    TableName: table,
    Key: auditKeys.run(run.appId, run.startedAt, run.runId),
    UpdateExpression: 'SET #status = :succeeded, finishedAt = :at, updatedAt = :at, stageTimings = :timings',
    ConditionExpression: '#status = :running',
    ExpressionAttributeNames: { '#status': 'status' },
    ExpressionAttributeValues: {
      ':succeeded': 'SUCCEEDED',
      ':running': 'RUNNING',
      ':at': run.finishedAt,
      ':timings': JSON.stringify(run.stageTimings ?? {}),
    },
  });

/** statemachines/ami-pipeline.asl.yml RecordFailure (an upsert: the run may have no item yet). */
export const recordFailure = (table: string, run: SeededRun) =>
  new UpdateCommand({
    TableName: table,
    Key: auditKeys.run(run.appId, run.startedAt, run.runId),
    UpdateExpression:
      'SET #status = :failed, failedStage = :stage, errorName = :error, errorCause = :cause, ' +
      'finishedAt = :at, updatedAt = :at, entity = :entity, runId = :runId, appId = :appId, ' +
      'environment = :environment, version = :version, buildId = :buildId, #kind = :kind, ' +
      'requestedBy = :requestedBy, executionArn = :executionArn, startedAt = :startedAt, ' +
      'gsi1pk = :gsi1pk, gsi1sk = :gsi1sk, gsi2pk = :gsi2pk, gsi2sk = :gsi2sk, ' +
      'compensationStatus = :compensationStatus',
    ConditionExpression: 'attribute_not_exists(pk) OR #status = :running',
    ExpressionAttributeNames: { '#status': 'status', '#kind': 'kind' },
    ExpressionAttributeValues: {
      ':failed': 'FAILED',
      ':running': 'RUNNING',
      ':entity': 'RUN',
      ':stage': run.failedStage,
      ':error': run.errorName,
      ':cause': run.errorCause,
      ':at': run.finishedAt,
      ':runId': run.runId,
      ':appId': run.appId,
      ':environment': run.environment,
      ':version': run.version,
      ':buildId': run.buildId,
      ':kind': run.kind,
      ':requestedBy': run.requestedBy,
      ':executionArn': run.executionArn,
      ':startedAt': run.startedAt,
      ':gsi1pk': `RUN#${run.runId}`,
      ':gsi1sk': 'RUN',
      ':gsi2pk': `ENV#${run.environment}`,
      ':gsi2sk': `${run.startedAt}#RUN#${run.runId}`,
      ':compensationStatus': run.compensationStatus,
    },
  });

/** The stage states progress should show for a finished seeded run (independent of shared/progress.ts). */
export const expectedStages = (run: SeededRun): Record<PipelineStage, 'done' | 'failed' | 'skipped'> => {
  const failedAt = run.failedStage ? PIPELINE_STAGES.indexOf(run.failedStage) : PIPELINE_STAGES.length;
  return Object.fromEntries(
    PIPELINE_STAGES.map((stage, i) => [stage, i < failedAt ? 'done' : i === failedAt ? 'failed' : 'skipped']),
  ) as Record<PipelineStage, 'done' | 'failed' | 'skipped'>;
};
