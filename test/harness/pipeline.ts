import './polyfills';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
import { CreateGrantCommand, KMSClient, RevokeGrantCommand } from '@aws-sdk/client-kms';
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
  DescribeInstanceInformationCommand,
  GetParameterCommand,
  ListCommandInvocationsCommand,
  ListCommandsCommand,
  PutParameterCommand,
  SendCommandCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import type { SNSEvent } from 'aws-lambda';
import { mockClient, type AwsStub } from 'aws-sdk-client-mock';
import { auditKeys, AUDIT_INDEXES } from '../../shared/audit';
import { parseYaml } from '../../shared/config/files';
import { loadStageConfig } from '../../shared/config/stage';
import { startEmulators, type Emulators } from './emulators';
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
  readonly ec2 = new Ec2Sim();
  readonly elb: ElbSim;
  readonly logs: LogsSim;
  readonly lambda = new LambdaRuntime();
  readonly sfn: StepFunctionsSim;
  /** The decommission state machine (started by RecordRelease for each replaced release). */
  readonly decommissions: StepFunctionsSim;
  readonly commands: CommandsSim;
  readonly db: DynamoDBDocumentClient;
  readonly s3: S3Client;
  private readonly stubs: AnyStub[] = [];

  private constructor(
    readonly template: LocalTemplate,
    private readonly emulators: Emulators,
    private readonly rawDb: DynamoDBClient,
    private readonly restoreEnv: () => void,
    private readonly scratchDir: string,
    options: LocalPipelineOptions,
  ) {
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
    });
    this.decommissions = new StepFunctionsSim({
      stateMachineArn: template.resource('DecommissionStateMachine').ref,
      definition: template.stateMachineDefinition('statemachines/decommission.asl.yml') as never,
      lambda: this.lambda,
      dynamodb: rawDb,
      sns: this.sns,
      retryIntervalMs: options.retryIntervalMs ?? 0,
      ...(options.onEvent ? { onEvent: options.onEvent } : {}),
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
      images: [...this.ec2.images.values()].filter((i) => tagged(i.tags)).map((i) => i.imageId),
      snapshots: [...this.ec2.snapshots.values()].filter((s) => tagged(s.tags)).map((s) => s.snapshotId),
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
    this.sns.createTopic(this.name('TriggerTopic'));
    this.sns.createTopic(this.name('OutcomeTopic'));
    this.sqs.createQueue(this.name('RejectionsQueue'));
    this.sqs.createQueue(this.name('TriggerDeadLetterQueue'));
  }

  /**
   * Sends the handlers' SDK calls for services without an emulator to the stand-ins. Each fake is
   * async, as `client.send` is: a stand-in's error becomes a rejected promise, not a synchronous throw.
   */
  private routeClients(): void {
    const sfn = mockClient(SFNClient);
    sfn.onAnyCommand().rejects(new Error('Step Functions call not simulated by the harness'));
    const machines = [this.sfn, this.decommissions];
    const machineOf = (arn: string | undefined) =>
      machines.find((m) => arn?.startsWith(m.executionArnPrefix) || arn === m.stateMachineArn) ?? this.sfn;
    sfn
      .on(StartExecutionCommand)
      .callsFake(async (input) => machineOf(input.stateMachineArn).startExecution(input));
    sfn
      .on(DescribeExecutionCommand)
      .callsFake(async (input) => machineOf(input.executionArn).describeExecution(input));

    // Publishers other than the state machine (the CLI's `trigger --local`) reach the same topics.
    const sns = mockClient(SNSClient);
    sns.onAnyCommand().rejects(new Error('SNS call not simulated by the harness'));
    sns.on(PublishCommand).callsFake(async (input) => this.sns.publish(input));

    const sqs = mockClient(SQSClient);
    sqs.onAnyCommand().rejects(new Error('SQS call not simulated by the harness'));
    sqs.on(SendMessageCommand).callsFake(async (input) => this.sqs.sendMessage(input));

    const ssm = mockClient(SSMClient);
    ssm.onAnyCommand().rejects(new Error('SSM call not simulated by the harness'));
    ssm.on(PutParameterCommand).callsFake(async (input) => this.ssm.putParameter(input));
    ssm.on(GetParameterCommand).callsFake(async (input) => this.ssm.getParameter(input));
    ssm.on(AddTagsToResourceCommand).callsFake(async (input) => this.ssm.addTagsToResource(input));

    // A token belongs to one machine; ask the one that issued it.
    const holder = (token: string | undefined) => machines.find((m) => m.holds(token)) ?? this.sfn;
    sfn.on(SendTaskSuccessCommand).callsFake(async (input) => holder(input.taskToken).sendTaskSuccess(input));
    sfn.on(SendTaskFailureCommand).callsFake(async (input) => holder(input.taskToken).sendTaskFailure(input));
    sfn
      .on(SendTaskHeartbeatCommand)
      .callsFake(async (input) => holder(input.taskToken).sendTaskHeartbeat(input));

    ssm.on(SendCommandCommand).callsFake(async (input) => this.commands.sendCommand(input));
    ssm.on(CancelCommandCommand).callsFake(async (input) => this.commands.cancelCommand(input));
    ssm.on(ListCommandsCommand).callsFake(async (input) => this.commands.listCommands(input));
    ssm
      .on(ListCommandInvocationsCommand)
      .callsFake(async (input) => this.commands.listCommandInvocations(input));
    ssm
      .on(DescribeInstanceInformationCommand)
      .callsFake(async (input) => this.commands.describeInstanceInformation(input));

    const ec2 = mockClient(EC2Client);
    ec2.onAnyCommand().rejects(new Error('EC2 call not simulated by the harness'));
    ec2.on(DescribeImagesCommand).callsFake(async (input) => this.ec2.describeImages(input));
    ec2.on(DescribeSnapshotsCommand).callsFake(async (input) => this.ec2.describeSnapshots(input));
    ec2.on(CreateTagsCommand).callsFake(async (input) => this.ec2.createTags(input));
    ec2.on(ModifyImageAttributeCommand).callsFake(async (input) => this.ec2.modifyImageAttribute(input));
    ec2
      .on(ModifySnapshotAttributeCommand)
      .callsFake(async (input) => this.ec2.modifySnapshotAttribute(input));
    ec2.on(CopyImageCommand).callsFake(async (input) => this.ec2.copyImage(input));
    ec2.on(DeregisterImageCommand).callsFake(async (input) => this.ec2.deregisterImage(input));
    ec2.on(DeleteSnapshotCommand).callsFake(async (input) => this.ec2.deleteSnapshot(input));

    const kms = mockClient(KMSClient);
    kms.onAnyCommand().rejects(new Error('KMS call not simulated by the harness'));
    kms.on(CreateGrantCommand).callsFake(async (input) => this.kms.createGrant(input));
    kms.on(RevokeGrantCommand).callsFake(async (input) => this.kms.revokeGrant(input));

    const elbv2 = mockClient(ElasticLoadBalancingV2Client);
    elbv2.onAnyCommand().rejects(new Error('Elastic Load Balancing call not simulated by the harness'));
    elbv2.on(DescribeLoadBalancersCommand).callsFake(async () => this.elb.describeLoadBalancers());
    elbv2.on(DescribeListenersCommand).callsFake(async (input) => this.elb.describeListeners(input));
    elbv2.on(ModifyListenerCommand).callsFake(async (input) => this.elb.modifyListener(input));
    elbv2.on(DescribeTargetHealthCommand).callsFake(async (input) => this.elb.describeTargetHealth(input));

    const cloudwatch = mockClient(CloudWatchClient);
    cloudwatch.onAnyCommand().rejects(new Error('CloudWatch call not simulated by the harness'));
    cloudwatch.on(GetMetricStatisticsCommand).callsFake(async (input) => this.elb.getMetricStatistics(input));

    const logs = mockClient(CloudWatchLogsClient);
    logs.onAnyCommand().rejects(new Error('CloudWatch Logs call not simulated by the harness'));
    logs.on(CreateLogGroupCommand).callsFake(async (input) => this.logs.createLogGroup(input));
    logs.on(AssociateKmsKeyCommand).callsFake(async (input) => this.logs.associateKmsKey(input));
    logs.on(PutRetentionPolicyCommand).callsFake(async (input) => this.logs.putRetentionPolicy(input));
    logs.on(ListTagsForResourceCommand).callsFake(async (input) => this.logs.listTagsForResource(input));
    logs
      .on(DescribeSubscriptionFiltersCommand)
      .callsFake(async (input) => this.logs.describeSubscriptionFilters(input));
    logs.on(PutSubscriptionFilterCommand).callsFake(async (input) => this.logs.putSubscriptionFilter(input));
    logs
      .on(DeleteSubscriptionFilterCommand)
      .callsFake(async (input) => this.logs.deleteSubscriptionFilter(input));

    this.stubs.push(
      logs as unknown as AnyStub,
      elbv2 as unknown as AnyStub,
      cloudwatch as unknown as AnyStub,
      sfn as unknown as AnyStub,
      sns as unknown as AnyStub,
      sqs as unknown as AnyStub,
      ssm as unknown as AnyStub,
      ec2 as unknown as AnyStub,
      kms as unknown as AnyStub,
    );
  }

  /** EventBridge → command-completed, with Lambda's async-invoke retries. */
  private async deliverEvent(event: StatusChangeEvent): Promise<void> {
    const attempts = 1 + this.lambda.definition('commandCompleted').maximumRetryAttempts;
    let lastError: unknown;
    for (let attempt = 0; attempt < attempts; attempt++) {
      try {
        await this.lambda.invoke('commandCompleted', event);
        return;
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError;
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
      for (let attempt = 0; attempt < attempts; attempt++) {
        try {
          await this.lambda.invoke(fn.key, event);
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
