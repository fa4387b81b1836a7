import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { loadStageConfig } from '../../shared/config/stage';
import { ConfigurationError } from '../../shared/errors';
import { allStates } from './asl';
import { IAM_POLICY_TYPES, iamViolations, policyStatements, resourcesGranted } from './iam';
import {
  asList,
  at,
  danglingReferences,
  isObject,
  PackagedStack,
  renderArn,
  REPO_ROOT,
  runServerless,
  STAGE_KEY_ARN,
  zipEntries,
  type CfnTemplate,
  type Json,
  type JsonObject,
} from './stack';

const STAGES = ['dev', 'prod'];
const PIPELINE_BUCKETS = ['ArtifactsBucket', 'ReportsBucket', 'LogsBucket'];
const FUNCTION_LOGICAL_IDS = ['TriggerLambdaFunction', 'LockLambdaFunction', 'PreProvisionLambdaFunction'];

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
];

const getAttArn = (logicalId: string): Json => ({ 'Fn::GetAtt': [logicalId, 'Arn'] });

/** `{ logicalId: pick(resource) }` for a list of resources, so a failing expectation names the resource. */
const byId = <T>(entries: [string, T][], pick: (value: T, id: string) => unknown): Record<string, unknown> =>
  Object.fromEntries(entries.map(([id, value]) => [id, pick(value, id)]));

const sameForAll = (logicalIds: string[], expected: unknown): Record<string, unknown> =>
  Object.fromEntries(logicalIds.map((id) => [id, expected]));

const ids = (entries: [string, unknown][]): string[] => entries.map(([id]) => id);

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

        expect(ids(tables)).toEqual(expect.arrayContaining(['AuditTable', 'CoordinationTable']));
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
    });

    describe('log groups', () => {
      it("encrypts every log group with the stage key and keeps it for the stage's logRetentionDays", () => {
        const logGroups = stack.resourcesOfType('AWS::Logs::LogGroup');

        expect(ids(logGroups)).toEqual(
          expect.arrayContaining([
            'TriggerLogGroup',
            'LockLogGroup',
            'PreProvisionLogGroup',
            'StateMachineLogGroup',
          ]),
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

      it('has a definition that parses and in which every Task state catches States.ALL last', () => {
        const sub = at(stateMachine(), 'DefinitionString', 'Fn::Sub');
        const text = Array.isArray(sub) ? sub[0] : sub;
        if (typeof text !== 'string') throw new Error('DefinitionString is not an Fn::Sub of a string');

        const definition = JSON.parse(text) as JsonObject;
        const tasks = allStates(definition).filter(([, state]) => state.Type === 'Task');

        expect(Object.keys(at(definition, 'States') ?? {})).toContain(definition.StartAt);
        expect(ids(tasks)).toEqual(expect.arrayContaining(['AcquireLock', 'PreProvision']));
        expect(byId(tasks, (state) => at(asList(state.Catch).at(-1), 'ErrorEquals') ?? 'no Catch')).toEqual(
          sameForAll(ids(tasks), ['States.ALL']),
        );
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
            'TriggerIamRoleLambdaExecution',
            'LockIamRoleLambdaExecution',
            'PreProvisionIamRoleLambdaExecution',
            'AmiPipelineStateMachineRole',
          ]),
        );
        expect(
          policies.flatMap(([id, policy]) =>
            iamViolations(id, policyStatements(policy), RESOURCE_STAR_ACTIONS),
          ),
        ).toEqual([]);
      });
    });

    describe('functions', () => {
      it('runs every function on nodejs22.x and arm64 with active tracing, each with a role of its own', () => {
        const functions = stack.resourcesOfType('AWS::Lambda::Function');
        const roles = functions.map(([, fn]) => JSON.stringify(at(fn.Properties, 'Role')));

        expect(ids(functions)).toEqual(expect.arrayContaining(FUNCTION_LOGICAL_IDS));
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

      it('declares no IAM role that no function or state machine uses (the framework default role is pruned)', () => {
        const roles = stack.resourcesOfType('AWS::IAM::Role').map(([id]) => id);
        const users = [
          ...stack.resourcesOfType('AWS::Lambda::Function'),
          ...stack.resourcesOfType('AWS::StepFunctions::StateMachine'),
        ].map(([, resource]) =>
          JSON.stringify(at(resource.Properties, 'Role') ?? at(resource.Properties, 'RoleArn')),
        );

        expect(roles).not.toContain('IamRoleLambdaExecution');
        expect(roles.filter((id) => !users.some((used) => used.includes(`"${id}"`)))).toEqual([]);
      });

      it('lets the trigger start executions, queue rejections and record them in the audit table', () => {
        const statements = roleStatements('TriggerIamRoleLambdaExecution');

        expect(resourcesGranted(statements, 'states:StartExecution')).toEqual([
          { Ref: 'AmiPipelineStateMachine' },
        ]);
        expect(resourcesGranted(statements, 'sqs:SendMessage')).toEqual(
          expect.arrayContaining([getAttArn('RejectionsQueue'), getAttArn('TriggerDeadLetterQueue')]),
        );
        expect(resourcesGranted(statements, 'dynamodb:PutItem')).toEqual([getAttArn('AuditTable')]);
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

        expect(zips).toEqual({
          TriggerLambdaFunction: 'trigger.zip',
          LockLambdaFunction: 'lock.zip',
          PreProvisionLambdaFunction: 'preProvision.zip',
        });
        expect(Object.values(zips).filter((zip) => !stack.hasArtifact(String(zip)))).toEqual([]);
      });

      it("ships pre-provision with the platform rules and this stage's config, and no other stage's", async () => {
        const entries = await zipEntries(stack.artifact('preProvision.zip'));

        expect(entries).toContain('functions/pre-provision/handler.js');
        expect(entries.filter((entry) => entry.startsWith('config/')).sort()).toEqual(
          [`config/${stage}.yml`, 'config/rules.yml'].sort(),
        );
      });
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
