import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CommandStatus } from '@aws-sdk/client-ssm';
import { parseDocument } from 'yaml';
import { FAILURE_ERRORS, TERMINAL_STATUSES } from '../../shared/commands/complete';
import {
  COMMAND_STEPS,
  DOCUMENT_PARAMETERS,
  documentName,
  PARAMETER_PATTERNS,
  type CommandStep,
} from '../../shared/commands/contract';
import { PENDING_INDEX } from '../../shared/commands/tasks';
import { loadRules } from '../../shared/config/rules';
import { stageConfigFromEnv } from '../../shared/config/stage';
import { loadStageConfig } from '../../shared/config/stage-file';
import { distributionResources } from '../../shared/config/distribution-iam';
import { ConfigurationError } from '../../shared/errors';
import {
  allStates,
  findCycle,
  functionOf,
  nestedDefinitions,
  parseDefinition,
  reachableFrom,
  statesWithin,
  successPath,
} from './asl';
import { describeAlarms } from './alarms';
import { APPROVER_ROLE_ID, describeApprovalGate } from './approval';
import { AUDITOR_ROLE_ID, describeAuditorRole } from './auditor';
import {
  actionMatches,
  allows,
  grantLines,
  IAM_POLICY_TYPES,
  iamViolations,
  policyStatements,
  resourcesGranted,
} from './iam';
import { secretLookingVariables } from './secrets';
import {
  asList,
  at,
  danglingReferences,
  isObject,
  PackagedStack,
  rateSeconds,
  renderArn,
  REPO_ROOT,
  runServerless,
  STAGE_KEY_ARN,
  zipEntries,
  type CfnResource,
  type CfnTemplate,
  type Json,
  type JsonObject,
} from './stack';

const STAGES = ['dev', 'prod'];
const PIPELINE_BUCKETS = ['ArtifactsBucket', 'ReportsBucket', 'LogsBucket'];
/** Every function of serverless.yml, by its name there (the zip and the logical ids derive from it). */
const FUNCTIONS = [
  'trigger',
  'lock',
  'preProvision',
  'bake',
  'distribute',
  'provision',
  'validate',
  'commandCompleted',
  'reconciler',
  'smokeTest',
  'traffic',
  'logExport',
  'recordRelease',
  'decommission',
  'compensate',
  'approval',
  'approvalDecide',
];
/** `commandCompleted` → `CommandCompleted`, the prefix of the framework's logical ids for a function. */
const capitalized = (name: string): string => `${name.charAt(0).toUpperCase()}${name.slice(1)}`;
const FUNCTION_LOGICAL_IDS = FUNCTIONS.map((fn) => `${capitalized(fn)}LambdaFunction`);
/** The per-function role serverless-iam-roles-per-function makes. */
const roleOf = (fn: string): string => `${capitalized(fn)}IamRoleLambdaExecution`;
const ROLE_LOGICAL_IDS = FUNCTIONS.map(roleOf);
/** The callback states and the worker each one invokes (DestroyGreenStack runs provision in destroy mode). */
const TOKEN_STATES: [state: string, step: CommandStep, fn: string][] = [
  ['Bake', 'bake', 'BakeLambdaFunction'],
  ['Provision', 'provision', 'ProvisionLambdaFunction'],
  ['Validate', 'validate', 'ValidateLambdaFunction'],
  ['DestroyGreenStack', 'provision', 'ProvisionLambdaFunction'],
];
/**
 * Errors of the Lambda service itself (the invocation never ran or its answer was lost) that AWS
 * recommends every Lambda task retry. Retrying them cannot re-run a command that failed.
 */
const LAMBDA_SERVICE_ERRORS = [
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.TooManyRequestsException',
];
/**
 * What every Lambda task retries: the Lambda service's errors, and the one name workers give an AWS
 * throttle, 5xx or timeout the SDK gave up on (shared/errors.ts forStateMachine).
 */
const TRANSIENT_ERRORS = [...LAMBDA_SERVICE_ERRORS, 'AwsTransientError'];
/** The framework adds these to every role (log streams, X-Ray); other tests cover them. */
const FRAMEWORK_SERVICES = ['logs', 'xray'];

/**
 * The only actions any role may be allowed on `Resource: "*"`: AWS defines no resource type for
 * them, so no narrower ARN exists.
 */
const RESOURCE_STAR_ACTIONS = [
  // X-Ray: trace segments, telemetry and sampling rules are account-level APIs; Lambda active
  // tracing and the state machine's tracing call them.
  'xray:PutTraceSegments',
  'xray:PutTelemetryRecords',
  'xray:GetSamplingRules',
  'xray:GetSamplingTargets',
  // CloudWatch Logs vended-log delivery, which Step Functions sets up with the state machine role
  // when logging is on: these APIs support no resource-level permissions (Step Functions developer
  // guide, "IAM policies for logging to CloudWatch Logs").
  'logs:CreateLogDelivery',
  'logs:GetLogDelivery',
  'logs:UpdateLogDelivery',
  'logs:DeleteLogDelivery',
  'logs:ListLogDeliveries',
  'logs:PutResourcePolicy',
  'logs:DescribeResourcePolicies',
  'logs:DescribeLogGroups',
  // Run Command reads and cancellation: the Service Authorization Reference (list_awssystemsmanager)
  // gives ListCommands, ListCommandInvocations, DescribeInstanceInformation and CancelCommand no
  // resource type. SendCommand has one (document, instance) and stays scoped.
  'ssm:ListCommands',
  'ssm:ListCommandInvocations',
  'ssm:DescribeInstanceInformation',
  'ssm:CancelCommand',
  // EC2 Describe* calls have no resource type (list_amazonec2); the mutations stay on tagged ARNs.
  'ec2:DescribeImages',
  'ec2:DescribeSnapshots',
  // Elastic Load Balancing v2 reads have no resource type (list_elasticloadbalancingv2);
  // ModifyListener has one (listener/app) and stays on the stage's tagged listeners.
  'elasticloadbalancing:DescribeLoadBalancers',
  'elasticloadbalancing:DescribeListeners',
  'elasticloadbalancing:DescribeTargetHealth',
  // CloudWatch GetMetricStatistics has no resource type (list_amazoncloudwatch). Not GetMetricData:
  // it has the resource type `dataset` (OTLP metrics read with PromQL), so "*" would grant those too.
  'cloudwatch:GetMetricStatistics',
];
/** How many steps the traffic shift is budgeted for (the sample app's 10, 50 and 100 %). */
const BUDGETED_TRAFFIC_STEPS = 3;
/** Step Functions bills state transitions; a successful run must stay within this design budget. */
const TRANSITION_BUDGET = 40;

const getAttArn = (logicalId: string): Json => ({ 'Fn::GetAtt': [logicalId, 'Arn'] });

/** `{ logicalId: pick(resource) }` for a list of resources, so a failing expectation names the resource. */
const byId = <T>(entries: [string, T][], pick: (value: T, id: string) => unknown): Record<string, unknown> =>
  Object.fromEntries(entries.map(([id, value]) => [id, pick(value, id)]));

const sameForAll = (logicalIds: string[], expected: unknown): Record<string, unknown> =>
  Object.fromEntries(logicalIds.map((id) => [id, expected]));

const ids = (entries: [string, unknown][]): string[] => entries.map(([id]) => id);

/** Every logical id an `Fn::GetAtt` inside `value` points at. */
const getAttTargets = (value: Json | undefined): string[] => {
  if (Array.isArray(value)) return value.flatMap(getAttTargets);
  if (!isObject(value)) return [];
  const getAtt = value['Fn::GetAtt'];
  const own = Array.isArray(getAtt) && typeof getAtt[0] === 'string' ? [getAtt[0]] : [];
  return [...own, ...Object.values(value).flatMap(getAttTargets)];
};

/** The lines {@link grantLines} writes for `actions` on `resources`, with the statement's condition. */
const grant = (actions: string[], resources: string[], condition?: JsonObject): string[] =>
  actions.flatMap((action) =>
    resources.map(
      (resource) =>
        `${action} ${resource}${condition === undefined ? '' : ` if ${JSON.stringify(condition)}`}`,
    ),
  );

/** Whether the state's last catcher takes every error. */
const catchesAll = (state: JsonObject): boolean =>
  JSON.stringify(at(asList(state.Catch).at(-1), 'ErrorEquals')) === JSON.stringify(['States.ALL']);

/** The Retry errors of a state, every retrier's, in order. */
const retriedErrors = (state: JsonObject): string[] =>
  asList(state.Retry).flatMap((retrier) => asList(at(retrier, 'ErrorEquals')).map(String));

/**
 * Whether an IAM Resource could cover the ARN: the same `Ref`, `*`, or an ARN pattern whose
 * `${AWS::…}` pseudo parameters and `*` wildcards match it.
 */
const resourceCovers = (resource: Json, logicalId: string, arn: string): boolean => {
  const rendered = renderArn(resource);
  if (rendered === `\${${logicalId}}` || rendered === '*') return true;
  const pattern = rendered
    .replace(/\$\{AWS::[A-Za-z]+\}/g, '*')
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${pattern}$`).test(arn);
};

/** What a definition value stands for: the `Fn::Sub` variable of a `${…}` placeholder, or itself. */
const substituted = (value: Json | undefined, variables: JsonObject): Json | undefined => {
  const placeholder = typeof value === 'string' ? /^\$\{([^}]+)\}$/.exec(value)?.[1] : undefined;
  return placeholder === undefined ? value : variables[placeholder];
};

/** Rules whose targets include the function. */
const rulesTargeting = (rules: [string, CfnResource][], functionId: string): [string, CfnResource][] =>
  rules.filter(([, rule]) =>
    asList(at(rule.Properties, 'Targets')).some((target) =>
      getAttTargets(at(target, 'Arn')).includes(functionId),
    ),
  );

describe('the packaged CloudFormation template', () => {
  let workDir: string | undefined;
  const stacks = new Map<string, PackagedStack>();

  beforeAll(async () => {
    workDir = mkdtempSync(path.join(os.tmpdir(), 'ami-pipeline-template-'));
    const home = path.join(workDir, 'home');
    mkdirSync(home);
    // One stage after the other: serverless-esbuild bundles in the repo's .esbuild folder, which two
    // concurrent runs would share.
    for (const stage of STAGES) {
      stacks.set(stage, await PackagedStack.package(stage, path.join(workDir, stage), home));
    }
  }, 180_000);

  afterAll(() => {
    if (workDir !== undefined) rmSync(workDir, { recursive: true, force: true });
  });

  describe.each(STAGES)('of the %s stage', (stage) => {
    let stack: PackagedStack;

    beforeAll(() => {
      const packaged = stacks.get(stage);
      if (packaged === undefined) throw new Error(`the ${stage} stage was not packaged`);
      stack = packaged;
    });

    const roleStatements = (roleId: string): JsonObject[] =>
      policyStatements(stack.resource(roleId, 'AWS::IAM::Role'));

    describe('encryption key', () => {
      it('is a customer-managed key with rotation, aliased alias/ami-pipeline-<stage>', () => {
        const key = stack.properties('PipelineKey', 'AWS::KMS::Key');
        const aliases = stack.resourcesOfType('AWS::KMS::Alias').map(([, alias]) => alias.Properties);

        expect(key.EnableKeyRotation).toBe(true);
        expect(key.PendingWindowInDays).toBe(stack.config.kms.pendingWindowDays);
        expect(aliases).toContainEqual({
          AliasName: `alias/ami-pipeline-${stage}`,
          TargetKeyId: { Ref: 'PipelineKey' },
        });
      });
    });

    describe('buckets', () => {
      it('encrypts every bucket, the deployment bucket included, with the stage key and bucket keys', () => {
        const buckets = stack.resourcesOfType('AWS::S3::Bucket');

        expect(ids(buckets)).toEqual(
          expect.arrayContaining([...PIPELINE_BUCKETS, 'ServerlessDeploymentBucket']),
        );
        expect(byId(buckets, (bucket) => at(bucket.Properties, 'BucketEncryption'))).toEqual(
          sameForAll(ids(buckets), {
            ServerSideEncryptionConfiguration: [
              {
                ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: STAGE_KEY_ARN },
                BucketKeyEnabled: true,
              },
            ],
          }),
        );
      });

      it('blocks every kind of public access on every bucket', () => {
        const buckets = stack.resourcesOfType('AWS::S3::Bucket');

        expect(byId(buckets, (bucket) => at(bucket.Properties, 'PublicAccessBlockConfiguration'))).toEqual(
          sameForAll(ids(buckets), {
            BlockPublicAcls: true,
            BlockPublicPolicy: true,
            IgnorePublicAcls: true,
            RestrictPublicBuckets: true,
          }),
        );
      });

      it('versions the artifacts, reports and logs buckets', () => {
        const versioning = PIPELINE_BUCKETS.map((id): [string, Json | undefined] => [
          id,
          at(stack.properties(id, 'AWS::S3::Bucket'), 'VersioningConfiguration'),
        ]);

        expect(byId(versioning, (config) => config)).toEqual(
          sameForAll(PIPELINE_BUCKETS, { Status: 'Enabled' }),
        );
      });

      it('gives every bucket a policy that denies any request made without TLS, to the bucket and its objects', () => {
        const buckets = stack.resourcesOfType('AWS::S3::Bucket');
        const policies = stack
          .resourcesOfType('AWS::S3::BucketPolicy')
          .map(([, policy]) => policy.Properties);
        const tlsDenial = (bucketId: string) => {
          const statements = policies
            .filter((policy) => JSON.stringify(at(policy, 'Bucket')) === JSON.stringify({ Ref: bucketId }))
            .flatMap((policy) => asList(at(policy, 'PolicyDocument', 'Statement')))
            .filter(isObject)
            .filter(
              (statement) =>
                statement.Effect === 'Deny' &&
                ['*', JSON.stringify({ AWS: '*' })].includes(
                  typeof statement.Principal === 'string'
                    ? statement.Principal
                    : JSON.stringify(statement.Principal),
                ) &&
                asList(statement.Action).includes('s3:*') &&
                // CloudFormation accepts the boolean and the string; the framework writes the former.
                String(at(statement, 'Condition', 'Bool', 'aws:SecureTransport')) === 'false',
            );
          const resources = statements.flatMap((statement) => asList(statement.Resource).map(renderArn));
          const bucketArns = [`\${${bucketId}.Arn}`, `arn:\${AWS::Partition}:s3:::\${${bucketId}}`];
          return {
            bucket: bucketArns.some((arn) => resources.includes(arn)),
            objects: bucketArns.some((arn) => resources.includes(`${arn}/*`)),
          };
        };

        expect(byId(buckets, (_bucket, id) => tlsDenial(id))).toEqual(
          sameForAll(ids(buckets), { bucket: true, objects: true }),
        );
      });
    });

    describe('messaging', () => {
      it('encrypts every topic and queue with the stage key', () => {
        const topicsAndQueues = [
          ...stack.resourcesOfType('AWS::SNS::Topic'),
          ...stack.resourcesOfType('AWS::SQS::Queue'),
        ];

        expect(ids(topicsAndQueues)).toEqual(
          expect.arrayContaining([
            'TriggerTopic',
            'OutcomeTopic',
            'RejectionsQueue',
            'TriggerDeadLetterQueue',
          ]),
        );
        expect(byId(topicsAndQueues, (resource) => at(resource.Properties, 'KmsMasterKeyId'))).toEqual(
          sameForAll(ids(topicsAndQueues), STAGE_KEY_ARN),
        );
      });
    });

    describe('tables', () => {
      it('encrypts every table with the stage key', () => {
        const tables = stack.resourcesOfType('AWS::DynamoDB::Table');

        expect(ids(tables)).toEqual(
          expect.arrayContaining(['AuditTable', 'CoordinationTable', 'TerraformLockTable']),
        );
        expect(byId(tables, (table) => at(table.Properties, 'SSESpecification'))).toEqual(
          sameForAll(ids(tables), { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: STAGE_KEY_ARN }),
        );
      });

      it('keeps the audit table recoverable and undeletable, and queryable by resource and by environment', () => {
        const audit = stack.properties('AuditTable', 'AWS::DynamoDB::Table');
        const indexes = Object.fromEntries(
          asList(audit.GlobalSecondaryIndexes).map((index) => [
            String(at(index, 'IndexName')),
            at(index, 'KeySchema'),
          ]),
        );

        expect(audit.TableName).toBe(`ami-pipeline-${stage}-audit`);
        expect(audit.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
        expect(audit.DeletionProtectionEnabled).toBe(true);
        expect(indexes).toMatchObject({
          byResource: [
            { AttributeName: 'gsi1pk', KeyType: 'HASH' },
            { AttributeName: 'gsi1sk', KeyType: 'RANGE' },
          ],
          byEnvironment: [
            { AttributeName: 'gsi2pk', KeyType: 'HASH' },
            { AttributeName: 'gsi2sk', KeyType: 'RANGE' },
          ],
        });
        expect(audit.AttributeDefinitions).toEqual(
          expect.arrayContaining(
            ['gsi1pk', 'gsi1sk', 'gsi2pk', 'gsi2sk'].map((name) => ({
              AttributeName: name,
              AttributeType: 'S',
            })),
          ),
        );
      });

      it('expires coordination items by their expiresAt attribute', () => {
        const coordination = stack.properties('CoordinationTable', 'AWS::DynamoDB::Table');

        expect(coordination.TableName).toBe(`ami-pipeline-${stage}-coordination`);
        expect(coordination.TimeToLiveSpecification).toEqual({ AttributeName: 'expiresAt', Enabled: true });
      });

      it('indexes waiting tasks in the `pending` index the reconciler queries, with whole items', () => {
        const coordination = stack.properties('CoordinationTable', 'AWS::DynamoDB::Table');
        const pending = asList(coordination.GlobalSecondaryIndexes).filter(
          (index) => at(index, 'IndexName') === PENDING_INDEX,
        );

        expect(PENDING_INDEX).toBe('pending');
        // The reconciler reads the task token, command id and execution from the index items.
        expect(pending).toEqual([
          {
            IndexName: 'pending',
            KeySchema: [
              { AttributeName: 'pendingPk', KeyType: 'HASH' },
              { AttributeName: 'pendingSk', KeyType: 'RANGE' },
            ],
            Projection: { ProjectionType: 'ALL' },
          },
        ]);
        expect(coordination.AttributeDefinitions).toEqual(
          expect.arrayContaining(
            ['pendingPk', 'pendingSk'].map((name) => ({ AttributeName: name, AttributeType: 'S' })),
          ),
        );
      });

      it("gives Terraform's S3 backend a LockID-keyed lock table, encrypted with the stage key, and tells provision its name", () => {
        const lock = stack.properties('TerraformLockTable', 'AWS::DynamoDB::Table');
        const provisionEnv = at(
          stack.properties('ProvisionLambdaFunction', 'AWS::Lambda::Function'),
          'Environment',
          'Variables',
        );

        expect(lock.TableName).toBe(`ami-pipeline-${stage}-tflock`);
        expect(lock.KeySchema).toEqual([{ AttributeName: 'LockID', KeyType: 'HASH' }]);
        expect(lock.AttributeDefinitions).toEqual([{ AttributeName: 'LockID', AttributeType: 'S' }]);
        expect(lock.SSESpecification).toEqual({
          SSEEnabled: true,
          SSEType: 'KMS',
          KMSMasterKeyId: STAGE_KEY_ARN,
        });
        expect(at(provisionEnv, 'TF_LOCK_TABLE')).toEqual({ Ref: 'TerraformLockTable' });
      });
    });

    describe('log groups', () => {
      it("encrypts every log group with the stage key and keeps it for the stage's logRetentionDays", () => {
        const logGroups = stack.resourcesOfType('AWS::Logs::LogGroup');
        const functionLogGroups = FUNCTIONS.map((fn) => `${capitalized(fn)}LogGroup`);

        // One per function, the state machines' (both log to one), the SSM commands' and Firehose's delivery errors:
        // nothing unencrypted hides in between.
        expect(ids(logGroups).sort()).toEqual(
          [...functionLogGroups, 'StateMachineLogGroup', 'CommandLogGroup', 'LogsDeliveryLogGroup'].sort(),
        );
        expect(
          byId(logGroups, (group) => ({
            KmsKeyId: at(group.Properties, 'KmsKeyId'),
            RetentionInDays: at(group.Properties, 'RetentionInDays'),
          })),
        ).toEqual(
          sameForAll(ids(logGroups), {
            KmsKeyId: STAGE_KEY_ARN,
            RetentionInDays: stack.config.logRetentionDays,
          }),
        );
      });

      it('streams SSM command output to /ami-pipeline/<stage>/commands and points every token worker there', () => {
        const commandLogs = stack.properties('CommandLogGroup', 'AWS::Logs::LogGroup');
        const workers = COMMAND_STEPS.map((step): [string, Json | undefined] => [
          step,
          at(
            stack.properties(`${capitalized(step)}LambdaFunction`, 'AWS::Lambda::Function'),
            'Environment',
            'Variables',
            'COMMAND_LOG_GROUP',
          ),
        ]);

        expect(commandLogs).toEqual({
          LogGroupName: `/ami-pipeline/${stage}/commands`,
          RetentionInDays: stack.config.logRetentionDays,
          KmsKeyId: STAGE_KEY_ARN,
        });
        expect(byId(workers, (logGroup) => logGroup)).toEqual(
          sameForAll([...COMMAND_STEPS], { Ref: 'CommandLogGroup' }),
        );
      });
    });

    describe('state machine', () => {
      const stateMachine = () =>
        stack.properties('AmiPipelineStateMachine', 'AWS::StepFunctions::StateMachine');

      it("is named ami-pipeline-<stage>, logs at the stage's level to the encrypted log group and is traced", () => {
        const props = stateMachine();

        expect(props.StateMachineName).toBe(`ami-pipeline-${stage}`);
        expect(props.LoggingConfiguration).toEqual({
          Level: stack.config.stateMachine.logLevel,
          IncludeExecutionData: false,
          Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: getAttArn('StateMachineLogGroup') } }],
        });
        expect(stack.properties('StateMachineLogGroup', 'AWS::Logs::LogGroup').KmsKeyId).toEqual(
          STAGE_KEY_ARN,
        );
        expect(props.TracingConfiguration).toEqual({ Enabled: true });
      });

      const definitionOf = () => parseDefinition(stateMachine());

      /** A top-level state of the definition; throws when it is missing, so a rename fails loudly. */
      const stateNamed = (definition: JsonObject, name: string): JsonObject => {
        const state = at(definition, 'States', name);
        if (!isObject(state)) throw new Error(`the ${stage} definition has no state ${name}`);
        return state;
      };

      it('has a definition that parses and in which every Task, nested ones too, is caught by a States.ALL catcher last', () => {
        const { definition } = definitionOf();
        const tasks = statesWithin(definition).filter(({ state }) => state.Type === 'Task');
        // A task in a Map's item processor fails the Map, whose own Catch then applies.
        const uncaught = tasks
          .filter(
            ({ state, enclosing }) => !catchesAll(state) && !enclosing.some(([, outer]) => catchesAll(outer)),
          )
          .map(({ name, enclosing }) => [...enclosing.map(([outer]) => outer), name].join('/'));

        expect(Object.keys(at(definition, 'States') ?? {})).toContain(definition.StartAt);
        expect(tasks.map(({ name }) => name)).toEqual(
          expect.arrayContaining([
            'AcquireLock',
            'PreProvision',
            ...TOKEN_STATES.map(([state]) => state),
            'SmokeTest',
            'PrepareTraffic',
            'ShiftStep',
            'CheckStep',
            'ExportLogs',
            'RecordRelease',
          ]),
        );
        expect(uncaught).toEqual([]);
      });

      it('waits on a task token in Bake, Provision, Validate, DestroyGreenStack and AwaitApproval, and nowhere else', () => {
        const { definition } = definitionOf();
        const callbacks = allStates(definition).filter(([, state]) =>
          String(state.Resource).endsWith('.waitForTaskToken'),
        );

        // AwaitApproval waits for a person, not a command (describeApprovalGate checks it).
        expect(ids(callbacks).sort()).toEqual(
          [...TOKEN_STATES.map(([state]) => state), 'AwaitApproval'].sort(),
        );
      });

      it.each(TOKEN_STATES)(
        'invokes the worker of %s with its task token, times out after commands.%s.timeoutSeconds and fails without a heartbeat',
        (name, step, fn) => {
          const { definition, variables } = definitionOf();
          const state = stateNamed(definition, name);
          const { commands } = stack.config;

          expect({
            Resource: state.Resource,
            function: functionOf(state, variables),
            taskToken: at(state, 'Parameters', 'Payload', 'taskToken.$'),
            // The worker gives the SSM command less than this, so the command ends and reports first.
            payloadTimeoutSeconds: at(state, 'Parameters', 'Payload', 'timeoutSeconds'),
            TimeoutSeconds: state.TimeoutSeconds,
            HeartbeatSeconds: state.HeartbeatSeconds,
          }).toEqual({
            Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
            function: fn,
            taskToken: '$$.Task.Token',
            payloadTimeoutSeconds: commands[step].timeoutSeconds,
            TimeoutSeconds: commands[step].timeoutSeconds,
            HeartbeatSeconds: commands.heartbeatSeconds,
          });
        },
      );

      it('runs provision to apply the release in Provision and to destroy it in DestroyGreenStack', () => {
        const { definition } = definitionOf();

        expect(at(stateNamed(definition, 'Provision'), 'Parameters', 'Payload', 'mode')).toBe('apply');
        expect(at(stateNamed(definition, 'DestroyGreenStack'), 'Parameters', 'Payload', 'mode')).toBe(
          'destroy',
        );
      });

      it('retries every Lambda task of both machines on transient errors, with backoff and full jitter', () => {
        const decommission = stack.properties('DecommissionStateMachine', 'AWS::StepFunctions::StateMachine');
        const lambdaTasks = [definitionOf(), parseDefinition(decommission)].flatMap(({ definition }) =>
          statesWithin(definition).filter(
            ({ state }) =>
              state.Type === 'Task' && String(state.Resource).startsWith('arn:aws:states:::lambda:'),
          ),
        );
        const transientRetrier = ({ state }: { state: JsonObject }) =>
          asList(state.Retry).find((retrier) =>
            TRANSIENT_ERRORS.every((error) => asList(at(retrier, 'ErrorEquals')).includes(error)),
          );

        expect(lambdaTasks.length).toBeGreaterThan(10);
        expect(lambdaTasks.filter((task) => !transientRetrier(task)).map(({ name }) => name)).toEqual([]);
        expect(
          lambdaTasks.filter((task) => {
            const retrier = transientRetrier(task);
            return !(
              Number(at(retrier, 'IntervalSeconds')) >= 1 &&
              Number(at(retrier, 'BackoffRate')) >= 2 &&
              Number(at(retrier, 'MaxAttempts')) >= 3 &&
              at(retrier, 'JitterStrategy') === 'FULL'
            );
          }),
        ).toEqual([]);
      });

      it("retries a token state on transient errors (the Lambda service's, AWS's), never on the command's failure or a timeout", () => {
        const { definition } = definitionOf();
        const retried = TOKEN_STATES.map(([name]): [string, string[]] => [
          name,
          asList(stateNamed(definition, name).Retry).flatMap((retrier) =>
            asList(at(retrier, 'ErrorEquals')).map(String),
          ),
        ]);
        // A task failure sent for the command (BakeFailedError, …) also meets the Retry: retrying it
        // would bake again. States.ALL and States.TaskFailed cover it, the Timeouts would restart a stage.
        const failureNames = new Set<string>(Object.values(FAILURE_ERRORS));
        const mustNotRetry = (error: string) =>
          error.startsWith('States.') || error.endsWith('FailedError') || failureNames.has(error);

        expect(
          byId(retried, (errors) => TRANSIENT_ERRORS.filter((error) => !errors.includes(error))),
        ).toEqual(sameForAll(ids(retried), []));
        // Nothing else the worker throws. A retry after SendCommand adopts the earlier attempt's
        // command (shared/commands/launch.ts), so a transient error is safe to retry.
        expect(
          byId(retried, (errors) => errors.filter((error) => !TRANSIENT_ERRORS.includes(error))),
        ).toEqual(sameForAll(ids(retried), []));
        expect(byId(retried, (errors) => errors.filter(mustNotRetry))).toEqual(sameForAll(ids(retried), []));
      });

      it('sends every stage failure through Compensate, from the token and release stages too', () => {
        const { definition } = definitionOf();
        const compensation = reachableFrom(definition, 'Compensate');
        // Pass states named *Failed outside the compensation branch mark which stage failed.
        const markers = allStates(definition).filter(
          ([name, state]) => state.Type === 'Pass' && name.endsWith('Failed') && !compensation.has(name),
        );
        const stageCatchAll = [
          'Bake',
          'Distribute',
          'DistributeToRegions',
          'Provision',
          'Validate',
          'AwaitApproval',
          'VerifyApproval',
          'SmokeTest',
          'PrepareTraffic',
          'ShiftTraffic',
          'ExportLogs',
          'PublishAmiIds',
          'RecordRelease',
        ].map((name): [string, Json | undefined] => [
          name,
          at(asList(stateNamed(definition, name).Catch).at(-1), 'Next'),
        ]);
        // A catch may first close what its stage left open (ExpireApproval) on the way to its marker.
        const markerOf = (name: string): string => {
          const state = stateNamed(definition, name);
          return state.Type === 'Task' && !name.endsWith('Failed') ? markerOf(String(state.Next)) : name;
        };

        expect(ids(markers)).toEqual(
          expect.arrayContaining([
            'BakeFailed',
            'DistributeFailed',
            'ProvisionFailed',
            'ValidateFailed',
            'ApprovalFailed',
            'SmokeTestFailed',
            'TrafficFailed',
            'ExportLogsFailed',
            'PublishAmiIdsFailed',
            'RecordReleaseFailed',
          ]),
        );
        expect(byId(markers, (state) => state.Next)).toEqual(sameForAll(ids(markers), 'Compensate'));
        expect(
          byId(stageCatchAll, (marker) => at(stateNamed(definition, markerOf(String(marker))), 'Next')),
        ).toEqual(sameForAll(ids(stageCatchAll), 'Compensate'));
      });

      it('copies to each other region in a bounded Map whose every item ends before a failed region is compensated', () => {
        const { definition } = definitionOf();
        const map = stateNamed(definition, 'DistributeToRegions');
        const copy = at(map, 'ItemProcessor', 'States', 'CopyToRegion') as JsonObject;
        const keep = at(map, 'ItemProcessor', 'States', 'KeepCopyFailure') as JsonObject;

        expect(at(stateNamed(definition, 'Distribute'), 'Next')).toBe('DistributeToRegions');
        expect({
          type: map.Type,
          items: map.ItemsPath,
          maxConcurrency: map.MaxConcurrency,
          catchAll: at(asList(map.Catch).at(-1), 'Next'),
        }).toEqual({
          type: 'Map',
          items: '$.stages.distribute.copies',
          maxConcurrency: stack.config.distribution.maxConcurrentCopies,
          catchAll: 'DistributeFailed',
        });
        // The worker waits with the EC2 waiter; a copy still pending is adopted again a bounded
        // number of times, and any failure is kept as the item's result instead of ending the Map.
        expect(asList(copy.Retry)).toContainEqual(
          expect.objectContaining({
            ErrorEquals: ['CopyPendingError'],
            MaxAttempts: stack.config.distribution.copyRetries,
          }),
        );
        expect(at(copy, 'Resource')).toBe('arn:aws:states:::lambda:invoke');
        expect(asList(copy.Catch).map((c) => [at(c, 'ErrorEquals'), at(c, 'Next')])).toEqual([
          [['States.ALL'], 'KeepCopyFailure'],
        ]);
        expect(at(keep, 'Parameters', 'failed')).toBe(true);
        expect(at(copy, 'ResultSelector', 'failed')).toBe(false);
        // A failed item sends the run to compensation through the Distribute marker.
        expect(at(stateNamed(definition, 'CopyFailureCause'), 'Next')).toBe('DistributeFailed');
        expect(successPath(definition, 1)).toEqual(
          expect.arrayContaining(['DistributeToRegions', 'PublishAmiIds']),
        );
      });

      it('gives every Lambda task more time than its function: a state never times out while its worker still runs', () => {
        const { definition, variables } = definitionOf();
        const tooShort = allStates(definition)
          .filter(([, state]) => state.Resource === 'arn:aws:states:::lambda:invoke')
          .flatMap(([name, state]) => {
            const fn = functionOf(state, variables);
            const timeout = fn ? at(stack.template.Resources[fn]?.Properties, 'Timeout') : undefined;
            if (typeof timeout !== 'number') return [`${name}: no function timeout found (${String(fn)})`];
            return Number(state.TimeoutSeconds) > timeout
              ? []
              : [`${name}: TimeoutSeconds ${String(state.TimeoutSeconds)} ≤ ${fn} timeout ${timeout}`];
          });

        // (Compensation would otherwise run beside a copy or a publish that is still writing.)
        expect(tooShort).toEqual([]);
      });

      it('publishes the AMI ids after the traffic switch and before the release goes live, compensating a failure', () => {
        const { definition } = definitionOf();
        const publish = stateNamed(definition, 'PublishAmiIds');

        expect(at(stateNamed(definition, 'ExportLogs'), 'Next')).toBe('PublishAmiIds');
        expect(publish.Next).toBe('RecordRelease');
        expect(at(publish, 'Parameters', 'Payload', 'action')).toBe('publish');
        expect(at(asList(publish.Catch).at(-1), 'Next')).toBe('PublishAmiIdsFailed');
      });

      it('records the failure after compensation whatever happens in it, a crash of Compensate included', () => {
        const { definition } = definitionOf();
        const compensateCatches = asList(stateNamed(definition, 'Compensate').Catch).map((catcher) =>
          String(at(catcher, 'Next')),
        );
        const afterRecord = reachableFrom(definition, 'RecordFailure');
        // Every state between Compensate and RecordFailure still leads to RecordFailure.
        const beforeRecord = [...reachableFrom(definition, 'Compensate')].filter(
          (name) => !afterRecord.has(name),
        );

        expect(compensateCatches).not.toEqual([]);
        expect(
          Object.fromEntries(
            compensateCatches.map((name) => [name, reachableFrom(definition, name).has('RecordFailure')]),
          ),
        ).toEqual(Object.fromEntries(compensateCatches.map((name) => [name, true])));
        expect(
          Object.fromEntries(
            beforeRecord.map((name) => [name, reachableFrom(definition, name).has('RecordFailure')]),
          ),
        ).toEqual(Object.fromEntries(beforeRecord.map((name) => [name, true])));
        expect(beforeRecord).toEqual(
          expect.arrayContaining(['Compensate', 'DestroyGreenStack', 'StackDestroyFailed']),
        );
      });

      it('waits only in the soak of each traffic step and has no loop: long stages wait on a token instead of polling', () => {
        const { definition } = definitionOf();
        const waits = statesWithin(definition)
          .filter(({ state }) => state.Type === 'Wait')
          .map(({ name, enclosing }) => [...enclosing.map(([outer]) => outer), name].join('/'));

        // The soak runs once per traffic step (bounded by the plan), never to poll for a result.
        expect(waits).toEqual(['ShiftTraffic/Soak']);
        expect(findCycle(definition)).toBeUndefined();
        expect(nestedDefinitions(definition).map((nested) => findCycle(nested) ?? 'no loop')).toEqual(
          nestedDefinitions(definition).map(() => 'no loop'),
        );
      });

      it('shifts traffic one step at a time over the prepared steps: shift, soak for the plan, check', () => {
        const { definition, variables } = definitionOf();
        const shift = stateNamed(definition, 'ShiftTraffic');
        const processor = at(shift, 'ItemProcessor');
        const step = (name: string) => at(processor, 'States', name);

        expect({
          Type: shift.Type,
          ItemsPath: shift.ItemsPath,
          MaxConcurrency: shift.MaxConcurrency,
          plan: at(shift, 'ItemSelector', 'plan.$'),
        }).toEqual({
          Type: 'Map',
          ItemsPath: '$.stages.traffic.steps',
          MaxConcurrency: 1,
          plan: '$.stages.traffic',
        });
        // PrepareTraffic writes the plan (steps and soak) the Map iterates over.
        expect(at(stateNamed(definition, 'PrepareTraffic'), 'ResultPath')).toBe('$.stages.traffic');
        expect({
          StartAt: at(processor, 'StartAt'),
          ShiftStep: [at(step('ShiftStep'), 'Type'), at(step('ShiftStep'), 'Next')],
          Soak: [at(step('Soak'), 'Type'), at(step('Soak'), 'SecondsPath'), at(step('Soak'), 'Next')],
          CheckStep: [at(step('CheckStep'), 'Type'), at(step('CheckStep'), 'End')],
        }).toEqual({
          StartAt: 'ShiftStep',
          ShiftStep: ['Task', 'Soak'],
          Soak: ['Wait', '$.plan.soakSeconds', 'CheckStep'],
          CheckStep: ['Task', true],
        });
        expect(
          ['ShiftStep', 'CheckStep'].map((name) => {
            const task = step(name);
            return isObject(task) ? functionOf(task, variables) : 'missing';
          }),
        ).toEqual(['TrafficLambdaFunction', 'TrafficLambdaFunction']);
        expect(at(asList(shift.Catch).at(-1), 'ErrorEquals')).toEqual(['States.ALL']);
        expect(at(asList(shift.Catch).at(-1), 'Next')).toBe('TrafficFailed');
        expect(at(stateNamed(definition, 'TrafficFailed'), 'Next')).toBe('Compensate');
      });

      it(`stays within ${TRANSITION_BUDGET} state transitions on the success path with a ${BUDGETED_TRAFFIC_STEPS}-step traffic shift`, () => {
        const { definition } = definitionOf();
        const path = successPath(definition, BUDGETED_TRAFFIC_STEPS);
        const topLevel = path.filter((name) => !name.includes('/'));
        const release = [
          'Validate',
          'SmokeTest',
          'PrepareTraffic',
          'ShiftTraffic',
          'ExportLogs',
          'RecordRelease',
          'ReleaseLock',
        ];

        expect(path.at(-1)).toBe('Succeeded');
        expect(topLevel.filter((name) => release.includes(name))).toEqual(release);
        expect(path.filter((name) => name.startsWith('ShiftTraffic/'))).toEqual(
          Array.from({ length: BUDGETED_TRAFFIC_STEPS }, () => [
            'ShiftTraffic/ShiftStep',
            'ShiftTraffic/Soak',
            'ShiftTraffic/CheckStep',
          ]).flat(),
        );
        expect(path.length).toBeLessThanOrEqual(TRANSITION_BUDGET);
      });

      it('may invoke exactly the functions its definition calls', () => {
        const { definition, variables } = definitionOf();
        const called = allStates(definition).flatMap(([, state]) => {
          const fn = state.Type === 'Task' ? functionOf(state, variables) : undefined;
          return fn === undefined ? [] : [fn];
        });
        const invocable = getAttTargets(
          resourcesGranted(roleStatements('AmiPipelineStateMachineRole'), 'lambda:InvokeFunction'),
        );

        expect([...new Set(invocable)].sort()).toEqual([...new Set(called)].sort());
        expect(called).toEqual(
          expect.arrayContaining([
            'SmokeTestLambdaFunction',
            'TrafficLambdaFunction',
            'LogExportLambdaFunction',
            'RecordReleaseLambdaFunction',
          ]),
        );
        expect(called).not.toContain('CommandCompletedLambdaFunction');
      });
    });

    describe('decommission state machine', () => {
      const decommissionMachine = () =>
        stack.properties('DecommissionStateMachine', 'AWS::StepFunctions::StateMachine');
      const definitionOf = () => parseDefinition(decommissionMachine());
      const stateNamed = (definition: JsonObject, name: string): JsonObject => {
        const state = at(definition, 'States', name);
        if (!isObject(state)) throw new Error(`the ${stage} decommission definition has no state ${name}`);
        return state;
      };
      /** The decommission machine's ARN with stand-ins for the region and account. */
      const decommissionArn = () =>
        `arn:aws:states:eu-west-1:123456789012:stateMachine:ami-pipeline-${stage}-decommission`;

      it("is named ami-pipeline-<stage>-decommission, logs at the stage's level to the encrypted log group, is traced and has a role of its own", () => {
        const props = decommissionMachine();

        expect(props.StateMachineName).toBe(`ami-pipeline-${stage}-decommission`);
        expect(props.StateMachineType).toBe('STANDARD');
        expect(props.LoggingConfiguration).toEqual({
          Level: stack.config.stateMachine.logLevel,
          IncludeExecutionData: false,
          Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: getAttArn('StateMachineLogGroup') } }],
        });
        expect(props.TracingConfiguration).toEqual({ Enabled: true });
        expect(props.RoleArn).toEqual(getAttArn('DecommissionStateMachineRole'));
        expect(stack.template.Outputs?.DecommissionStateMachineArn).toEqual(
          expect.objectContaining({ Value: { Ref: 'DecommissionStateMachine' } }),
        );
      });

      it('waits for the retention once, in WaitForRetention until $.decommissionAt, and nowhere else', () => {
        const { definition } = definitionOf();
        const waits = statesWithin(definition)
          .filter(({ state }) => state.Type === 'Wait')
          .map(({ name, enclosing }) => [...enclosing.map(([outer]) => outer), name].join('/'));

        expect(definition.StartAt).toBe('WaitForRetention');
        expect(waits).toEqual(['WaitForRetention']);
        // Only the timestamp the starter computed: no fixed Seconds that would ignore the stage's retention.
        const wait = stateNamed(definition, 'WaitForRetention');
        expect({
          Type: wait.Type,
          TimestampPath: wait.TimestampPath,
          Seconds: wait.Seconds,
          SecondsPath: wait.SecondsPath,
          Timestamp: wait.Timestamp,
          Next: wait.Next,
        }).toEqual({
          Type: 'Wait',
          TimestampPath: '$.decommissionAt',
          Seconds: undefined,
          SecondsPath: undefined,
          Timestamp: undefined,
          Next: 'DestroyStack',
        });
      });

      it('destroys the stack in DestroyStack through provision, on a task token with the provision timeouts, retrying only Lambda service errors', () => {
        const { definition, variables } = definitionOf();
        const state = stateNamed(definition, 'DestroyStack');
        const { commands } = stack.config;
        const callbacks = allStates(definition).filter(([, task]) =>
          String(task.Resource).endsWith('.waitForTaskToken'),
        );

        expect(ids(callbacks)).toEqual(['DestroyStack']);
        expect({
          Resource: state.Resource,
          function: functionOf(state, variables),
          taskToken: at(state, 'Parameters', 'Payload', 'taskToken.$'),
          mode: at(state, 'Parameters', 'Payload', 'mode'),
          payloadTimeoutSeconds: at(state, 'Parameters', 'Payload', 'timeoutSeconds'),
          TimeoutSeconds: state.TimeoutSeconds,
          HeartbeatSeconds: state.HeartbeatSeconds,
          Next: state.Next,
        }).toEqual({
          Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
          function: 'ProvisionLambdaFunction',
          taskToken: '$$.Task.Token',
          mode: 'destroy',
          payloadTimeoutSeconds: commands.provision.timeoutSeconds,
          TimeoutSeconds: commands.provision.timeoutSeconds,
          HeartbeatSeconds: commands.heartbeatSeconds,
          Next: 'RetireRelease',
        });
        // Transient errors only: a retry after SendCommand adopts the running destroy, never sends a second.
        expect([...retriedErrors(state)].sort()).toEqual([...TRANSIENT_ERRORS].sort());
      });

      it('catches every Task with States.ALL last, alerting on the outcome topic before it fails', () => {
        const { definition } = definitionOf();
        const tasks = statesWithin(definition).filter(({ state }) => state.Type === 'Task');
        const alert = stateNamed(definition, 'AlertDecommissionFailed');

        expect(tasks.map(({ name }) => name).sort()).toEqual(
          ['AlertDecommissionFailed', 'DestroyStack', 'RetireRelease'].sort(),
        );
        expect(tasks.filter(({ state }) => !catchesAll(state)).map(({ name }) => name)).toEqual([]);
        expect(
          ['DestroyStack', 'RetireRelease'].map((name) =>
            at(asList(stateNamed(definition, name).Catch).at(-1), 'Next'),
          ),
        ).toEqual(['AlertDecommissionFailed', 'AlertDecommissionFailed']);
        expect({
          Resource: alert.Resource,
          TopicArn: renderArn(substituted(at(alert, 'Parameters', 'TopicArn'), definitionOf().variables)),
          Next: alert.Next,
          catchNext: at(asList(alert.Catch).at(-1), 'Next'),
        }).toEqual({
          Resource: 'arn:aws:states:::sns:publish',
          TopicArn: '${OutcomeTopic}',
          Next: 'DecommissionFailed',
          catchNext: 'DecommissionFailed',
        });
        expect(stateNamed(definition, 'DecommissionFailed').Type).toBe('Fail');
      });

      it('has no loop and succeeds straight through wait, destroy and retire', () => {
        const { definition, variables } = definitionOf();

        expect(findCycle(definition)).toBeUndefined();
        expect(nestedDefinitions(definition)).toEqual([]);
        expect(successPath(definition, 0)).toEqual([
          'WaitForRetention',
          'DestroyStack',
          'RetireRelease',
          'Decommissioned',
        ]);
        expect(functionOf(stateNamed(definition, 'RetireRelease'), variables)).toBe(
          'DecommissionLambdaFunction',
        );
        expect(stateNamed(definition, 'Decommissioned').Type).toBe('Succeed');
      });

      it('may invoke exactly provision and decommission, publish only to the outcome topic, and use the stage key for it', () => {
        const { definition, variables } = definitionOf();
        const statements = roleStatements('DecommissionStateMachineRole');
        const called = allStates(definition).flatMap(([, state]) => {
          const fn = state.Type === 'Task' ? functionOf(state, variables) : undefined;
          return fn === undefined ? [] : [fn];
        });
        const invocable = getAttTargets(resourcesGranted(statements, 'lambda:InvokeFunction'));

        expect([...new Set(invocable)].sort()).toEqual([
          'DecommissionLambdaFunction',
          'ProvisionLambdaFunction',
        ]);
        expect([...new Set(called)].sort()).toEqual([
          'DecommissionLambdaFunction',
          'ProvisionLambdaFunction',
        ]);
        // Besides invoking and the framework's log-delivery and X-Ray statements: the encrypted topic.
        expect(grantLines(statements, ['lambda', ...FRAMEWORK_SERVICES])).toEqual(
          [
            ...grant(['sns:Publish'], ['${OutcomeTopic}']),
            ...grant(['kms:GenerateDataKey', 'kms:Decrypt'], ['${PipelineKey.Arn}']),
          ].sort(),
        );
      });

      it('may be started by record-release only, not by the main state machine or any other role', () => {
        const policies = IAM_POLICY_TYPES.flatMap((type) => stack.resourcesOfType(type));
        const starters = policies
          .filter(([, policy]) =>
            policyStatements(policy).some(
              (statement) =>
                statement.Effect === 'Allow' &&
                asList(statement.Action).some((action) =>
                  actionMatches(String(action), 'states:StartExecution'),
                ) &&
                asList(statement.Resource).some((resource) =>
                  resourceCovers(resource, 'DecommissionStateMachine', decommissionArn()),
                ),
            ),
          )
          .map(([id]) => id);

        expect(starters).toEqual([roleOf('recordRelease')]);
        expect(allows(roleStatements('AmiPipelineStateMachineRole'), 'states:StartExecution')).toBe(false);
      });
    });

    it('points every Ref, Fn::GetAtt, Fn::Sub variable and DependsOn at something the template declares', () => {
      expect(danglingReferences(stack.template)).toEqual([]);
    });

    describe('IAM', () => {
      it('allows no wildcard action, no NotAction, and Resource "*" only for actions that have no resource ARN', () => {
        const policies = IAM_POLICY_TYPES.flatMap((type) => stack.resourcesOfType(type));

        expect(ids(policies)).toEqual(
          expect.arrayContaining([
            ...ROLE_LOGICAL_IDS,
            'AmiPipelineStateMachineRole',
            'DecommissionStateMachineRole',
          ]),
        );
        expect(
          policies.flatMap(([id, policy]) =>
            iamViolations(id, policyStatements(policy), RESOURCE_STAR_ACTIONS),
          ),
        ).toEqual([]);
      });

      it('lets only the token workers send commands, only the completers and the approval gate answer tokens, only distribute, compensate and decommission remove AMIs, and only traffic and compensate change listeners', () => {
        const policies = IAM_POLICY_TYPES.flatMap((type) => stack.resourcesOfType(type));
        const holders = (action: string) =>
          ids(policies.filter(([, policy]) => allows(policyStatements(policy), action))).sort();
        const actions = [
          'ssm:SendCommand',
          'states:SendTaskSuccess',
          'states:SendTaskFailure',
          'ec2:DeregisterImage',
          'ec2:DeleteSnapshot',
          'elasticloadbalancing:ModifyListener',
          'logs:PutSubscriptionFilter',
          'logs:DeleteSubscriptionFilter',
          'iam:PassRole',
          'firehose:PutRecord',
          'firehose:PutRecordBatch',
        ];

        expect(Object.fromEntries(actions.map((action) => [action, holders(action)]))).toEqual({
          'ssm:SendCommand': ['bake', 'provision', 'validate'].map(roleOf).sort(),
          'states:SendTaskSuccess': ['approval', 'approvalDecide', 'commandCompleted', 'reconciler']
            .map(roleOf)
            .sort(),
          'states:SendTaskFailure': ['approval', 'approvalDecide', 'commandCompleted', 'reconciler']
            .map(roleOf)
            .sort(),
          'ec2:DeregisterImage': ['compensate', 'decommission', 'distribute'].map(roleOf).sort(),
          'ec2:DeleteSnapshot': ['compensate', 'decommission', 'distribute'].map(roleOf).sort(),
          'elasticloadbalancing:ModifyListener': ['compensate', 'traffic'].map(roleOf).sort(),
          'logs:PutSubscriptionFilter': [roleOf('logExport')],
          'logs:DeleteSubscriptionFilter': [roleOf('compensate')],
          'iam:PassRole': [roleOf('logExport')],
          'firehose:PutRecord': ['LogsSubscriptionRole'],
          'firehose:PutRecordBatch': ['LogsSubscriptionRole'],
        });
      });

      it('confines every EC2 change of every role to images and snapshots that carry this stage tag', () => {
        const policies = IAM_POLICY_TYPES.flatMap((type) => stack.resourcesOfType(type));
        // Images and snapshots of the stage's region and its distribution regions, nowhere else.
        const imageArns = distributionResources(stack.config).images.map((arn) => renderArn(arn as Json));
        // The stage tag on an existing resource, on the resource being created, or tags written as
        // part of creating it (CopyImage's TagSpecifications).
        const stageConditions = [
          { StringEquals: { 'aws:ResourceTag/ami-pipeline:stage': stage } },
          { StringEquals: { 'aws:RequestTag/ami-pipeline:stage': stage } },
          { StringEquals: { 'ec2:CreateAction': 'CopyImage' } },
        ].map((condition) => ` if ${JSON.stringify(condition)}`);
        const unconfined = policies.flatMap(([id, policy]) =>
          grantLines(policyStatements(policy))
            .filter((line) => line.startsWith('ec2:') && !line.startsWith('ec2:Describe'))
            .filter(
              (line) =>
                !imageArns.some((arn) =>
                  stageConditions.some((condition) => line.endsWith(` ${arn}${condition}`)),
                ),
            )
            .map((line) => `${id}: ${line}`),
        );

        expect(unconfined).toEqual([]);
      });

      it('keeps the audit table append-only for every function: items are put and read, never updated or deleted', () => {
        const auditTable = `\${AuditTable.Arn}`;
        const readOrAppend = ['dynamodb:PutItem', 'dynamodb:GetItem', 'dynamodb:Query'];
        const other = ROLE_LOGICAL_IDS.flatMap((roleId) =>
          grantLines(roleStatements(roleId))
            .filter((line) => line.includes(auditTable))
            .filter((line) => !readOrAppend.includes(line.split(' ')[0] ?? ''))
            .map((line) => `${roleId}: ${line}`),
        );

        expect(other).toEqual([]);
      });
    });

    describeAuditorRole(() => stack);
    describeApprovalGate(() => stack);
    describeAlarms(() => stack);

    describe('functions', () => {
      it('runs every function on nodejs22.x and arm64 with active tracing, each with a role of its own', () => {
        const functions = stack.resourcesOfType('AWS::Lambda::Function');
        const roles = functions.map(([, fn]) => JSON.stringify(at(fn.Properties, 'Role')));

        expect(ids(functions).sort()).toEqual([...FUNCTION_LOGICAL_IDS].sort());
        expect(
          byId(functions, (fn) => ({
            Runtime: at(fn.Properties, 'Runtime'),
            Architectures: at(fn.Properties, 'Architectures'),
            TracingConfig: at(fn.Properties, 'TracingConfig'),
            Role: at(fn.Properties, 'Role'),
          })),
        ).toEqual(
          byId(functions, (_fn, id) => ({
            Runtime: 'nodejs22.x',
            Architectures: ['arm64'],
            TracingConfig: { Mode: 'Active' },
            Role: getAttArn(`${id.replace(/LambdaFunction$/, '')}IamRoleLambdaExecution`),
          })),
        );
        expect(new Set(roles).size).toBe(functions.length);
        for (const [id] of functions) {
          expect(() =>
            stack.resource(`${id.replace(/LambdaFunction$/, '')}IamRoleLambdaExecution`, 'AWS::IAM::Role'),
          ).not.toThrow();
        }
      });

      it('declares no IAM role that no function, state machine or delivery stream uses, but the auditor role people assume (the framework default role is pruned)', () => {
        const roles = stack.resourcesOfType('AWS::IAM::Role').map(([id]) => id);
        const users = [
          ...stack.resourcesOfType('AWS::Lambda::Function'),
          ...stack.resourcesOfType('AWS::StepFunctions::StateMachine'),
        ].map(([, resource]) =>
          JSON.stringify(at(resource.Properties, 'Role') ?? at(resource.Properties, 'RoleArn')),
        );
        const deliveryRoles = stack
          .resourcesOfType('AWS::KinesisFirehose::DeliveryStream')
          .map(([, stream]) =>
            JSON.stringify(at(stream.Properties, 'ExtendedS3DestinationConfiguration', 'RoleARN')),
          );
        // The role CloudWatch Logs assumes is handed over by log-export with each subscription.
        const passed = JSON.stringify(
          at(
            stack.properties('LogExportLambdaFunction', 'AWS::Lambda::Function'),
            'Environment',
            'Variables',
          ),
        );

        // People assume the auditor role, not a service of the stack; describeAuditorRole checks its
        // trust and its policy.
        const assumedByPeople = [AUDITOR_ROLE_ID, APPROVER_ROLE_ID];

        expect(roles).not.toContain('IamRoleLambdaExecution');
        expect(roles).toEqual(expect.arrayContaining(assumedByPeople));
        expect(
          roles
            .filter((id) => !assumedByPeople.includes(id))
            .filter((id) => ![...users, ...deliveryRoles, passed].some((used) => used.includes(`"${id}"`))),
        ).toEqual([]);
      });

      it('lets the trigger claim a build, start executions, queue rejections and record them in the audit table', () => {
        const statements = roleStatements('TriggerIamRoleLambdaExecution');

        expect(resourcesGranted(statements, 'states:StartExecution')).toEqual([
          { Ref: 'AmiPipelineStateMachine' },
        ]);
        expect(resourcesGranted(statements, 'sqs:SendMessage')).toEqual(
          expect.arrayContaining([getAttArn('RejectionsQueue'), getAttArn('TriggerDeadLetterQueue')]),
        );
        expect(resourcesGranted(statements, 'dynamodb:PutItem')).toEqual([getAttArn('AuditTable')]);
        // In the coordination table, only the build's claim (TRIGGER#<execution name>): never a lock
        // or a task token.
        const coordination = statements.filter((statement) =>
          JSON.stringify(statement.Resource).includes('"CoordinationTable"'),
        );
        expect(coordination).toEqual([
          {
            Effect: 'Allow',
            Action: ['dynamodb:UpdateItem'],
            Resource: [getAttArn('CoordinationTable')],
            Condition: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['TRIGGER#*'] } },
          },
        ]);
        // The queues are encrypted: sending to them needs a data key from the stage key.
        expect(resourcesGranted(statements, 'kms:GenerateDataKey')).toEqual([STAGE_KEY_ARN]);
      });

      it('lets pre-provision write parameters only under /ami-pipeline/<stage>/, encrypted with the stage key', () => {
        const statements = roleStatements('PreProvisionIamRoleLambdaExecution');

        expect(resourcesGranted(statements, 'ssm:PutParameter').map(renderArn)).toEqual([
          `arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:parameter/ami-pipeline/${stage}/*`,
        ]);
        expect(resourcesGranted(statements, 'kms:Encrypt')).toEqual([STAGE_KEY_ARN]);
      });

      it('lets the lock function put items in the coordination table and nowhere else', () => {
        const statements = roleStatements('LockIamRoleLambdaExecution');

        expect(resourcesGranted(statements, 'dynamodb:PutItem')).toEqual([getAttArn('CoordinationTable')]);
      });

      it('keeps every function environment free of anything that looks like a secret or a token', () => {
        const functions = stack.resourcesOfType('AWS::Lambda::Function');

        expect(
          byId(functions, (fn) => {
            const variables = at(fn.Properties, 'Environment', 'Variables');
            return isObject(variables) ? secretLookingVariables(variables) : ['no environment'];
          }),
        ).toEqual(sameForAll(ids(functions), []));
      });

      it('gives every function the validated stage config as STAGE_CONFIG (what stageConfigFromEnv reads)', () => {
        const functions = stack.resourcesOfType('AWS::Lambda::Function');
        const expected = loadStageConfig(stage, path.join(REPO_ROOT, 'config'));

        expect(
          byId(functions, (fn) => {
            const variables = at(fn.Properties, 'Environment', 'Variables');
            if (!isObject(variables) || typeof variables.STAGE_CONFIG !== 'string') return 'missing';
            return stageConfigFromEnv({ STAGE: stage, STAGE_CONFIG: variables.STAGE_CONFIG }) as unknown;
          }),
        ).toEqual(sameForAll(ids(functions), expected));
      });

      it('runs the reconciler one invocation at a time', () => {
        const reconciler = stack.properties('ReconcilerLambdaFunction', 'AWS::Lambda::Function');

        expect(reconciler.ReservedConcurrentExecutions).toBe(1);
      });
    });

    describe('function roles', () => {
      // What each role may do, in full (the framework's log and X-Ray statements aside), rendered
      // by grantLines: one `action resource [if condition]` line per pair. Audit-table reads and
      // appends are checked on their own below.
      const coordinationTable = `\${CoordinationTable.Arn}`;
      const auditTable = `\${AuditTable.Arn}`;
      const stageKey = `\${PipelineKey.Arn}`;
      const stateMachineArn = `\${AmiPipelineStateMachine}`;
      const decommissionMachineArn = `\${DecommissionStateMachine}`;
      const regional = (service: string, resource: string) =>
        `arn:\${AWS::Partition}:${service}:\${AWS::Region}:\${AWS::AccountId}:${resource}`;
      // The stage's region plus each distribution region of config/<stage>.yml (the generator is
      // unit-tested with regions: test/unit/distribution-iam.test.ts).
      const distribution = () => distributionResources(stack.config);
      const everyRegionImages = () => distribution().images.map((arn) => renderArn(arn as Json));
      const everyStageKey = () => distribution().keys.map((arn) => renderArn(arn as Json));
      const latestAmiParameters = () =>
        distribution().latestAmiParameters.map((arn) => renderArn(arn as Json));
      const stageTagged = (): JsonObject => ({
        StringEquals: { 'aws:ResourceTag/ami-pipeline:stage': stage },
      });
      const runConfigs = () => regional('ssm', `parameter/ami-pipeline/${stage}/*`);
      /** Application Load Balancer listeners of the region and account; the stage tag narrows them. */
      const stageListeners = () => regional('elasticloadbalancing', 'listener/app/*');

      const permissions = (fn: string): string[] =>
        grantLines(roleStatements(roleOf(fn)), FRAMEWORK_SERVICES).filter(
          (line) => !line.includes(auditTable),
        );
      const auditPermissions = (fn: string): string[] =>
        grantLines(roleStatements(roleOf(fn))).filter((line) => line.includes(auditTable));

      it.each(COMMAND_STEPS)(
        'lets the %s worker send only its own document, only to builders tagged for this stage, and park its token',
        (step) => {
          const expected = [
            ...grant(['ssm:SendCommand'], [regional('ssm', `document/${documentName(stage, step)}`)]),
            ...grant(['ssm:SendCommand'], [regional('ec2', 'instance/*')], {
              StringEquals: { 'ssm:resourceTag/ami-pipeline:builder': stage },
            }),
            // Adopting a retried attempt's command, picking an online builder, and stopping a
            // command the worker started but could not record.
            ...grant(['ssm:ListCommands', 'ssm:DescribeInstanceInformation', 'ssm:CancelCommand'], ['*']),
            ...grant(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'], [coordinationTable]),
            // validate reads the app's allowed failed controls from the run config (a SecureString).
            ...(step === 'validate'
              ? [...grant(['ssm:GetParameter'], [runConfigs()]), ...grant(['kms:Decrypt'], [stageKey])]
              : []),
          ];

          // grantLines here keeps audit-table lines: a token worker has none.
          expect(grantLines(roleStatements(roleOf(step)), FRAMEWORK_SERVICES)).toEqual(expected.sort());
        },
      );

      it('picks builders by the same ami-pipeline:builder=<stage> tag the token workers may send commands to', () => {
        expect(stack.config.builder.targets).toEqual({ tag: { key: 'ami-pipeline:builder', value: stage } });
      });

      it("lets command-completed answer the stage machine's tokens and read only this stage's command results", () => {
        expect(permissions('commandCompleted')).toEqual(
          [
            ...grant(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'], [coordinationTable]),
            // Tokens of both machines: the pipeline's stages and the decommission's DestroyStack.
            ...grant(
              ['states:SendTaskSuccess', 'states:SendTaskFailure'],
              [stateMachineArn, decommissionMachineArn],
            ),
            ...grant(['s3:GetObject'], [`\${ArtifactsBucket.Arn}/${stage}/*`]),
            ...grant(['kms:Decrypt'], [stageKey]),
            ...grant(['ssm:ListCommands', 'ssm:ListCommandInvocations'], ['*']),
          ].sort(),
        );
      });

      it('lets the reconciler also heartbeat, check executions of this machine, query pending tasks and cancel orphans', () => {
        expect(permissions('reconciler')).toEqual(
          [
            ...grant(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'], [coordinationTable]),
            ...grant(['dynamodb:Query'], [`${coordinationTable}/index/${PENDING_INDEX}`]),
            ...grant(
              ['states:SendTaskSuccess', 'states:SendTaskFailure', 'states:SendTaskHeartbeat'],
              [stateMachineArn, decommissionMachineArn],
            ),
            ...grant(
              ['states:DescribeExecution'],
              [
                regional('states', `execution:ami-pipeline-${stage}:*`),
                regional('states', `execution:ami-pipeline-${stage}-decommission:*`),
              ],
            ),
            ...grant(['s3:GetObject'], [`\${ArtifactsBucket.Arn}/${stage}/*`]),
            ...grant(['kms:Decrypt'], [stageKey]),
            ...grant(['ssm:ListCommands', 'ssm:ListCommandInvocations', 'ssm:CancelCommand'], ['*']),
          ].sort(),
        );
      });

      it('lets distribute tag, share and replace only stage-tagged AMIs and snapshots, and grant on the stage key', () => {
        expect(permissions('distribute')).toEqual(
          [
            ...grant(['ssm:GetParameter'], [runConfigs()]),
            ...grant(
              [
                'kms:Decrypt',
                'kms:CreateGrant',
                'kms:DescribeKey',
                'kms:GenerateDataKeyWithoutPlaintext',
                'kms:ReEncryptFrom',
                'kms:ReEncryptTo',
              ],
              everyStageKey(),
            ),
            ...grant(
              [
                'ec2:CreateTags',
                'ec2:ModifyImageAttribute',
                'ec2:ModifySnapshotAttribute',
                'ec2:DeregisterImage',
                'ec2:DeleteSnapshot',
              ],
              everyRegionImages(),
              stageTagged(),
            ),
            ...grant(['ec2:CreateTags'], everyRegionImages(), {
              StringEquals: { 'ec2:CreateAction': 'CopyImage' },
            }),
            // CopyImage has no aws:ResourceTag key: the copy must be requested with the stage tag.
            ...grant(['ec2:CopyImage'], everyRegionImages(), {
              StringEquals: { 'aws:RequestTag/ami-pipeline:stage': stage },
            }),
            ...grant(['ec2:DescribeImages', 'ec2:DescribeSnapshots'], ['*']),
            // The latest-ami parameter of each region, and its resource policy (sharing).
            ...grant(
              [
                'ssm:GetParameter',
                'ssm:PutParameter',
                'ssm:DeleteParameter',
                'ssm:GetResourcePolicies',
                'ssm:PutResourcePolicy',
              ],
              latestAmiParameters(),
            ),
          ].sort(),
        );
      });

      it('lets compensate cancel commands, list and revoke grants on the stage key, remove only stage-tagged AMIs and snapshots and put back only stage-tagged listeners', () => {
        expect(permissions('compensate')).toEqual(
          [
            ...grant(['dynamodb:GetItem', 'dynamodb:UpdateItem'], [coordinationTable]),
            // Only a command still running is cancelled (ListCommands tells).
            ...grant(['ssm:ListCommands', 'ssm:CancelCommand'], ['*']),
            // ListGrants finds a grant the worker died before recording, by its name.
            ...grant(['kms:RevokeGrant', 'kms:ListGrants'], everyStageKey()),
            ...grant(['ec2:DeregisterImage', 'ec2:DeleteSnapshot'], everyRegionImages(), stageTagged()),
            ...grant(['ec2:DescribeImages', 'ec2:DescribeSnapshots'], ['*']),
            ...grant(['elasticloadbalancing:ModifyListener'], [stageListeners()], stageTagged()),
            // A failed run's latest-ami values are put back (or the parameter it created deleted).
            ...grant(
              [
                'ssm:GetParameter',
                'ssm:PutParameter',
                'ssm:DeleteParameter',
                'ssm:GetResourcePolicies',
                'ssm:PutResourcePolicy',
                'ssm:DeleteResourcePolicy',
              ],
              latestAmiParameters(),
            ),
          ].sort(),
        );
      });

      it("places smoke-test in the stage's VPC exactly when the stage config names one", () => {
        const vpc = stack.config.release.vpc;
        const smokeTest = stack.resource('SmokeTestLambdaFunction', 'AWS::Lambda::Function');

        expect(at(smokeTest.Properties, 'VpcConfig') ?? null).toEqual(
          vpc ? { SubnetIds: vpc.subnetIds, SecurityGroupIds: vpc.securityGroupIds } : null,
        );
      });

      it("lets smoke-test only read and decrypt this stage's run configs", () => {
        // grantLines here keeps audit-table lines: the smoke test has none.
        expect(grantLines(roleStatements(roleOf('smokeTest')), FRAMEWORK_SERVICES)).toEqual(
          [...grant(['ssm:GetParameter'], [runConfigs()]), ...grant(['kms:Decrypt'], [stageKey])].sort(),
        );
      });

      it('lets traffic read run configs, load balancers and metrics, and change only the listeners of stage-tagged load balancers', () => {
        expect(permissions('traffic')).toEqual(
          [
            ...grant(['ssm:GetParameter'], [runConfigs()]),
            ...grant(['kms:Decrypt'], [stageKey]),
            ...grant(
              [
                'elasticloadbalancing:DescribeLoadBalancers',
                'elasticloadbalancing:DescribeListeners',
                'elasticloadbalancing:DescribeTargetHealth',
                'cloudwatch:GetMetricStatistics',
              ],
              ['*'],
            ),
            ...grant(['elasticloadbalancing:ModifyListener'], [stageListeners()], stageTagged()),
          ].sort(),
        );
      });

      it("lets record-release read and decrypt this stage's run configs and start the decommission machine, besides the audit table", () => {
        expect(permissions('recordRelease')).toEqual(
          [
            ...grant(['ssm:GetParameter'], [runConfigs()]),
            ...grant(['kms:Decrypt'], [stageKey]),
            // It schedules the replaced release's decommission, on that machine only.
            ...grant(['states:StartExecution'], [`\${DecommissionStateMachine}`]),
          ].sort(),
        );
        expect(
          at(
            stack.properties('RecordReleaseLambdaFunction', 'AWS::Lambda::Function'),
            'Environment',
            'Variables',
            'DECOMMISSION_STATE_MACHINE_ARN',
          ),
        ).toEqual({ Ref: 'DecommissionStateMachine' });
      });

      it('lets decommission list and revoke grants on the stage key and remove only stage-tagged AMIs and snapshots', () => {
        expect(permissions('decommission')).toEqual(
          [
            ...grant(['kms:RevokeGrant', 'kms:ListGrants'], everyStageKey()),
            ...grant(['ec2:DeregisterImage', 'ec2:DeleteSnapshot'], everyRegionImages(), stageTagged()),
            ...grant(['ec2:DescribeImages', 'ec2:DescribeSnapshots'], ['*']),
          ].sort(),
        );
      });

      it('lets the workers that record what they did append to the audit table and read what they look up', () => {
        const byResource = `${auditTable}/index/byResource`;

        expect({
          distribute: auditPermissions('distribute'),
          traffic: auditPermissions('traffic'),
          logExport: auditPermissions('logExport'),
          recordRelease: auditPermissions('recordRelease'),
          decommission: auditPermissions('decommission'),
          commandCompleted: auditPermissions('commandCompleted'),
          reconciler: auditPermissions('reconciler'),
          compensate: auditPermissions('compensate'),
        }).toEqual({
          // A retried attempt reads back (a Query) the copy and parameter values it recorded.
          distribute: grant(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'], [auditTable]).sort(),
          // Each listener change is recorded; a retried write reads the existing item back to compare.
          traffic: grant(['dynamodb:GetItem', 'dynamodb:PutItem'], [auditTable]).sort(),
          // Each log group it made and each subscription; a retried write reads the item back.
          logExport: grant(['dynamodb:GetItem', 'dynamodb:PutItem'], [auditTable]).sort(),
          // The live item is read before it is replaced; the run's events (a Query) give the stage timings.
          recordRelease: grant(
            ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'],
            [auditTable],
          ).sort(),
          // Retiring a release is recorded; the live releases are read (a Query) to keep an AMI still in use.
          decommission: grant(
            ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'],
            [auditTable],
          ).sort(),
          // Completion looks the run up by id (byResource) before recording what the command made.
          commandCompleted: expect.arrayContaining(
            grant(['dynamodb:PutItem'], [auditTable]).concat(grant(['dynamodb:Query'], [byResource])),
          ),
          reconciler: expect.arrayContaining(
            grant(['dynamodb:PutItem'], [auditTable]).concat(grant(['dynamodb:Query'], [byResource])),
          ),
          // Compensation reads the run's recorded resources (a Query on the table) before undoing them.
          compensate: expect.arrayContaining(grant(['dynamodb:PutItem', 'dynamodb:Query'], [auditTable])),
        });
      });

      /** App log groups: the part of config/rules.yml's logGroupNamePrefix before {appId}, then anything. */
      const appLogGroups = () => {
        const prefix = loadRules().logGroupNamePrefix;
        return regional('logs', `log-group:${prefix.slice(0, prefix.indexOf('{appId}'))}*`);
      };

      it("lets log-export manage and subscribe only app log groups (the rules' prefix), pass only the CloudWatch Logs role, and read run configs", () => {
        const ownLogGroup = `log-group:/aws/lambda/ami-pipeline-${stage}-logExport:`;
        const lines = grantLines(roleStatements(roleOf('logExport')), ['xray']).filter(
          (line) => !line.includes(auditTable) && !line.includes(ownLogGroup),
        );

        expect(appLogGroups()).toBe(regional('logs', 'log-group:/app/*'));
        expect(lines).toEqual(
          [
            ...grant(['ssm:GetParameter'], [runConfigs()]),
            ...grant(['kms:Decrypt'], [stageKey]),
            ...grant(
              [
                'logs:CreateLogGroup',
                'logs:TagResource',
                'logs:ListTagsForResource',
                'logs:AssociateKmsKey',
                'logs:PutRetentionPolicy',
                'logs:DescribeSubscriptionFilters',
                'logs:PutSubscriptionFilter',
              ],
              [appLogGroups()],
            ),
            ...grant(['iam:PassRole'], [`\${LogsSubscriptionRole.Arn}`]),
          ].sort(),
        );
      });

      it('lets compensate remove subscription filters of app log groups only, and touch no pipeline log group', () => {
        const ownLogGroup = `log-group:/aws/lambda/ami-pipeline-${stage}-compensate:`;
        const logLines = grantLines(roleStatements(roleOf('compensate')))
          .filter((line) => line.startsWith('logs:'))
          .filter((line) => !line.includes(ownLogGroup));

        expect(logLines).toEqual(grant(['logs:DeleteSubscriptionFilter'], [appLogGroups()]));
      });

      it('hands log-export the stage key, the delivery stream and the subscription role, by reference', () => {
        const variables = at(
          stack.properties('LogExportLambdaFunction', 'AWS::Lambda::Function'),
          'Environment',
          'Variables',
        );

        expect({
          KMS_KEY_ARN: at(variables, 'KMS_KEY_ARN'),
          LOG_DELIVERY_STREAM_ARN: at(variables, 'LOG_DELIVERY_STREAM_ARN'),
          LOG_SUBSCRIPTION_ROLE_ARN: at(variables, 'LOG_SUBSCRIPTION_ROLE_ARN'),
          AUDIT_TABLE: at(variables, 'AUDIT_TABLE'),
        }).toEqual({
          KMS_KEY_ARN: STAGE_KEY_ARN,
          LOG_DELIVERY_STREAM_ARN: getAttArn('LogsDeliveryStream'),
          LOG_SUBSCRIPTION_ROLE_ARN: getAttArn('LogsSubscriptionRole'),
          AUDIT_TABLE: { Ref: 'AuditTable' },
        });
      });
    });

    describe('log export', () => {
      const trustOf = (roleId: string): JsonObject[] =>
        asList(
          at(stack.properties(roleId, 'AWS::IAM::Role'), 'AssumeRolePolicyDocument', 'Statement'),
        ).filter(isObject);

      it('delivers through a DirectPut Firehose stream encrypted with the stage key into the logs bucket under cloudwatch-logs/<stage>/', () => {
        const stream = stack.properties('LogsDeliveryStream', 'AWS::KinesisFirehose::DeliveryStream');
        const destination = at(stream, 'ExtendedS3DestinationConfiguration');

        expect({
          DeliveryStreamName: stream.DeliveryStreamName,
          DeliveryStreamType: stream.DeliveryStreamType,
          DeliveryStreamEncryptionConfigurationInput: stream.DeliveryStreamEncryptionConfigurationInput,
          BucketARN: at(destination, 'BucketARN'),
          RoleARN: at(destination, 'RoleARN'),
          EncryptionConfiguration: at(destination, 'EncryptionConfiguration'),
          CloudWatchLoggingOptions: at(destination, 'CloudWatchLoggingOptions'),
        }).toEqual({
          DeliveryStreamName: `ami-pipeline-${stage}-logs`,
          DeliveryStreamType: 'DirectPut',
          DeliveryStreamEncryptionConfigurationInput: {
            KeyType: 'CUSTOMER_MANAGED_CMK',
            KeyARN: STAGE_KEY_ARN,
          },
          BucketARN: getAttArn('LogsBucket'),
          RoleARN: getAttArn('LogsDeliveryRole'),
          EncryptionConfiguration: { KMSEncryptionConfig: { AWSKMSKeyARN: STAGE_KEY_ARN } },
          CloudWatchLoggingOptions: {
            Enabled: true,
            LogGroupName: { Ref: 'LogsDeliveryLogGroup' },
            LogStreamName: { Ref: 'LogsDeliveryLogStream' },
          },
        });
        expect(String(at(destination, 'Prefix'))).toMatch(new RegExp(`^cloudwatch-logs/${stage}/`));
        // With expressions in Prefix, Firehose requires an error prefix naming the error type.
        expect(String(at(destination, 'ErrorOutputPrefix'))).toMatch(
          new RegExp(`^cloudwatch-logs-errors/${stage}/!\\{firehose:error-output-type\\}/`),
        );
        expect(stack.template.Outputs?.LogsDeliveryStreamArn).toEqual({
          Value: getAttArn('LogsDeliveryStream'),
        });
      });

      it('lets Firehose (for this account only) write under its two prefixes of the logs bucket, with the stage key through S3 only', () => {
        const logsBucket = `\${LogsBucket.Arn}`;
        const kmsCondition = {
          StringEquals: { 'kms:ViaService': { 'Fn::Sub': 's3.${AWS::Region}.amazonaws.com' } },
          StringLike: {
            'kms:EncryptionContext:aws:s3:arn': [
              getAttArn('LogsBucket'),
              { 'Fn::Sub': '${LogsBucket.Arn}/cloudwatch-logs*' },
            ],
          },
        };

        expect(trustOf('LogsDeliveryRole')).toEqual([
          {
            Effect: 'Allow',
            Principal: { Service: 'firehose.amazonaws.com' },
            Action: 'sts:AssumeRole',
            Condition: { StringEquals: { 'sts:ExternalId': { Ref: 'AWS::AccountId' } } },
          },
        ]);
        expect(grantLines(roleStatements('LogsDeliveryRole'))).toEqual(
          [
            ...grant(
              ['s3:GetBucketLocation', 's3:ListBucket', 's3:ListBucketMultipartUploads'],
              [logsBucket],
            ),
            ...grant(
              ['s3:PutObject', 's3:AbortMultipartUpload'],
              [`${logsBucket}/cloudwatch-logs/${stage}/*`, `${logsBucket}/cloudwatch-logs-errors/${stage}/*`],
            ),
            ...grant(['kms:GenerateDataKey', 'kms:Decrypt'], [`\${PipelineKey.Arn}`], kmsCondition),
            ...grant(['logs:PutLogEvents'], [`\${LogsDeliveryLogGroup.Arn}`]),
          ].sort(),
        );
      });

      it("lets CloudWatch Logs, for this account's log groups only, put records into that one stream and do nothing else", () => {
        expect(trustOf('LogsSubscriptionRole')).toEqual([
          {
            Effect: 'Allow',
            Principal: { Service: { 'Fn::Sub': 'logs.${AWS::Region}.amazonaws.com' } },
            Action: 'sts:AssumeRole',
            Condition: {
              StringLike: {
                'aws:SourceArn': {
                  'Fn::Sub': 'arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:*',
                },
              },
            },
          },
        ]);
        expect(grantLines(roleStatements('LogsSubscriptionRole'))).toEqual(
          grant(['firehose:PutRecord', 'firehose:PutRecordBatch'], [`\${LogsDeliveryStream.Arn}`]).sort(),
        );
      });

      it('exports logs after the traffic switch and before the release goes live, compensating a failure', () => {
        const { definition, variables } = parseDefinition(
          stack.properties('AmiPipelineStateMachine', 'AWS::StepFunctions::StateMachine'),
        );
        const state = (name: string) => at(definition, 'States', name);
        const exportLogs = state('ExportLogs');

        expect(at(state('ShiftTraffic'), 'Next')).toBe('ExportLogs');
        expect({
          function: isObject(exportLogs) ? functionOf(exportLogs, variables) : 'missing',
          Next: at(exportLogs, 'Next'),
          catchAll: at(asList(at(exportLogs, 'Catch')).at(-1), 'Next'),
          retried: asList(at(exportLogs, 'Retry')).flatMap((retrier) => asList(at(retrier, 'ErrorEquals'))),
        }).toEqual({
          function: 'LogExportLambdaFunction',
          // PublishAmiIds, then RecordRelease: both still before the release goes live.
          Next: 'PublishAmiIds',
          catchAll: 'ExportLogsFailed',
          retried: expect.arrayContaining([...TRANSIENT_ERRORS, 'OperationAbortedException']),
        });
        expect(at(exportLogs, 'Retry')).not.toContainEqual(
          expect.objectContaining({ ErrorEquals: expect.arrayContaining(['LogExportFailedError']) }),
        );
        expect({
          Result: at(state('ExportLogsFailed'), 'Result'),
          Next: at(state('ExportLogsFailed'), 'Next'),
        }).toEqual({
          Result: 'ExportLogs',
          Next: 'Compensate',
        });
      });
    });

    describe('SSM command documents', () => {
      it.each(COMMAND_STEPS)(
        "declares the %s document as a Command named ami-pipeline-<stage>-<step> with exactly the contract's parameters and patterns",
        (step) => {
          const props = stack.properties(`${capitalized(step)}Document`, 'AWS::SSM::Document');
          const content = isObject(props.Content) ? props.Content : {};
          const parameters = isObject(content.parameters) ? content.parameters : {};

          expect({ Name: props.Name, DocumentType: props.DocumentType }).toEqual({
            Name: documentName(stage, step),
            DocumentType: 'Command',
          });
          expect(isObject(props.Content)).toBe(true);
          expect(content.schemaVersion).toBe('2.2');
          expect(asList(content.mainSteps).map((mainStep) => at(mainStep, 'action'))).toEqual([
            'aws:runShellScript',
          ]);
          expect(Object.keys(parameters).sort()).toEqual([...DOCUMENT_PARAMETERS[step]].sort());
          expect(
            Object.fromEntries(
              Object.entries(parameters).map(([name, parameter]) => [
                name,
                { type: at(parameter, 'type'), allowedPattern: at(parameter, 'allowedPattern') },
              ]),
            ),
          ).toEqual(
            Object.fromEntries(
              DOCUMENT_PARAMETERS[step].map((name) => [
                name,
                { type: 'String', allowedPattern: PARAMETER_PATTERNS[name] },
              ]),
            ),
          );
        },
      );

      it.each(COMMAND_STEPS)(
        'hands the %s script its parameters as environment variables, never spliced into its text',
        (step) => {
          const content = stack.properties(`${capitalized(step)}Document`, 'AWS::SSM::Document').Content;
          const inputs = at(content, 'mainSteps', 0, 'inputs');
          const parameters = at(content, 'parameters');
          const interpolation = Object.fromEntries(
            Object.entries(isObject(parameters) ? parameters : {})
              .filter(([name]) => name !== 'executionTimeout')
              .map(([name, parameter]) => [name, at(parameter, 'interpolationType')]),
          );

          expect(JSON.stringify(at(inputs, 'runCommand'))).not.toContain('{{');
          expect(interpolation).toEqual(
            Object.fromEntries(Object.keys(interpolation).map((name) => [name, 'ENV_VAR'])),
          );
          // The one {{ }} left: the step timeout, a number by its allowedPattern, never seen by a shell.
          expect(at(inputs, 'timeoutSeconds')).toBe('{{ executionTimeout }}');
        },
      );
    });

    describe('command completion', () => {
      it("routes only terminal status changes of this stage's three documents to command-completed", () => {
        const rules = rulesTargeting(
          stack.resourcesOfType('AWS::Events::Rule'),
          'CommandCompletedLambdaFunction',
        );
        const [, rule] = rules[0] ?? ['', { Type: 'missing' }];
        const pattern = at(rule.Properties, 'EventPattern');
        const statuses = asList(at(pattern, 'detail', 'status')).map(String);
        const documents = COMMAND_STEPS.map((step) =>
          at(stack.properties(`${capitalized(step)}Document`, 'AWS::SSM::Document'), 'Name'),
        );
        const stillRunning: string[] = [
          CommandStatus.PENDING,
          CommandStatus.IN_PROGRESS,
          CommandStatus.CANCELLING,
          'Delayed',
        ];

        expect(rules).toHaveLength(1);
        expect(at(pattern, 'source')).toEqual(['aws.ssm']);
        expect(at(pattern, 'detail-type')).toEqual(['EC2 Command Status-change Notification']);
        expect(asList(at(pattern, 'detail', 'document-name')).sort()).toEqual(
          COMMAND_STEPS.map((step) => documentName(stage, step)).sort(),
        );
        expect([...documents].sort()).toEqual(COMMAND_STEPS.map((step) => documentName(stage, step)).sort());
        expect(statuses).toEqual(
          expect.arrayContaining([
            CommandStatus.SUCCESS,
            CommandStatus.FAILED,
            CommandStatus.TIMED_OUT,
            CommandStatus.CANCELLED,
          ]),
        );
        expect(statuses.filter((status) => stillRunning.includes(status))).toEqual([]);
        // Every status the rule lets through is one the completion code treats as the end.
        expect(statuses.filter((status) => !TERMINAL_STATUSES.has(status))).toEqual([]);
      });

      it('lets EventBridge invoke command-completed from that rule only', () => {
        const [, rule] = rulesTargeting(
          stack.resourcesOfType('AWS::Events::Rule'),
          'CommandCompletedLambdaFunction',
        )[0] ?? ['', { Type: 'missing' }];
        const permissions = stack
          .resourcesOfType('AWS::Lambda::Permission')
          .map(([, permission]) => permission.Properties)
          .filter((props) =>
            getAttTargets(at(props, 'FunctionName')).includes('CommandCompletedLambdaFunction'),
          );

        expect(
          permissions.map((props) => ({
            Principal: at(props, 'Principal'),
            Action: at(props, 'Action'),
            SourceArn: renderArn(at(props, 'SourceArn')),
          })),
        ).toEqual([
          {
            Principal: 'events.amazonaws.com',
            Action: 'lambda:InvokeFunction',
            SourceArn: `arn:\${AWS::Partition}:events:\${AWS::Region}:\${AWS::AccountId}:rule/${String(at(rule.Properties, 'Name'))}`,
          },
        ]);
      });

      it('runs the reconciler every 5 minutes, often enough that two missed runs still beat the heartbeat timeout', () => {
        const rules = rulesTargeting(stack.resourcesOfType('AWS::Events::Rule'), 'ReconcilerLambdaFunction');
        const [ruleId, rule] = rules[0] ?? ['', { Type: 'missing' }];
        const schedule = String(at(rule.Properties, 'ScheduleExpression'));
        const reconciler = stack.properties('ReconcilerLambdaFunction', 'AWS::Lambda::Function');
        const invokers = stack
          .resourcesOfType('AWS::Lambda::Permission')
          .map(([, permission]) => permission.Properties)
          .filter((props) => getAttTargets(at(props, 'FunctionName')).includes('ReconcilerLambdaFunction'));

        expect(rules).toHaveLength(1);
        expect({ schedule, state: at(rule.Properties, 'State') }).toEqual({
          schedule: 'rate(5 minutes)',
          state: 'ENABLED',
        });
        expect(invokers).toEqual([
          expect.objectContaining({ Principal: 'events.amazonaws.com', SourceArn: getAttArn(ruleId) }),
        ]);
        // A heartbeat lands at the latest one interval plus one run after the last; allow two lost runs.
        expect(3 * rateSeconds(schedule)).toBeLessThanOrEqual(stack.config.commands.heartbeatSeconds);
        // And one run ends before the next starts (reserved concurrency 1 would throttle it).
        expect(Number(reconciler.Timeout)).toBeLessThan(rateSeconds(schedule));
      });
    });

    describe('trigger delivery', () => {
      it('subscribes the trigger function to the trigger topic, redriving undeliverable messages to the DLQ', () => {
        const subscriptions = stack
          .resourcesOfType('AWS::SNS::Subscription')
          .map(([, subscription]) => subscription.Properties)
          .filter(
            (props) => JSON.stringify(at(props, 'TopicArn')) === JSON.stringify({ Ref: 'TriggerTopic' }),
          );

        expect(subscriptions).toEqual([
          expect.objectContaining({
            Protocol: 'lambda',
            Endpoint: getAttArn('TriggerLambdaFunction'),
            RedrivePolicy: { deadLetterTargetArn: getAttArn('TriggerDeadLetterQueue') },
          }),
        ]);
      });

      it('lets the trigger topic invoke the function and redrive into the DLQ', () => {
        const permissions = stack.resourcesOfType('AWS::Lambda::Permission').map(([, p]) => p.Properties);
        const dlqStatements = stack
          .resourcesOfType('AWS::SQS::QueuePolicy')
          .map(([, policy]) => policy.Properties)
          .filter((props) =>
            asList(at(props, 'Queues')).some((q) => at(q, 'Ref') === 'TriggerDeadLetterQueue'),
          )
          .flatMap((props) => asList(at(props, 'PolicyDocument', 'Statement')));

        expect(permissions).toContainEqual({
          FunctionName: getAttArn('TriggerLambdaFunction'),
          Action: 'lambda:InvokeFunction',
          Principal: 'sns.amazonaws.com',
          SourceArn: { Ref: 'TriggerTopic' },
        });
        expect(dlqStatements).toContainEqual(
          expect.objectContaining({
            Effect: 'Allow',
            Principal: { Service: 'sns.amazonaws.com' },
            Action: 'sqs:SendMessage',
            Resource: getAttArn('TriggerDeadLetterQueue'),
            Condition: { ArnEquals: { 'aws:SourceArn': { Ref: 'TriggerTopic' } } },
          }),
        );
      });

      it('sends an event that fails every asynchronous retry to the trigger DLQ', () => {
        const invokeConfigs = stack
          .resourcesOfType('AWS::Lambda::EventInvokeConfig')
          .map(([, c]) => c.Properties);

        expect(invokeConfigs).toContainEqual(
          expect.objectContaining({
            FunctionName: { Ref: 'TriggerLambdaFunction' },
            MaximumRetryAttempts: 2,
            DestinationConfig: { OnFailure: { Destination: getAttArn('TriggerDeadLetterQueue') } },
          }),
        );
      });
    });

    describe('function packages', () => {
      it("writes one zip per function, the one each function's Code.S3Key names", () => {
        const zips = byId(stack.resourcesOfType('AWS::Lambda::Function'), (fn) =>
          path.basename(String(at(fn.Properties, 'Code', 'S3Key'))),
        );

        expect(zips).toEqual(
          Object.fromEntries(FUNCTIONS.map((fn) => [`${capitalized(fn)}LambdaFunction`, `${fn}.zip`])),
        );
        expect(Object.values(zips).filter((zip) => !stack.hasArtifact(String(zip)))).toEqual([]);
      });

      it("ships pre-provision with the platform rules and this stage's config, and no other stage's", async () => {
        const entries = await zipEntries(stack.artifact('preProvision.zip'));

        expect(entries).toContain('functions/pre-provision/handler.js');
        expect(entries.filter((entry) => entry.startsWith('config/')).sort()).toEqual(
          [`config/${stage}.yml`, 'config/rules.yml'].sort(),
        );
      });

      it.each([
        ['smokeTest', 'smoke-test'],
        ['logExport', 'log-export'],
        ['recordRelease', 'record-release'],
      ])(
        "ships %s with this stage's config (its release settings, read at cold start) and no other stage's",
        async (fn, folder) => {
          const entries = await zipEntries(stack.artifact(`${fn}.zip`));

          expect(entries).toContain(`functions/${folder}/handler.js`);
          expect(entries.filter((entry) => entry.startsWith('config/'))).toEqual([`config/${stage}.yml`]);
        },
      );

      it.each(COMMAND_STEPS)(
        "ships the %s worker with this stage's config (its builder targets, read at cold start) and no other stage's",
        async (step) => {
          const entries = await zipEntries(stack.artifact(`${step}.zip`));

          expect(entries).toContain(`functions/${step}/handler.js`);
          expect(entries.filter((entry) => entry.startsWith('config/'))).toEqual([`config/${stage}.yml`]);
        },
      );
    });
  });
});

describe('stage configuration', () => {
  let workDir: string | undefined;
  const devConfig = readFileSync(path.join(REPO_ROOT, 'config', 'dev.yml'), 'utf8');

  beforeAll(() => {
    workDir = mkdtempSync(path.join(os.tmpdir(), 'ami-pipeline-stage-config-'));
  });

  afterAll(() => {
    if (workDir !== undefined) rmSync(workDir, { recursive: true, force: true });
  });

  /** A folder holding a copy of config/dev.yml, with one value replaced when `change` is given. */
  const configDirWith = (change?: { field: string; value: Json }): string => {
    const dir = mkdtempSync(path.join(workDir ?? os.tmpdir(), 'config-'));
    const document = parseDocument(devConfig);
    if (change !== undefined) document.setIn(change.field.split('.'), change.value);
    writeFileSync(path.join(dir, 'dev.yml'), String(document));
    return dir;
  };

  it('loads an unchanged copy of config/dev.yml from another folder', () => {
    const dir = configDirWith();

    expect(loadStageConfig('dev', dir)).toMatchObject({ stage: 'dev', logRetentionDays: 30 });
  });

  it.each<[string, Json]>([
    ['logRetentionDays', 31],
    ['stateMachine.logLevel', 'DEBUG'],
    ['kms.pendingWindowDays', 3],
    ['region', 'Ireland'],
    ['audit.deletionProtection', 'yes'],
  ])('rejects %s = %p with an error naming the field', (field, value) => {
    const dir = configDirWith({ field, value });

    expect(() => loadStageConfig('dev', dir)).toThrow(ConfigurationError);
    expect(() => loadStageConfig('dev', dir)).toThrow(`${field}:`);
  });

  it('makes serverless package fail for a stage without a config file', async () => {
    const dir = workDir ?? os.tmpdir();
    const home = mkdtempSync(path.join(dir, 'home-'));
    const out = path.join(dir, 'nosuch-package');

    const result = await runServerless(['package', '--stage', 'nosuch', '--package', out], home);

    expect(result.exitCode).not.toBe(0);
    expect(`${result.stdout}${result.stderr}`).toContain('config/nosuch.yml');
    expect(existsSync(path.join(out, 'cloudformation-template-update-stack.json'))).toBe(false);
  }, 120_000);
});

describe('the template checks themselves', () => {
  it('flag a wildcard action, NotAction, NotResource and a resource-scoped action on Resource "*"', () => {
    const statements: JsonObject[] = [
      { Effect: 'Allow', Action: ['s3:*'], Resource: 'arn:aws:s3:::bucket/*' },
      { Effect: 'Allow', Action: '*', Resource: 'arn:aws:s3:::bucket' },
      { Effect: 'Allow', NotAction: 'iam:*', Resource: 'arn:aws:s3:::bucket' },
      { Effect: 'Allow', Action: 's3:GetObject', NotResource: 'arn:aws:s3:::bucket' },
      { Effect: 'Allow', Action: ['xray:PutTraceSegments', 'dynamodb:PutItem'], Resource: ['*'] },
      { Effect: 'Deny', Action: '*', Resource: '*' },
    ];

    expect(iamViolations('Role', statements, RESOURCE_STAR_ACTIONS)).toEqual([
      'Role statement 0 allows action "s3:*"',
      'Role statement 1 allows action "*"',
      'Role statement 2 allows by NotAction',
      'Role statement 3 allows by NotResource',
      'Role statement 4 allows dynamodb:PutItem on Resource "*"',
    ]);
  });

  it('accept X-Ray and log-delivery actions on Resource "*"', () => {
    const statements: JsonObject[] = [
      { Effect: 'Allow', Action: ['xray:PutTraceSegments', 'logs:CreateLogDelivery'], Resource: '*' },
    ];

    expect(iamViolations('Role', statements, RESOURCE_STAR_ACTIONS)).toEqual([]);
  });

  it('accept Run Command reads and cancellation and EC2 Describe on Resource "*", but not SendCommand or task answers', () => {
    const statements: JsonObject[] = [
      {
        Effect: 'Allow',
        Action: ['ssm:ListCommands', 'ssm:CancelCommand', 'ec2:DescribeImages', 'ec2:DescribeSnapshots'],
        Resource: '*',
      },
      { Effect: 'Allow', Action: ['ssm:SendCommand', 'states:SendTaskSuccess'], Resource: '*' },
    ];

    expect(iamViolations('Role', statements, RESOURCE_STAR_ACTIONS)).toEqual([
      'Role statement 1 allows ssm:SendCommand, states:SendTaskSuccess on Resource "*"',
    ]);
  });

  it('accept Elastic Load Balancing reads on Resource "*", but not ModifyListener or CloudWatch GetMetricData', () => {
    const statements: JsonObject[] = [
      {
        Effect: 'Allow',
        Action: [
          'elasticloadbalancing:DescribeLoadBalancers',
          'elasticloadbalancing:DescribeListeners',
          'elasticloadbalancing:DescribeTargetHealth',
        ],
        Resource: '*',
      },
      {
        Effect: 'Allow',
        Action: ['elasticloadbalancing:ModifyListener', 'cloudwatch:GetMetricData'],
        Resource: '*',
      },
    ];

    expect(iamViolations('Role', statements, RESOURCE_STAR_ACTIONS)).toEqual([
      'Role statement 1 allows elasticloadbalancing:ModifyListener, cloudwatch:GetMetricData on Resource "*"',
    ]);
  });

  it('follow the success path once per Map item, and refuse a path that loops', () => {
    const mapped: JsonObject = {
      StartAt: 'Start',
      States: {
        Start: { Type: 'Pass', Next: 'Route' },
        Route: {
          Type: 'Choice',
          Choices: [{ Variable: '$.x', IsPresent: true, Next: 'Fail' }],
          Default: 'Each',
        },
        Each: {
          Type: 'Map',
          ItemProcessor: {
            StartAt: 'Do',
            States: { Do: { Type: 'Task', Next: 'Pause' }, Pause: { Type: 'Wait', Seconds: 1, End: true } },
          },
          Next: 'Done',
        },
        Done: { Type: 'Succeed' },
        Fail: { Type: 'Fail' },
      },
    };
    const looping: JsonObject = {
      StartAt: 'A',
      States: { A: { Type: 'Pass', Next: 'B' }, B: { Type: 'Pass', Next: 'A' } },
    };

    expect(successPath(mapped, 2)).toEqual([
      'Start',
      'Route',
      'Each',
      'Each/Do',
      'Each/Pause',
      'Each/Do',
      'Each/Pause',
      'Done',
    ]);
    expect(
      statesWithin(mapped).map(({ name, enclosing }) => [name, enclosing.map(([outer]) => outer)]),
    ).toEqual([
      ['Start', []],
      ['Route', []],
      ['Each', []],
      ['Do', ['Each']],
      ['Pause', ['Each']],
      ['Done', []],
      ['Fail', []],
    ]);
    expect(() => successPath(looping, 1)).toThrow('the success path loops through A');
  });

  it('match IAM action wildcards the way IAM does, and only in Allow statements', () => {
    const statements: JsonObject[] = [
      { Effect: 'Allow', Action: 'ec2:Deregister*', Resource: '*' },
      { Effect: 'Deny', Action: 'ssm:*', Resource: '*' },
    ];

    expect(actionMatches('ec2:Deregister*', 'EC2:DeregisterImage')).toBe(true);
    expect(actionMatches('ec2:Delete?napshot', 'ec2:DeleteSnapshot')).toBe(true);
    expect(actionMatches('ec2:DeleteSnapshot', 'ec2:DeleteSnapshots')).toBe(false);
    expect(allows(statements, 'ec2:DeregisterImage')).toBe(true);
    expect(allows(statements, 'ssm:SendCommand')).toBe(false);
  });

  it('list every action and resource a policy grants, with its condition, leaving out ignored services', () => {
    const statements: JsonObject[] = [
      { Effect: 'Allow', Action: ['xray:PutTraceSegments'], Resource: '*' },
      {
        Effect: 'Allow',
        Action: ['ec2:DeleteSnapshot', 'ec2:DeregisterImage'],
        Resource: [{ 'Fn::Sub': 'arn:aws:ec2:r::image/*' }],
        Condition: { StringEquals: { 'aws:ResourceTag/t': 'v' } },
      },
      { Effect: 'Deny', Action: 's3:*', Resource: '*' },
      { Effect: 'Allow', Action: 'dynamodb:GetItem', Resource: { 'Fn::GetAtt': ['Table', 'Arn'] } },
    ];

    expect(grantLines(statements, ['xray'])).toEqual([
      'dynamodb:GetItem ${Table.Arn}',
      'ec2:DeleteSnapshot arn:aws:ec2:r::image/* if {"StringEquals":{"aws:ResourceTag/t":"v"}}',
      'ec2:DeregisterImage arn:aws:ec2:r::image/* if {"StringEquals":{"aws:ResourceTag/t":"v"}}',
    ]);
  });

  it('flag environment variables that carry a credential, and leave resource names and hashes alone', () => {
    const variables: JsonObject = {
      GITHUB_TOKEN: 'abc',
      DB_PASSWORD: 'hunter2',
      KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
      SIGNING: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCY1234EXAMPLEKEY',
      KMS_KEY_ARN: { 'Fn::GetAtt': ['PipelineKey', 'Arn'] },
      TOKEN_TABLE: { Ref: 'CoordinationTable' },
      ASSETS_PREFIX: 'tooling/864a1cc779427bef',
      NODE_OPTIONS: '--enable-source-maps',
    };

    expect(secretLookingVariables(variables)).toEqual([
      'GITHUB_TOKEN is named like a credential and has a literal value',
      'DB_PASSWORD is named like a credential and has a literal value',
      'KEY_ID holds what looks like an AWS access key id',
      'SIGNING holds a long random-looking string',
    ]);
  });

  it('find a loop through a Choice, and none in a straight line', () => {
    const looping: JsonObject = {
      StartAt: 'Start',
      States: {
        Start: { Type: 'Task', Next: 'Check', Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Failed' }] },
        Check: {
          Type: 'Choice',
          Choices: [{ Variable: '$.done', BooleanEquals: false, Next: 'Start' }],
          Default: 'Done',
        },
        Done: { Type: 'Succeed' },
        Failed: { Type: 'Fail' },
      },
    };
    const straight: JsonObject = {
      StartAt: 'Start',
      States: { Start: { Type: 'Task', Next: 'Done' }, Done: { Type: 'Succeed' } },
    };

    expect(findCycle(looping)).toEqual(['Start', 'Check', 'Start']);
    expect(findCycle(straight)).toBeUndefined();
    expect([...reachableFrom(looping, 'Check')].sort()).toEqual(['Check', 'Done', 'Failed', 'Start']);
  });

  it('tell which IAM resources could cover a state machine ARN', () => {
    const arn = 'arn:aws:states:eu-west-1:123456789012:stateMachine:ami-pipeline-dev-decommission';

    expect(
      [
        { Ref: 'DecommissionStateMachine' },
        '*',
        {
          'Fn::Sub':
            'arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:ami-pipeline-dev*',
        },
        { Ref: 'AmiPipelineStateMachine' },
        {
          'Fn::Sub':
            'arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:ami-pipeline-dev',
        },
        {
          'Fn::Sub':
            'arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:ami-pipeline-dev:*',
        },
      ].map((resource) => resourceCovers(resource, 'DecommissionStateMachine', arn)),
    ).toEqual([true, true, true, false, false, false]);
  });

  it('read EventBridge rate expressions in seconds and refuse anything else', () => {
    expect(rateSeconds('rate(5 minutes)')).toBe(300);
    expect(rateSeconds('rate(1 hour)')).toBe(3600);
    expect(() => rateSeconds('cron(0/5 * * * ? *)')).toThrow('not a rate expression');
  });

  it('report references to resources the template does not declare', () => {
    const template: CfnTemplate = {
      Resources: {
        Queue: { Type: 'AWS::SQS::Queue', DependsOn: 'Missing1' },
        Policy: {
          Type: 'AWS::SQS::QueuePolicy',
          Properties: {
            Queues: [{ Ref: 'Queue' }, { Ref: 'Missing2' }],
            Arn: { 'Fn::GetAtt': ['Missing3', 'Arn'] },
            Text: {
              'Fn::Sub': ['${Queue.Arn}/${Local}/${Missing4.Arn}/${AWS::Region}/${!Literal}', { Local: 'x' }],
            },
          },
        },
      },
    };

    expect(danglingReferences(template)).toEqual([
      'Queue.DependsOn: Missing1',
      'Policy: Missing2',
      'Policy: Missing3',
      'Policy: Missing4',
    ]);
  });
});
