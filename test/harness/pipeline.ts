import './polyfills';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  CreateTableCommand,
  DeleteTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceNotFoundException,
} from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import {
  CopyImageCommand,
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  ModifyImageAttributeCommand,
  ModifySnapshotAttributeCommand,
} from '@aws-sdk/client-ec2';
import { CreateGrantCommand, KMSClient, ListGrantsCommand, RevokeGrantCommand } from '@aws-sdk/client-kms';
import { CloudWatchClient, GetMetricStatisticsCommand } from '@aws-sdk/client-cloudwatch';
import {
  AssociateKmsKeyCommand,
  CloudWatchLogsClient,
  CreateLogGroupCommand,
  DeleteSubscriptionFilterCommand,
  DescribeSubscriptionFiltersCommand,
  ListTagsForResourceCommand,
  PutRetentionPolicyCommand,
  PutSubscriptionFilterCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import {
  DescribeListenersCommand,
  DescribeLoadBalancersCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  ModifyListenerCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import {
  DescribeExecutionCommand,
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import {
  AddTagsToResourceCommand,
  CancelCommandCommand,
  DeleteParameterCommand,
  DeleteResourcePolicyCommand,
  DescribeInstanceInformationCommand,
  GetParameterCommand,
  GetResourcePoliciesCommand,
  ListCommandInvocationsCommand,
  ListCommandsCommand,
  PutParameterCommand,
  PutResourcePolicyCommand,
  SendCommandCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import type { SNSEvent } from 'aws-lambda';
import { mockClient, type AwsStub } from 'aws-sdk-client-mock';
import { auditKeys, AUDIT_INDEXES } from '../../shared/audit';
import { PENDING_INDEX } from '../../shared/commands/tasks';
import { parseYaml } from '../../shared/config/files';
import { loadStageConfig } from '../../shared/config/stage-file';
import { startEmulators, type Emulators } from './emulators';
import { FaultInjector, type InstrumentableClient } from './faults';
import { LambdaRuntime } from './lambda';
import { CommandsSim, type StatusChangeEvent } from './sim/commands';
import { Ec2Sim } from './sim/ec2';
import { ElbSim } from './sim/elb';
import { KmsSim } from './sim/kms';
import { LogsSim } from './sim/logs';
import { StepFunctionsSim, type ExecutionEvent, type ExecutionRecord, type TaskHook } from './sim/sfn';
import { SnsSim, type PublishedMessage } from './sim/sns';
import { ParameterStoreSim } from './sim/ssm';
import { SqsSim } from './sim/sqs';
import { LOCAL_ACCOUNT_ID, LocalTemplate, REPO_ROOT } from './template';

export interface LocalPipelineOptions {
  stage?: string;
  /** Keep DynamoDB and S3 data here between runs (npm start); omitted: in memory / throwaway. */
  stateDir?: string;
  /** Pause before each Retry in ms (default 0). */
  retryIntervalMs?: number;
  retryIntervalOverrides?: Record<string, number>;
  beforeTask?: TaskHook;
  onEvent?: (execution: ExecutionRecord, event: ExecutionEvent) => void;
  /** Powertools log level for the handlers (default SILENT: the harness prints its own progress). */
  logLevel?: string;
  /** Changes to config/<stage>.yml for this harness (e.g. short command timeouts), merged and validated. */
  stageOverrides?: Record<string, unknown>;
  /**
   * Fault injection (test/harness/faults.ts): the handlers' shared SDK clients then run their real
   * middleware stacks (retry strategy, signing) down to the stand-ins, every AWS call is recorded
   * under its call site, and `faults.arm()` can fail any of them.
   */
  faults?: boolean;
}

/** Merges `overrides` into `base` object by object (arrays and scalars replace). */
const deepMerge = (base: unknown, overrides: unknown): unknown => {
  if (!overrides || typeof overrides !== 'object' || Array.isArray(overrides)) return overrides;
  const result: Record<string, unknown> = {
    ...(base && typeof base === 'object' ? (base as Record<string, unknown>) : {}),
  };
  for (const [key, value] of Object.entries(overrides)) result[key] = deepMerge(result[key], value);
  return result;
};

/** The builder the simulated SSM knows (tagged as the stage config's targets expect). */
const builderFor = (stage: string) => ({
  instanceId: 'i-0b5e1d3a7c9f24e68',
  tags: { 'ami-pipeline:builder': stage },
});

type AnyStub = Pick<AwsStub<object, { $metadata: object }, object>, 'restore'>;

type SdkClient = InstrumentableClient & { constructor: { name: string } };

const isSdkClient = (value: unknown): value is SdkClient =>
  typeof value === 'object' &&
  value !== null &&
  'middlewareStack' in value &&
  'config' in value &&
  typeof (value as { send?: unknown }).send === 'function';

/**
 * The whole pipeline in one process: the real state machine definition and the real handlers,
 * DynamoDB and S3 emulated over loopback HTTP (dynalite, s3rver), and in-process stand-ins with
 * state for what neither emulates (Parameter Store with KMS, SNS, SQS, Step Functions). The
 * handlers' own SDK clients reach the stand-ins through aws-sdk-client-mock, and reach dynalite and
 * s3rver through AWS_ENDPOINT_URL_*, exactly as they would any AWS-compatible endpoint.
 *
 * Adding a stage means adding its handler (found through functions/*\/function.yml) and, for a new
 * AWS service, a stand-in under sim/ wired in `routeClients`.
 */
export class LocalPipeline {
  readonly kms = new KmsSim();
  readonly ssm = new ParameterStoreSim(this.kms);
  readonly sqs = new SqsSim();
  readonly sns = new SnsSim();
  /** EC2 in the stage's region; `ec2At(region)` for a distribution region. */
  readonly ec2: Ec2Sim;
  /** EC2 and Parameter Store of each distribution region of the stage (config distribution.regions). */
  readonly regions = new Map<string, { ec2: Ec2Sim; ssm: ParameterStoreSim }>();
  readonly elb: ElbSim;
  readonly logs: LogsSim;
  readonly lambda = new LambdaRuntime();
  /** Records every AWS call and injects the armed fault (with `faults: true`; otherwise inert). */
  readonly faults = new FaultInjector();
  readonly sfn: StepFunctionsSim;
  /** The decommission state machine (started by RecordRelease for each replaced release). */
  readonly decommissions: StepFunctionsSim;
  readonly commands: CommandsSim;
  readonly db: DynamoDBDocumentClient;
  readonly s3: S3Client;
  private readonly stubs: AnyStub[] = [];
  /** Undoes `instrumentSharedClients` (the shared clients outlive this harness within a process). */
  private readonly uninstrument: (() => void)[] = [];
  /** The stand-ins by service and command name (`SSM` → `SendCommandCommand` → fake). */
  private readonly standIns = new Map<
    string,
    Map<string, (input: never, region?: string) => Promise<unknown>>
  >();

  private constructor(
    readonly template: LocalTemplate,
    private readonly emulators: Emulators,
    private readonly rawDb: DynamoDBClient,
    private readonly restoreEnv: () => void,
    private readonly scratchDir: string,
    options: LocalPipelineOptions,
  ) {
    this.ec2 = new Ec2Sim(template.stage.region, (region) => this.ec2At(region));
    for (const region of Object.keys(template.stage.distribution.regions)) {
      this.regions.set(region, {
        ec2: new Ec2Sim(region, (other) => this.ec2At(other)),
        ssm: new ParameterStoreSim(this.kms),
      });
    }
    this.db = DynamoDBDocumentClient.from(rawDb, { marshallOptions: { removeUndefinedValues: true } });
    this.s3 = new S3Client({ forcePathStyle: true });
    this.sfn = new StepFunctionsSim({
      stateMachineArn: template.resource('AmiPipelineStateMachine').ref,
      definition: template.stateMachineDefinition() as never,
      lambda: this.lambda,
      dynamodb: rawDb,
      sns: this.sns,
      retryIntervalMs: options.retryIntervalMs ?? 0,
      ...(options.retryIntervalOverrides ? { retryIntervalOverrides: options.retryIntervalOverrides } : {}),
      ...(options.beforeTask ? { beforeTask: options.beforeTask } : {}),
      ...(options.onEvent ? { onEvent: options.onEvent } : {}),
      ...(options.faults ? { intercept: this.interceptIntegration } : {}),
    });
    this.decommissions = new StepFunctionsSim({
      stateMachineArn: template.resource('DecommissionStateMachine').ref,
      definition: template.stateMachineDefinition('statemachines/decommission.asl.yml') as never,
      lambda: this.lambda,
      dynamodb: rawDb,
      sns: this.sns,
      retryIntervalMs: options.retryIntervalMs ?? 0,
      ...(options.onEvent ? { onEvent: options.onEvent } : {}),
      ...(options.faults ? { intercept: this.interceptIntegration } : {}),
    });
    this.elb = new ElbSim(template.stage.region, LOCAL_ACCOUNT_ID);
    this.logs = new LogsSim(this.kms, template.stage.region, LOCAL_ACCOUNT_ID, {
      arn: template.resource('LogsDeliveryStream').arn,
      subscriptionRoleArn: template.resource('LogsSubscriptionRole').arn,
    });
    this.commands = new CommandsSim({
      repoRoot: REPO_ROOT,
      stage: template.stage.stage,
      region: template.stage.region,
      accountId: LOCAL_ACCOUNT_ID,
      kmsKeyArn: template.resource('PipelineKey').arn,
      builders: [builderFor(template.stage.stage)],
      parameters: this.ssm,
      ec2: this.ec2,
      elb: this.elb,
      s3: this.s3,
      emit: (event) => this.deliverEvent(event),
      tick: async () => {
        await this.reconcile();
      },
    });
  }

  static async start(options: LocalPipelineOptions = {}): Promise<LocalPipeline> {
    const stageName = options.stage ?? 'dev';
    const scratchDir = mkdtempSync(path.join(tmpdir(), 'ami-pipeline-'));
    // The handlers read config/ at cold start: they read a merged copy here, with the smoke test's
    // backoff made instant (as Retry pauses are) and the caller's overrides on top.
    const configDir = path.join(scratchDir, 'config');
    mkdirSync(configDir);
    const base = parseYaml(readFileSync(path.join(REPO_ROOT, 'config', `${stageName}.yml`), 'utf8'));
    const harnessDefaults = { release: { smokeTestFirstDelayMs: 0 } };
    writeFileSync(
      path.join(configDir, `${stageName}.yml`),
      JSON.stringify(deepMerge(deepMerge(base, harnessDefaults), options.stageOverrides ?? {})),
    );
    copyFileSync(path.join(REPO_ROOT, 'config/rules.yml'), path.join(configDir, 'rules.yml'));
    const stage = loadStageConfig(stageName, configDir);
    const template = new LocalTemplate(stage);
    const emulators = await startEmulators({
      scratchDir,
      ...(options.stateDir ? { stateDir: options.stateDir } : {}),
    });

    // Handlers read their environment at module load: set it (as function.yml declares it,
    // resolved to local names) before they are imported.
    const functions = template.functions();
    const env: Record<string, string> = {
      AWS_REGION: stage.region,
      AWS_DEFAULT_REGION: stage.region,
      // s3rver accepts only these credentials; dynalite accepts any.
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_ENDPOINT_URL_DYNAMODB: emulators.dynamodbEndpoint,
      AWS_ENDPOINT_URL_S3: emulators.s3Endpoint,
      AWS_S3_FORCE_PATH_STYLE: 'true',
      // s3rver stores aws-chunked bodies verbatim: only send checksums when an API requires them.
      AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
      AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
      CONFIG_DIR: configDir,
      POWERTOOLS_LOG_LEVEL: options.logLevel ?? 'SILENT',
      POWERTOOLS_DEV: 'true',
    };
    for (const fn of functions) {
      for (const [name, value] of Object.entries(fn.environment)) {
        if (name === 'POWERTOOLS_LOG_LEVEL' || name === 'NODE_OPTIONS') continue;
        if (
          env[name] !== undefined &&
          env[name] !== value &&
          !(name in process.env && env[name] === process.env[name])
        ) {
          throw new Error(
            `functions disagree on ${name} (${env[name]} vs ${value}); the harness shares one process env`,
          );
        }
        env[name] = value;
      }
    }
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
    Object.assign(process.env, env);
    const restoreEnv = () => {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    };

    const rawDb = new DynamoDBClient({});
    const pipeline = new LocalPipeline(template, emulators, rawDb, restoreEnv, scratchDir, options);
    try {
      await pipeline.provision();
      pipeline.routeClients();
      await pipeline.lambda.load(functions, (key) => template.resource(key).arn);
      if (options.faults) pipeline.instrumentSharedClients();
      pipeline.subscribeTrigger();
    } catch (err) {
      await pipeline.stop();
      throw err;
    }
    return pipeline;
  }

  name(logicalId: string): string {
    return this.template.resource(logicalId).ref;
  }

  /** The EC2 stand-in of a region (the stage's own, or a distribution region); undefined elsewhere. */
  ec2At(region: string | undefined): Ec2Sim | undefined {
    if (region === undefined || region === this.template.stage.region) return this.ec2;
    return this.regions.get(region)?.ec2;
  }

  /** The Parameter Store stand-in of a region (the stage's own, or a distribution region). */
  ssmAt(region: string | undefined): ParameterStoreSim | undefined {
    if (region === undefined || region === this.template.stage.region) return this.ssm;
    return this.regions.get(region)?.ssm;
  }

  /** Every EC2 stand-in: the stage's region first. */
  private allEc2(): Ec2Sim[] {
    return [this.ec2, ...[...this.regions.values()].map((r) => r.ec2)];
  }

  /** Publishes a trigger message as Jenkins would (an object is sent as JSON, a string as is). */
  publishTrigger(message: unknown): PublishedMessage {
    const body = typeof message === 'string' ? message : JSON.stringify(message);
    this.sns.publish({ TopicArn: this.name('TriggerTopic'), Message: body });
    const published = this.sns.messages(this.name('TriggerTopic')).at(-1);
    if (!published) throw new Error('publish did not record a message');
    return published;
  }

  /** Waits until every delivery and every execution started so far has finished. */
  async settle(): Promise<ExecutionRecord[]> {
    for (;;) {
      await this.sns.idle();
      await this.commands.idle();
      await this.sfn.idle();
      await this.decommissions.idle();
      // Work can start while waiting on another part (a cancel's event, a redelivery): stop only
      // when all of it is quiet at once.
      if (
        !this.sns.busy() &&
        !this.commands.busy() &&
        [...this.sfn.list(), ...this.decommissions.list()].every((e) => e.status !== 'RUNNING')
      )
        break;
    }
    return this.sfn.list();
  }

  /**
   * settle() with the reconciler on its schedule (EventBridge Scheduler's job in AWS): whenever
   * every running execution is left waiting on a task token with nothing in flight (its completion
   * event was lost or its worker gave up), one reconciler run; and one more once all is quiet,
   * as the next scheduled run would (it finishes tasks a failed completion left pending). Throws
   * when executions still wait after `maxReconciles` runs.
   */
  async settleReconciling(maxReconciles = 5, timeoutMs = 30_000): Promise<ExecutionRecord[]> {
    const deadline = Date.now() + timeoutMs;
    const machines = [this.sfn, this.decommissions];
    const quiet = () => !this.sns.busy() && !this.commands.busy() && this.lambda.inFlight === 0;
    const running = () => machines.flatMap((m) => m.list()).filter((e) => e.status === 'RUNNING');
    const stuck = () =>
      quiet() &&
      running().length > 0 &&
      running().every((e) => machines.some((m) => m.waitingOnToken(e.executionArn)));
    let reconciles = 0;
    for (;;) {
      await this.sns.idle();
      await this.commands.idle();
      if (running().length === 0 && quiet()) break;
      if (Date.now() > deadline) {
        throw new Error(
          `not settled after ${timeoutMs} ms: ${running()
            .map((e) => `${e.name} at ${this.path(e.executionArn).at(-1)}`)
            .join(', ')} (lambda in flight ${this.lambda.inFlight}, tokens ${this.sfn.pendingTokens()})`,
        );
      }
      // Stuck twice in a row, a timer tick apart: not merely between two steps.
      const stuckNow = stuck();
      if (stuckNow) await new Promise((resolve) => setTimeout(resolve, 1));
      if (stuckNow && stuck()) {
        if (++reconciles > maxReconciles) {
          throw new Error(
            `still waiting on task tokens after ${maxReconciles} reconciler runs: ${running()
              .map((e) => e.name)
              .join(', ')}`,
          );
        }
        await this.scheduledReconcile();
        continue;
      }
      await Promise.race([...running().map((e) => e.done), new Promise((resolve) => setTimeout(resolve, 2))]);
    }
    await this.scheduledReconcile();
    return this.settle();
  }

  /** Failed reconciler invocations, as the ReconcilerErrors alarm counts them (Lambda Errors). */
  reconcilerErrors = 0;

  /**
   * A scheduled reconciler run, with Lambda's async-invoke retries (a schedule invokes it
   * asynchronously): a run that still fails is the alarm's business, not the caller's.
   */
  private async scheduledReconcile(): Promise<void> {
    const attempts = 1 + this.lambda.definition('reconciler').maximumRetryAttempts;
    for (let attempt = 0; attempt < attempts; attempt++) {
      try {
        await this.reconcile();
        return;
      } catch {
        this.reconcilerErrors += 1;
      }
    }
  }

  /**
   * What a run must not leave behind, beyond `leftovers`: sharing on its images and snapshots,
   * target groups (its green stack's), an app listener forwarding to one of them or to a target
   * group that no longer exists, log subscription filters on the app's groups while no release of
   * the app is live, the app's lock still held by the run, and coordination tasks still pending.
   */
  async orphans(runId: string, appId: string) {
    const leftovers = this.leftovers(runId);
    const ofRun = (tags: Record<string, string>) => tags['ami-pipeline:run-id'] === runId;
    const runTargetGroups = [...this.elb.targetGroups.values()].filter((t) => t.runId === runId);
    const lock = await this.lockItem(appId, this.template.stage.stage);
    const live = await this.liveRelease(appId);
    const approval = await this.approvalItem(runId);
    const pending = await this.query(
      {
        IndexName: PENDING_INDEX,
        KeyConditionExpression: 'pendingPk = :p',
        ExpressionAttributeValues: { ':p': 'PENDING' },
      },
      this.name('CoordinationTable'),
    );
    return {
      ...leftovers,
      launchPermissions: this.allEc2().flatMap((ec2) => [
        ...[...ec2.images.values()]
          .filter((i) => ofRun(i.tags) && i.launchPermissions.size > 0)
          .map((i) => i.imageId),
        ...[...ec2.snapshots.values()]
          .filter((s) => ofRun(s.tags) && s.createVolumePermissions.size > 0)
          .map((s) => s.snapshotId),
      ]),
      targetGroups: runTargetGroups.map((t) => t.arn),
      listener: Object.keys(this.elb.weights(appId)).filter(
        (arn) => !this.elb.targetGroups.has(arn) || this.elb.targetGroups.get(arn)?.runId === runId,
      ),
      // The app's log groups keep a live release's subscriptions; with none live, nobody owns one.
      logSubscriptions: live
        ? []
        : [...this.logs.groups.values()]
            .filter((g) => g.name.startsWith(`/app/${appId}/`) && g.filters.size > 0)
            .map((g) => g.name),
      lock: lock?.runId === runId ? [String(lock.holder)] : [],
      pendingTasks: pending.filter((t) => t.runId === runId).map((t) => String(t.pk)),
      // A run that waits for approval no more must not leave it PENDING: approved, rejected, or
      // EXPIRED once its deadline passed (a PENDING item past it is expired: decide answers 410).
      pendingApprovals:
        approval?.status === 'PENDING' && Date.parse(String(approval.deadline)) >= Date.now()
          ? [String(approval.pk)]
          : [],
    };
  }

  // ---- the approval gate (functions/approval, functions/approval-decide, docs/approval.md) -----

  /** An assumed-role session ARN of the stage's approver role, as AWS names the caller. */
  approverPrincipal(session = 'release-manager'): string {
    return `arn:aws:sts::${LOCAL_ACCOUNT_ID}:assumed-role/ami-pipeline-${this.template.stage.stage}-approver/${session}`;
  }

  /** A run's approval item (`APPROVAL#<runId>` in the coordination table), token included. */
  async approvalItem(runId: string): Promise<Record<string, unknown> | undefined> {
    const items = await this.query(
      { KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': `APPROVAL#${runId}` } },
      this.name('CoordinationTable'),
    );
    return items[0];
  }

  /** Waits until the run waits in AwaitApproval: its approval item is PENDING and its token parked. */
  async untilAwaitingApproval(runId: string, timeoutMs = 15000): Promise<Record<string, unknown>> {
    let item: Record<string, unknown> | undefined;
    await this.until(
      async () => {
        item = await this.approvalItem(runId);
        return item?.status === 'PENDING' && this.sfn.waitingOnToken(String(item.executionArn));
      },
      `run ${runId} to wait for approval`,
      timeoutMs,
    );
    return item as Record<string, unknown>;
  }

  /** An approval through the Function URL, as `principal` (an IAM ARN AWS authenticated). */
  approve(runId: string, by: { principal: string; reason?: string }) {
    return this.decide(
      { runId, decision: 'approve', ...(by.reason ? { reason: by.reason } : {}) },
      by.principal,
    );
  }

  reject(runId: string, by: { principal: string; reason?: string }) {
    return this.decide(
      { runId, decision: 'reject', ...(by.reason ? { reason: by.reason } : {}) },
      by.principal,
    );
  }

  /**
   * Invokes the approvalDecide function with the event Lambda delivers for a Function URL request
   * (payload format 2.0) after AWS_IAM authentication: the caller in requestContext.authorizer.iam.
   */
  async decide(
    body: unknown,
    principal: string,
    method = 'POST',
  ): Promise<{ statusCode: number; body: Record<string, unknown> }> {
    const now = new Date();
    const account = /^arn:aws[a-z-]*:(?:iam|sts)::(\d{12}):/.exec(principal)?.[1] ?? LOCAL_ACCOUNT_ID;
    const host = `localapprovalurl.lambda-url.${this.template.stage.region}.on.aws`;
    const event = {
      version: '2.0',
      routeKey: '$default',
      rawPath: '/',
      rawQueryString: '',
      headers: { 'content-type': 'application/json', host },
      requestContext: {
        accountId: LOCAL_ACCOUNT_ID,
        apiId: 'localapprovalurl',
        domainName: host,
        domainPrefix: 'localapprovalurl',
        http: {
          method,
          path: '/',
          protocol: 'HTTP/1.1',
          sourceIp: '127.0.0.1',
          userAgent: 'ami-pipeline-cli',
        },
        authorizer: {
          iam: {
            accessKey: 'ASIAEXAMPLELOCAL0000',
            accountId: account,
            callerId: 'AROAEXAMPLELOCAL0000:session',
            cognitoIdentity: null,
            principalOrgId: null,
            userArn: principal,
            userId: 'AROAEXAMPLELOCAL0000:session',
          },
        },
        requestId: randomUUID(),
        routeKey: '$default',
        stage: '$default',
        time: now.toISOString(),
        timeEpoch: now.getTime(),
      },
      body: typeof body === 'string' ? body : JSON.stringify(body),
      isBase64Encoded: false,
    };
    const response = (await this.lambda.invoke('approvalDecide', event, { caller: 'FunctionUrl' })) as {
      statusCode: number;
      body: string;
    };
    return { statusCode: response.statusCode, body: JSON.parse(response.body) as Record<string, unknown> };
  }

  /** Polls until `predicate` holds (for states in between, e.g. a command ended but its event was lost). */
  async until(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 15000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await predicate())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /** One scheduled run of the reconciler worker (EventBridge Scheduler's job in AWS). */
  async reconcile(): Promise<unknown> {
    return this.lambda.invoke('reconciler', {
      source: 'aws.events',
      'detail-type': 'Scheduled Event',
      detail: {},
    });
  }

  /** Everything a run could leave behind in the simulated account. */
  leftovers(runId: string) {
    const tagged = (tags: Record<string, string>) => tags['ami-pipeline:run-id'] === runId;
    return {
      images: this.allEc2().flatMap((ec2) =>
        [...ec2.images.values()].filter((i) => tagged(i.tags)).map((i) => i.imageId),
      ),
      snapshots: this.allEc2().flatMap((ec2) =>
        [...ec2.snapshots.values()].filter((s) => tagged(s.tags)).map((s) => s.snapshotId),
      ),
      grants: [...this.kms.grants.values()]
        .filter((g) => g.name === `ami-pipeline-${runId}`)
        .map((g) => g.grantId),
      stacks: this.commands.stacks.has(runId) ? [runId] : [],
      runningCommands: [...this.commands.commands.values()]
        .filter(
          (c) =>
            c.comment.includes(runId) && !['Success', 'Failed', 'Cancelled', 'TimedOut'].includes(c.status),
        )
        .map((c) => c.commandId),
    };
  }

  /** Names of the states an execution entered, in order. */
  path(executionArn: string): string[] {
    return this.sfn
      .get(executionArn)
      .events.filter((e) => e.type === 'StateEntered')
      .map((e) => e.state ?? '?');
  }

  outcomes(): Record<string, unknown>[] {
    return this.sns
      .messages(this.name('OutcomeTopic'))
      .map((m) => JSON.parse(m.message) as Record<string, unknown>);
  }

  rejectionsQueue() {
    return this.sqs.messages(this.name('RejectionsQueue'));
  }

  // ---- audit table reads (Queries only, as the auditors' tools do) ---------------------------

  async runsOf(appId: string): Promise<Record<string, unknown>[]> {
    return this.query({
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :run)',
      ExpressionAttributeValues: { ':pk': `APP#${appId}`, ':run': 'RUN#' },
    });
  }

  async runItems(runId: string): Promise<Record<string, unknown>[]> {
    return this.query({
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': auditKeys.runEvents(runId) },
    });
  }

  async rejections(environment = this.template.stage.stage): Promise<Record<string, unknown>[]> {
    return this.query({
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': auditKeys.rejections(environment) },
    });
  }

  async byResource(resourceId: string): Promise<Record<string, unknown>[]> {
    return this.query({
      IndexName: AUDIT_INDEXES.byResource,
      KeyConditionExpression: 'gsi1pk = :pk',
      ExpressionAttributeValues: { ':pk': `RESOURCE#${resourceId}` },
    });
  }

  /** The live release of an app (one Query on the LIVE#<env> partition). */
  async liveRelease(
    appId: string,
    environment = this.template.stage.stage,
  ): Promise<Record<string, unknown> | undefined> {
    const items = await this.query({
      KeyConditionExpression: 'pk = :pk AND sk = :sk',
      ExpressionAttributeValues: { ':pk': `LIVE#${environment}`, ':sk': `APP#${appId}` },
    });
    return items[0];
  }

  async lockItem(appId: string, environment: string): Promise<Record<string, unknown> | undefined> {
    const items = await this.query(
      {
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': `LOCK#${appId}#${environment}` },
      },
      this.name('CoordinationTable'),
    );
    return items[0];
  }

  async stop(): Promise<void> {
    for (const undo of this.uninstrument) undo();
    for (const stub of this.stubs) stub.restore();
    this.rawDb.destroy();
    this.s3.destroy();
    await this.elb.stop();
    await this.emulators.stop();
    this.restoreEnv();
    rmSync(this.scratchDir, { recursive: true, force: true });
  }

  private async query(
    params: Omit<ConstructorParameters<typeof QueryCommand>[0], 'TableName'>,
    tableName = this.name('AuditTable'),
  ): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let ExclusiveStartKey: Record<string, unknown> | undefined;
    do {
      const page = await this.db.send(
        new QueryCommand({ ...params, TableName: tableName, ExclusiveStartKey }),
      );
      items.push(...(page.Items ?? []));
      ExclusiveStartKey = page.LastEvaluatedKey;
    } while (ExclusiveStartKey);
    return items;
  }

  /** Creates the stage's tables (from serverless.yml's own definitions), buckets, topics, queues and key. */
  private async provision(): Promise<void> {
    for (const logicalId of ['AuditTable', 'CoordinationTable']) {
      const props = this.template.resourceProperties(logicalId);
      const tableName = props.TableName as string;
      const indexes = ((props.GlobalSecondaryIndexes ?? []) as { IndexName: string }[])
        .map((i) => i.IndexName)
        .sort();
      // State kept from an older version (npm start's .local/) may lack an index added since:
      // the local tables are then rebuilt from the current definition.
      const existing = await this.rawDb
        .send(new DescribeTableCommand({ TableName: tableName }))
        .catch((err: unknown) =>
          err instanceof ResourceNotFoundException ? undefined : Promise.reject(err),
        );
      if (existing) {
        const have = (existing.Table?.GlobalSecondaryIndexes ?? []).map((i) => i.IndexName ?? '').sort();
        // Coordination items (locks, task tokens) belong to executions of an earlier process, which
        // are gone with it: start that table empty, or a killed `npm start` leaves its lock behind.
        const ephemeral = logicalId === 'CoordinationTable';
        if (!ephemeral && JSON.stringify(have) === JSON.stringify(indexes)) continue;
        await this.rawDb.send(new DeleteTableCommand({ TableName: tableName }));
      }
      await this.rawDb.send(
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
    }
    for (const logicalId of ['ArtifactsBucket', 'ReportsBucket', 'LogsBucket']) {
      try {
        await this.s3.send(new CreateBucketCommand({ Bucket: this.name(logicalId) }));
      } catch (err) {
        if (!(err instanceof Error && /BucketAlready(OwnedByYou|Exists)/.test(err.name))) throw err;
      }
    }
    this.kms.createKey(this.template.resource('PipelineKey').arn, [
      `alias/ami-pipeline-${this.template.stage.stage}`,
    ]);
    // The stage key of each distribution region (a replica, or a key the platform team made there).
    for (const { kmsKeyArn } of Object.values(this.template.stage.distribution.regions))
      this.kms.createKey(kmsKeyArn);
    this.sns.createTopic(this.name('TriggerTopic'));
    this.sns.createTopic(this.name('OutcomeTopic'));
    this.sqs.createQueue(this.name('RejectionsQueue'));
    this.sqs.createQueue(this.name('TriggerDeadLetterQueue'));
  }

  /**
   * Sends the handlers' SDK calls for services without an emulator to the stand-ins. Each fake is
   * async, as `client.send` is: a stand-in's error becomes a rejected promise, not a synchronous throw.
   * Every route is also kept in `standIns` (service → command → fake), which the fault-injecting
   * harness uses to reach the same stand-ins from the bottom of a client's real middleware stack.
   */
  private routeClients(): void {
    /** A stand-in call; `region` is the calling client's (undefined: the stage's region). */
    type Fake = (input: never, region?: string) => Promise<unknown>;
    type GetClient = () => { config: { region?: unknown } };
    type ClientStub = AnyStub & {
      onAnyCommand: () => { rejects: (error: Error) => unknown };
      on: (command: never) => {
        callsFake: (fake: (input: never, getClient: GetClient) => Promise<unknown>) => unknown;
      };
    };
    const regionOf = async (getClient: GetClient): Promise<string | undefined> => {
      const region = getClient().config.region;
      const value: unknown = typeof region === 'function' ? await (region as () => unknown)() : region;
      return typeof value === 'string' ? value : undefined;
    };
    /** Stubs a client class: commands routed to their stand-in, every other one refused. */
    const standIn = (stub: unknown, service: string, what: string) => {
      const client = stub as ClientStub;
      client.onAnyCommand().rejects(new Error(`${what} call not simulated by the harness`));
      this.stubs.push(client);
      const routes = new Map<string, Fake>();
      this.standIns.set(service, routes);
      return <C extends abstract new (input: never) => unknown>(
        Command: C,
        fake: (input: NonNullable<ConstructorParameters<C>[0]>, region?: string) => unknown,
      ) => {
        const fakeAsync: Fake = async (input, region) => fake(input, region);
        client
          .on(Command as never)
          .callsFake(async (input, getClient) => fakeAsync(input, await regionOf(getClient)));
        routes.set(Command.name, fakeAsync);
      };
    };

    const machines = [this.sfn, this.decommissions];
    const machineOf = (arn: string | undefined) =>
      machines.find((m) => arn?.startsWith(m.executionArnPrefix) || arn === m.stateMachineArn) ?? this.sfn;
    const onSfn = standIn(mockClient(SFNClient), 'SFN', 'Step Functions');
    onSfn(StartExecutionCommand, (input) => machineOf(input.stateMachineArn).startExecution(input));
    onSfn(DescribeExecutionCommand, (input) => machineOf(input.executionArn).describeExecution(input));
    // A token belongs to one machine; ask the one that issued it.
    const holder = (token: string | undefined) => machines.find((m) => m.holds(token)) ?? this.sfn;
    onSfn(SendTaskSuccessCommand, (input) => holder(input.taskToken).sendTaskSuccess(input));
    onSfn(SendTaskFailureCommand, (input) => holder(input.taskToken).sendTaskFailure(input));
    onSfn(SendTaskHeartbeatCommand, (input) => holder(input.taskToken).sendTaskHeartbeat(input));

    // Publishers other than the state machine (the CLI's `trigger --local`) reach the same topics.
    const onSns = standIn(mockClient(SNSClient), 'SNS', 'SNS');
    onSns(PublishCommand, (input) => this.sns.publish(input as never));

    const onSqs = standIn(mockClient(SQSClient), 'SQS', 'SQS');
    onSqs(SendMessageCommand, (input) => this.sqs.sendMessage(input));

    const onSsm = standIn(mockClient(SSMClient), 'SSM', 'SSM');
    const parameters = (region: string | undefined): ParameterStoreSim => {
      const sim = this.ssmAt(region);
      if (!sim) throw new Error(`SSM in ${region} is not simulated (not a distribution region of the stage)`);
      return sim;
    };
    onSsm(PutParameterCommand, (input, region) => parameters(region).putParameter(input));
    onSsm(GetParameterCommand, (input, region) => parameters(region).getParameter(input));
    onSsm(DeleteParameterCommand, (input, region) => parameters(region).deleteParameter(input));
    onSsm(GetResourcePoliciesCommand, (input, region) => parameters(region).getResourcePolicies(input));
    onSsm(PutResourcePolicyCommand, (input, region) => parameters(region).putResourcePolicy(input));
    onSsm(DeleteResourcePolicyCommand, (input, region) => parameters(region).deleteResourcePolicy(input));
    onSsm(AddTagsToResourceCommand, (input) => this.ssm.addTagsToResource(input));
    onSsm(SendCommandCommand, (input) => this.commands.sendCommand(input));
    onSsm(CancelCommandCommand, (input) => this.commands.cancelCommand(input));
    onSsm(ListCommandsCommand, (input) => this.commands.listCommands(input));
    onSsm(ListCommandInvocationsCommand, (input) => this.commands.listCommandInvocations(input));
    onSsm(DescribeInstanceInformationCommand, (input) => this.commands.describeInstanceInformation(input));

    const onEc2 = standIn(mockClient(EC2Client), 'EC2', 'EC2');
    const ec2 = (region: string | undefined): Ec2Sim => {
      const sim = this.ec2At(region);
      if (!sim) throw new Error(`EC2 in ${region} is not simulated (not a distribution region of the stage)`);
      return sim;
    };
    onEc2(DescribeImagesCommand, (input, region) => ec2(region).describeImages(input));
    onEc2(DescribeSnapshotsCommand, (input, region) => ec2(region).describeSnapshots(input));
    onEc2(CreateTagsCommand, (input, region) => ec2(region).createTags(input));
    onEc2(ModifyImageAttributeCommand, (input, region) => ec2(region).modifyImageAttribute(input));
    onEc2(ModifySnapshotAttributeCommand, (input, region) => ec2(region).modifySnapshotAttribute(input));
    onEc2(CopyImageCommand, (input, region) => ec2(region).copyImage(input));
    onEc2(DeregisterImageCommand, (input, region) => ec2(region).deregisterImage(input));
    onEc2(DeleteSnapshotCommand, (input, region) => ec2(region).deleteSnapshot(input));

    const onKms = standIn(mockClient(KMSClient), 'KMS', 'KMS');
    onKms(CreateGrantCommand, (input) => this.kms.createGrant(input));
    onKms(RevokeGrantCommand, (input) => this.kms.revokeGrant(input));
    onKms(ListGrantsCommand, (input) => this.kms.listGrants(input));

    const onElb = standIn(
      mockClient(ElasticLoadBalancingV2Client),
      'ElasticLoadBalancingV2',
      'Elastic Load Balancing',
    );
    onElb(DescribeLoadBalancersCommand, () => this.elb.describeLoadBalancers());
    onElb(DescribeListenersCommand, (input) => this.elb.describeListeners(input));
    onElb(ModifyListenerCommand, (input) => this.elb.modifyListener(input));
    onElb(DescribeTargetHealthCommand, (input) => this.elb.describeTargetHealth(input));

    const onCloudWatch = standIn(mockClient(CloudWatchClient), 'CloudWatch', 'CloudWatch');
    onCloudWatch(GetMetricStatisticsCommand, (input) => this.elb.getMetricStatistics(input));

    const onLogs = standIn(mockClient(CloudWatchLogsClient), 'CloudWatchLogs', 'CloudWatch Logs');
    onLogs(CreateLogGroupCommand, (input) => this.logs.createLogGroup(input));
    onLogs(AssociateKmsKeyCommand, (input) => this.logs.associateKmsKey(input));
    onLogs(PutRetentionPolicyCommand, (input) => this.logs.putRetentionPolicy(input));
    onLogs(ListTagsForResourceCommand, (input) => this.logs.listTagsForResource(input));
    onLogs(DescribeSubscriptionFiltersCommand, (input) => this.logs.describeSubscriptionFilters(input));
    onLogs(PutSubscriptionFilterCommand, (input) => this.logs.putSubscriptionFilter(input));
    onLogs(DeleteSubscriptionFilterCommand, (input) => this.logs.deleteSubscriptionFilter(input));
  }

  /**
   * EventBridge → command-completed, with Lambda's async-invoke retries. The invocation is named
   * after the command it reports (`commandCompleted:bake`, `commandCompleted:provision:destroy`),
   * and with fault injection a delivery can be lost or made twice (EventBridge is at-least-once).
   */
  private async deliverEvent(event: StatusChangeEvent): Promise<void> {
    const command = this.commands.commands.get(event.detail['command-id']);
    const mode = command?.parameters.mode;
    const caller = `commandCompleted:${command?.step ?? 'unknown'}${mode === 'destroy' ? ':destroy' : ''}`;
    const fault = this.faults.delivery({
      layer: 'event',
      caller: 'EventBridge',
      service: 'Lambda',
      operation: 'InvokeAsync',
      target: caller,
    });
    if (fault === 'drop') return;
    const deliveries = fault === 'duplicate' ? 2 : 1;
    const attempts = 1 + this.lambda.definition('commandCompleted').maximumRetryAttempts;
    let lastError: unknown;
    for (let delivery = 0; delivery < deliveries; delivery++) {
      lastError = undefined;
      for (let attempt = 0; attempt < attempts; attempt++) {
        try {
          await this.lambda.invoke('commandCompleted', event, { caller });
          lastError = undefined;
          break;
        } catch (err) {
          lastError = err;
        }
      }
    }
    if (lastError !== undefined) throw lastError;
  }

  /** Faults for the Step Functions stand-ins' service integrations. */
  private readonly interceptIntegration = <T>(
    call: { state: string; service: string; operation: string; target: string },
    send: () => Promise<T>,
  ): Promise<T> =>
    this.faults.around(
      {
        layer: 'states',
        caller: call.state,
        service: call.service,
        operation: call.operation,
        target: call.target,
      },
      send,
    );

  /**
   * Gives every client in shared/clients/ its real middleware stack back (aws-sdk-client-mock stubs
   * `send` on the client classes; an own `send` on the shared instances shadows the stub), ends the
   * stack at the stand-ins instead of an HTTP request for services without an emulator, and hands
   * each client to the fault injector. Clients made elsewhere (the CLI's) keep the plain stubs.
   */
  private instrumentSharedClients(): void {
    const dir = path.join(REPO_ROOT, 'shared/clients');
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      // `require`, as LambdaRuntime.load does: the very instances the handlers hold.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const mod = require(path.join(dir, file)) as Record<string, unknown>;
      for (const client of Object.values(mod)) if (isSdkClient(client)) this.instrumentClient(client);
    }
    // The clients of each distribution region (made once per region and kept, as in a container),
    // named `<service>@<region>` in the call log so their calls are sites of their own.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const regional = require(path.join(dir, 'regional.ts')) as typeof import('../../shared/clients/regional');
    for (const region of this.regions.keys()) {
      for (const client of Object.values(regional.clientsIn(region)) as unknown[]) {
        if (isSdkClient(client)) this.instrumentClient(client, region);
      }
    }
  }

  /** See `instrumentSharedClients`; `region`: a distribution region's client. */
  private instrumentClient(client: SdkClient, region?: string): void {
    const service = client.constructor.name.replace(/(Document)?Client$/, '');
    const routes = this.standIns.get(service);
    if (routes) {
      const ownSend = Object.getPrototypeOf(Object.getPrototypeOf(client)) as { send: unknown };
      Object.defineProperty(client, 'send', { value: ownSend.send, configurable: true, writable: true });
      client.middlewareStack.add(
        (() => async (args: { input: never }) => {
          throw new Error(`${service} call not simulated by the harness (${JSON.stringify(args.input)})`);
        }) as never,
        { step: 'deserialize', priority: 'low', name: 'harnessUnrouted' } as never,
      );
      client.middlewareStack.add(
        ((next: (args: unknown) => Promise<unknown>, context: { commandName?: string }) =>
          async (args: { input: never }) => {
            const fake = routes.get(context.commandName ?? '');
            if (!fake) return next(args);
            const output = ((await fake(args.input, region)) ?? {}) as { $metadata?: object };
            return { output: { ...output, $metadata: { ...output.$metadata } }, response: {} };
          }) as never,
        { step: 'deserialize', priority: 'high', name: 'harnessStandIn' } as never,
      );
    }
    const undo = this.faults.instrument(client, region ? `${service}@${region}` : service);
    this.uninstrument.push(() => {
      undo();
      delete (client as { send?: unknown }).send;
      for (const name of ['harnessStandIn', 'harnessUnrouted']) client.middlewareStack.remove(name);
    });
  }

  /** The trigger topic's Lambda subscription, with async-invoke retries and the DLQ. */
  private subscribeTrigger(): void {
    const fn = this.lambda.definition('trigger');
    const attempts = 1 + fn.maximumRetryAttempts;
    this.sns.subscribe(this.name('TriggerTopic'), async (message) => {
      const event: SNSEvent = {
        Records: [
          {
            EventSource: 'aws:sns',
            EventVersion: '1.0',
            EventSubscriptionArn: `${message.topicArn}:local`,
            Sns: {
              Type: 'Notification',
              MessageId: message.messageId,
              TopicArn: message.topicArn,
              Subject: '',
              Message: message.message,
              Timestamp: message.timestamp,
              SignatureVersion: '1',
              Signature: '',
              SigningCertUrl: '',
              UnsubscribeUrl: '',
              MessageAttributes: {},
            },
          },
        ],
      };
      let lastError: unknown;
      // One invocation: its retries keep its request id (the trigger's claim holder), as in Lambda.
      const requestId = randomUUID();
      for (let attempt = 0; attempt < attempts; attempt++) {
        try {
          await this.lambda.invoke(fn.key, event, { requestId });
          return;
        } catch (err) {
          lastError = err;
        }
      }
      this.sqs.sendMessage({
        QueueUrl: this.name('TriggerDeadLetterQueue'),
        MessageBody: JSON.stringify({
          event,
          error: lastError instanceof Error ? lastError.name : String(lastError),
        }),
      });
    });
  }
}
