// First import: the handler module reads its environment (requireEnv) when it is loaded.
import { TEST_ENV } from './support/env';
import { createHash } from 'node:crypto';
import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  ExecutionDoesNotExist,
  SFNClient,
  StartExecutionCommand,
  StateMachineDoesNotExist,
} from '@aws-sdk/client-sfn';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { run } from '../../functions/trigger/handler';
import { AuditRepository } from '../../shared/audit';
import { TriggerClaims } from '../../shared/trigger/claim';
import type { TriggerDeps } from '../../shared/trigger/handle';
import {
  ARTIFACTS_BUCKET,
  EXECUTION_ARN_PREFIX,
  TOPIC_ARN,
  expectedRunId,
  sampleAppConfig,
  sha256Of,
  snsEvent,
  triggerMessage,
} from './support/fixtures';

const sfnMock = mockClient(SFNClient);
const sqsMock = mockClient(SQSClient);
const s3Mock = mockClient(S3Client);
const dbMock = mockClient(DynamoDBDocumentClient);

const NOW = '2025-03-04T10:00:01.000Z';
const BUILD_ID = 'sample-app-release#118';
const RUN_ID = expectedRunId('sample-app', 'dev', BUILD_ID);
const EXECUTION_NAME = `sample-app-dev-${RUN_ID}`;
const EXECUTION_ARN = `${EXECUTION_ARN_PREFIX}:${EXECUTION_NAME}`;

const deps: TriggerDeps = {
  ctx: { stage: 'dev', artifactsBucket: ARTIFACTS_BUCKET },
  maxMessageBytes: 65536,
  stateMachineArn: TEST_ENV.STATE_MACHINE_ARN,
  rejectionsQueueUrl: TEST_ENV.REJECTIONS_QUEUE_URL,
  audit: new AuditRepository(DynamoDBDocumentClient.from(new DynamoDBClient({})), TEST_ENV.AUDIT_TABLE),
  claims: new TriggerClaims({
    db: DynamoDBDocumentClient.from(new DynamoDBClient({})),
    tableName: TEST_ENV.COORDINATION_TABLE,
    leaseSeconds: 300,
    retentionSeconds: 604800,
  }),
  sfn: new SFNClient({}),
  sqs: new SQSClient({}),
  s3: new S3Client({}),
  now: () => new Date(NOW),
};

/** The execution input the contract promises for `triggerMessage()` with its config in S3. */
const expectedInput = (overrides: Record<string, unknown> = {}) => ({
  schemaVersion: 1,
  runId: RUN_ID,
  appId: 'sample-app',
  environment: 'dev',
  version: '1.4.2',
  buildId: BUILD_ID,
  kind: 'release',
  appConfigUri: `s3://${ARTIFACTS_BUCKET}/inputs/sample-app/118/app-config.yml`,
  artifact: {
    s3Uri: `s3://${ARTIFACTS_BUCKET}/inputs/sample-app/118/sample-app-1.4.2.tgz`,
    sha256: 'c'.repeat(64),
  },
  requestedBy: 'jenkins@ci.example.com',
  ...overrides,
});

const startedInputs = (): unknown[] =>
  sfnMock.commandCalls(StartExecutionCommand).map((call) => JSON.parse(call.args[0].input.input ?? 'null'));

const queuedBodies = (): Record<string, unknown>[] =>
  sqsMock.commandCalls(SendMessageCommand).map((call) => JSON.parse(call.args[0].input.MessageBody ?? '{}'));

const auditItems = (): Record<string, unknown>[] =>
  dbMock
    .commandCalls(PutCommand)
    .filter((call) => call.args[0].input.TableName === TEST_ENV.AUDIT_TABLE)
    .map((call) => call.args[0].input.Item ?? {});

/** The claim's update (shared/trigger/claim.ts), as the coordination table receives it. */
const CLAIM_UPDATE =
  'SET kind = :kind, holder = :me, claimedAt = if_not_exists(claimedAt, :at), leaseUntil = :lease, expiresAt = :expires';

/** The claims written to the coordination table: key and values of each claim update. */
const claims = (): Record<string, unknown>[] =>
  dbMock
    .commandCalls(UpdateCommand, { TableName: TEST_ENV.COORDINATION_TABLE, UpdateExpression: CLAIM_UPDATE })
    .map((call) => ({ ...call.args[0].input.Key, ...call.args[0].input.ExpressionAttributeValues }));

beforeEach(() => {
  sfnMock.on(StartExecutionCommand).resolves({ executionArn: EXECUTION_ARN, startDate: new Date(NOW) });
  sqsMock.on(SendMessageCommand).resolves({ MessageId: 'rejection-queue-message-1' });
  s3Mock.on(PutObjectCommand).resolves({});
  dbMock.on(PutCommand).resolves({});
  dbMock.on(UpdateCommand).resolves({});
});

afterEach(() => {
  sfnMock.reset();
  sqsMock.reset();
  s3Mock.reset();
  dbMock.reset();
});

describe('trigger worker', () => {
  describe('with a valid message', () => {
    it('starts one execution named <appId>-<environment>-<runId> with exactly the validated input', async () => {
      const event = snsEvent(JSON.stringify(triggerMessage()));

      const outcomes = await run(event, deps);

      expect(outcomes).toEqual([
        { status: 'STARTED', executionArn: EXECUTION_ARN, executionName: EXECUTION_NAME, runId: RUN_ID },
      ]);
      expect(sfnMock).toHaveReceivedCommandTimes(StartExecutionCommand, 1);
      expect(sfnMock).toHaveReceivedCommandWith(StartExecutionCommand, {
        stateMachineArn: TEST_ENV.STATE_MACHINE_ARN,
        name: EXECUTION_NAME,
      });
      expect(startedInputs()).toEqual([expectedInput()]);
      expect(sqsMock).toHaveReceivedCommandTimes(SendMessageCommand, 0);
      expect(s3Mock).toHaveReceivedCommandTimes(PutObjectCommand, 0);
      expect(auditItems()).toEqual([]);
    });

    it('keeps an execution name within the 80 characters Step Functions allows for the longest appId', async () => {
      const appId = `a${'b'.repeat(38)}c`;
      const message = triggerMessage({
        appId,
        appConfig: { s3Uri: `s3://${ARTIFACTS_BUCKET}/inputs/${appId}/app-config.yml` },
        artifact: { s3Uri: `s3://${ARTIFACTS_BUCKET}/inputs/${appId}/app.tgz`, sha256: 'c'.repeat(64) },
      });

      await run(snsEvent(JSON.stringify(message)), deps);

      const name = sfnMock.commandCalls(StartExecutionCommand)[0]?.args[0].input.name ?? '';
      expect(name).toBe(`${appId}-dev-${expectedRunId(appId, 'dev', BUILD_ID)}`);
      expect(name.length).toBeLessThanOrEqual(80);
    });

    it('stores an inline app config under inputs/<appId>/<runId>/ and passes only its URI to the execution', async () => {
      const appConfig = sampleAppConfig();
      appConfig.bake = {
        ...(appConfig.bake as Record<string, unknown>),
        chefAttributes: { sample_app: { db_password: 'planted-inline-secret-7f3a' } },
      };
      const raw = JSON.stringify(triggerMessage({ appConfig }));

      await run(snsEvent(raw), deps);

      const digest = createHash('sha256').update(JSON.stringify(appConfig)).digest('hex').slice(0, 16);
      const key = `inputs/sample-app/${RUN_ID}/app-config-${digest}.json`;
      expect(s3Mock).toHaveReceivedCommandTimes(PutObjectCommand, 1);
      expect(s3Mock).toHaveReceivedCommandWith(PutObjectCommand, {
        Bucket: ARTIFACTS_BUCKET,
        Key: key,
        ContentType: 'application/json',
      });
      const body = s3Mock.commandCalls(PutObjectCommand)[0]?.args[0].input.Body;
      expect(JSON.parse(String(body))).toEqual(appConfig);
      expect(startedInputs()).toEqual([expectedInput({ appConfigUri: `s3://${ARTIFACTS_BUCKET}/${key}` })]);
      const startInput = sfnMock.commandCalls(StartExecutionCommand)[0]?.args[0].input.input ?? '';
      expect(startInput).not.toContain('planted-inline-secret-7f3a');
      expect(startInput).not.toContain('chefAttributes');
    });

    it('accepts a base-image-update the same way as a release', async () => {
      const event = snsEvent(JSON.stringify(triggerMessage({ kind: 'base-image-update' })));

      const [outcome] = await run(event, deps);

      expect(outcome?.status).toBe('STARTED');
      expect(startedInputs()).toEqual([expectedInput({ kind: 'base-image-update' })]);
    });

    it('falls back to the execution ARN derived from the state machine ARN when none is returned', async () => {
      sfnMock.on(StartExecutionCommand).resolves({});

      const [outcome] = await run(snsEvent(JSON.stringify(triggerMessage())), deps);

      expect(outcome).toEqual({
        status: 'STARTED',
        executionArn: EXECUTION_ARN,
        executionName: EXECUTION_NAME,
        runId: RUN_ID,
      });
    });

    it('gives every build of an app a run of its own', async () => {
      const first = JSON.stringify(triggerMessage());
      const second = JSON.stringify(triggerMessage({ buildId: 'sample-app-release#119' }));

      const outcomes = await run(snsEvent(first, second), deps);

      expect(outcomes.map((o) => o.status)).toEqual(['STARTED', 'STARTED']);
      expect(sfnMock).toHaveReceivedCommandTimes(StartExecutionCommand, 2);
      expect(sfnMock).toHaveReceivedNthSpecificCommandWith(2, StartExecutionCommand, {
        name: `sample-app-dev-${expectedRunId('sample-app', 'dev', 'sample-app-release#119')}`,
      });
    });
  });

  describe('with a message that breaks the contract', () => {
    const withoutField = (field: string): string => {
      const message = triggerMessage();
      delete message[field];
      return JSON.stringify(message);
    };
    const valid = triggerMessage();
    const oversize = JSON.stringify(
      triggerMessage({ appConfig: { ...sampleAppConfig(), padding: 'x'.repeat(65536) } }),
    );

    it.each([
      ['bad JSON', '{"schemaVersion": 1, "appId": ', '(message): is not valid JSON'],
      ['a missing field', withoutField('buildId'), 'buildId: is required (string)'],
      [
        'a field of the wrong type',
        JSON.stringify(triggerMessage({ version: 142 })),
        'version: Invalid input: expected string, received number',
      ],
      [
        'a wrong schemaVersion',
        JSON.stringify(triggerMessage({ schemaVersion: 2 })),
        'schemaVersion: Invalid input: expected 1',
      ],
      [
        'an appId that breaks the pattern',
        JSON.stringify(triggerMessage({ appId: 'Sample_App' })),
        'appId: must match ^[a-z][a-z0-9-]{1,38}[a-z0-9]$',
      ],
      [
        'a version that breaks the pattern',
        JSON.stringify(triggerMessage({ version: '1.4.2 beta' })),
        'version: must match ^[A-Za-z0-9._-]{1,64}$',
      ],
      [
        'the environment of another stage',
        JSON.stringify(triggerMessage({ environment: 'prod' })),
        'environment: must be "dev" (the stage this message was sent to)',
      ],
      [
        'an unknown kind',
        JSON.stringify(triggerMessage({ kind: 'hotfix' })),
        'kind: Invalid option: expected one of "release"|"base-image-update"',
      ],
      [
        'an artifact checksum that is not SHA-256',
        JSON.stringify(triggerMessage({ artifact: { ...(valid.artifact as object), sha256: 'ABC' } })),
        'artifact.sha256: must be 64 lowercase hex characters (SHA-256)',
      ],
      ['a message over the size limit', oversize, `(message): is ${Buffer.byteLength(oversize)} bytes`],
      [
        'an artifact outside the artifacts bucket',
        JSON.stringify(
          triggerMessage({
            artifact: {
              s3Uri: 's3://someone-elses-bucket/inputs/sample-app/app.tgz',
              sha256: 'c'.repeat(64),
            },
          }),
        ),
        "artifact.s3Uri: must be in the stage's artifacts bucket s3://ami-pipeline-dev-artifacts/",
      ],
      [
        'an artifact outside inputs/<appId>/',
        JSON.stringify(
          triggerMessage({
            artifact: { s3Uri: `s3://${ARTIFACTS_BUCKET}/inputs/other-app/app.tgz`, sha256: 'c'.repeat(64) },
          }),
        ),
        'artifact.s3Uri: must start with s3://ami-pipeline-dev-artifacts/inputs/sample-app/',
      ],
      [
        'an app config outside inputs/<appId>/',
        JSON.stringify(
          triggerMessage({
            appConfig: { s3Uri: `s3://${ARTIFACTS_BUCKET}/inputs/other-app/app-config.yml` },
          }),
        ),
        'appConfig.s3Uri: must start with s3://ami-pipeline-dev-artifacts/inputs/sample-app/',
      ],
      [
        'a ".." segment that climbs out of inputs/<appId>/',
        JSON.stringify(
          triggerMessage({
            artifact: {
              s3Uri: `s3://${ARTIFACTS_BUCKET}/inputs/sample-app/../other-app/app.tgz`,
              sha256: 'c'.repeat(64),
            },
          }),
        ),
        'artifact.s3Uri: must not contain "." or ".." path segments',
      ],
      [
        'an unknown extra field',
        JSON.stringify(triggerMessage({ priority: 'high' })),
        '(message): unknown field(s) "priority" (not in schemaVersion 1)',
      ],
    ])(
      'rejects %s, naming the field and rule, and keeps it in the queue and the audit table',
      async (_case, raw, violation) => {
        const outcomes = await run(snsEvent(raw), deps);

        expect(outcomes).toEqual([{ status: 'REJECTED', reason: expect.stringContaining(violation) }]);
        expect(sfnMock).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
        expect(s3Mock).toHaveReceivedCommandTimes(PutObjectCommand, 0);
        expect(sqsMock).toHaveReceivedCommandTimes(SendMessageCommand, 1);
        expect(sqsMock).toHaveReceivedCommandWith(SendMessageCommand, {
          QueueUrl: TEST_ENV.REJECTIONS_QUEUE_URL,
        });
        expect(queuedBodies()).toEqual([
          {
            reason: expect.stringContaining(violation),
            violations: expect.arrayContaining([expect.stringContaining(violation)]),
            environment: 'dev',
            receivedAt: NOW,
            snsMessageId: 'sns-message-1',
            topicArn: TOPIC_ARN,
            publishedAt: '2025-03-04T10:00:00.000Z',
            message: raw,
          },
        ]);
        expect(auditItems()).toHaveLength(1);
        expect(claims()).toEqual([]);
        expect(dbMock).toHaveReceivedCommandWith(PutCommand, {
          TableName: TEST_ENV.AUDIT_TABLE,
          ConditionExpression: 'attribute_not_exists(pk)',
          Item: expect.objectContaining({
            pk: 'REJECTED#dev',
            sk: `${NOW}#sns-message-1`,
            entity: 'REJECTION',
            status: 'REJECTED',
            reason: expect.stringContaining(violation),
            messageSha256: sha256Of(raw),
            queueMessageId: 'rejection-queue-message-1',
          }),
        });
      },
    );

    it('lists every violation of a message in one rejection', async () => {
      const raw = JSON.stringify(triggerMessage({ version: '', environment: 'prod', extra: true }));

      const [outcome] = await run(snsEvent(raw), deps);

      expect(outcome?.status).toBe('REJECTED');
      expect(queuedBodies()[0]?.violations).toEqual([
        'environment: must be "dev" (the stage this message was sent to)',
        'version: must match ^[A-Za-z0-9._-]{1,64}$',
        '(message): unknown field(s) "extra" (not in schemaVersion 1)',
      ]);
    });

    it('indexes the rejection by appId and buildId when those fields are themselves well-formed', async () => {
      const raw = JSON.stringify(triggerMessage({ version: '1.4.2 beta' }));

      await run(snsEvent(raw), deps);

      expect(auditItems()[0]).toMatchObject({ appId: 'sample-app', buildId: BUILD_ID });
      expect(sqsMock).toHaveReceivedCommandWith(SendMessageCommand, {
        MessageAttributes: {
          reason: { DataType: 'String', StringValue: 'version: must match ^[A-Za-z0-9._-]{1,64}$' },
          appId: { DataType: 'String', StringValue: 'sample-app' },
        },
      });
    });

    it('leaves a malformed appId out of the audit index and keeps only an excerpt of a large message', async () => {
      const raw = JSON.stringify(
        triggerMessage({ appId: 'Sample_App', requestedBy: `x${'y'.repeat(3000)}` }),
      );

      await run(snsEvent(raw), deps);

      const item = auditItems()[0] ?? {};
      expect(item.appId).toBeUndefined();
      expect(item.buildId).toBe(BUILD_ID);
      expect(item.excerpt).toBe(`${raw.slice(0, 2048)}…[truncated]`);
      expect(queuedBodies()[0]?.message).toBe(raw);
    });

    it('propagates a failure to queue the rejection so Lambda retries the delivery', async () => {
      sqsMock.on(SendMessageCommand).rejects(new Error('queue unavailable'));

      await expect(run(snsEvent('not json'), deps)).rejects.toThrow('queue unavailable');
      expect(auditItems()).toEqual([]);
    });
  });

  describe('when the execution name already exists', () => {
    const alreadyExists = () =>
      new ExecutionAlreadyExists({ message: 'Execution Already Exists', $metadata: {} });

    it('treats an SNS redelivery of the same message as a duplicate and rejects nothing', async () => {
      sfnMock.on(StartExecutionCommand).rejects(alreadyExists());
      // Key order differs from what the worker sends: the comparison is by content, not by text.
      const { runId, ...rest } = expectedInput();
      sfnMock
        .on(DescribeExecutionCommand)
        .resolves({ input: JSON.stringify({ ...rest, runId }), status: 'RUNNING' });

      const outcomes = await run(snsEvent(JSON.stringify(triggerMessage())), deps);

      expect(outcomes).toEqual([
        { status: 'DUPLICATE', executionArn: EXECUTION_ARN, executionName: EXECUTION_NAME, runId: RUN_ID },
      ]);
      expect(sfnMock).toHaveReceivedCommandWith(DescribeExecutionCommand, { executionArn: EXECUTION_ARN });
      expect(sqsMock).toHaveReceivedCommandTimes(SendMessageCommand, 0);
      expect(auditItems()).toEqual([]);
    });

    it('rejects a reused build id with different content, naming buildId', async () => {
      sfnMock.on(StartExecutionCommand).rejects(alreadyExists());
      sfnMock
        .on(DescribeExecutionCommand)
        .resolves({ input: JSON.stringify(expectedInput({ version: '1.4.1' })), status: 'SUCCEEDED' });

      const outcomes = await run(snsEvent(JSON.stringify(triggerMessage())), deps);

      const reason = `buildId: "${BUILD_ID}" already started execution ${EXECUTION_NAME} with different content; use a new build id`;
      expect(outcomes).toEqual([{ status: 'REJECTED', reason }]);
      expect(sqsMock).toHaveReceivedCommandTimes(SendMessageCommand, 1);
      expect(queuedBodies()[0]).toMatchObject({ reason, violations: [reason] });
      expect(auditItems()).toEqual([
        expect.objectContaining({
          pk: 'REJECTED#dev',
          status: 'REJECTED',
          appId: 'sample-app',
          buildId: BUILD_ID,
          reason,
        }),
      ]);
    });

    it('rejects as a conflict when the existing execution input cannot be read', async () => {
      sfnMock.on(StartExecutionCommand).rejects(alreadyExists());
      sfnMock.on(DescribeExecutionCommand).resolves({ status: 'RUNNING' });

      const [outcome] = await run(snsEvent(JSON.stringify(triggerMessage())), deps);

      expect(outcome).toEqual({
        status: 'REJECTED',
        reason: expect.stringContaining(`buildId: "${BUILD_ID}"`),
      });
    });
  });

  describe('with a malformed or misplaced S3 reference', () => {
    it.each([
      [
        'an app config in another bucket',
        { appConfig: { s3Uri: 's3://someone-elses-bucket/inputs/sample-app/c.yml' } },
        "appConfig.s3Uri: must be in the stage's artifacts bucket",
      ],
      [
        'an app config path with ..',
        { appConfig: { s3Uri: `s3://${ARTIFACTS_BUCKET}/inputs/sample-app/../other-app/c.yml` } },
        'appConfig.s3Uri: must not contain',
      ],
      [
        'an artifact URI that is not s3://',
        { artifact: { s3Uri: 'https://example.com/app.tgz', sha256: 'c'.repeat(64) } },
        'artifact.s3Uri: must be an s3://bucket/key URI',
      ],
      [
        'an app config URI with a space',
        { appConfig: { s3Uri: `s3://${ARTIFACTS_BUCKET}/inputs/sample-app/my config.yml` } },
        'appConfig.s3Uri: must be an s3://bucket/key URI',
      ],
    ])(
      'rejects %s, naming the field and the rule, instead of failing the invocation',
      async (_case, overrides, violation) => {
        const outcomes = await run(snsEvent(JSON.stringify(triggerMessage(overrides))), deps);

        expect(outcomes).toEqual([{ status: 'REJECTED', reason: expect.stringContaining(violation) }]);
        expect(sfnMock).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
        expect(sqsMock).toHaveReceivedCommandTimes(SendMessageCommand, 1);
      },
    );
  });

  describe('with a reused build id and a different inline app config', () => {
    it('rejects it as a conflict and leaves the first run its own config object', async () => {
      const first = sampleAppConfig();
      const second = { ...sampleAppConfig(), shareWithAccountId: '999999999999' };
      await run(snsEvent(JSON.stringify(triggerMessage({ appConfig: first }))), deps);
      const firstInput = sfnMock.commandCalls(StartExecutionCommand)[0]?.args[0].input.input;
      sfnMock
        .on(StartExecutionCommand)
        .rejects(new ExecutionAlreadyExists({ message: 'Execution Already Exists', $metadata: {} }));
      sfnMock.on(DescribeExecutionCommand).resolves({ input: firstInput, status: 'RUNNING' });

      const [outcome] = await run(snsEvent(JSON.stringify(triggerMessage({ appConfig: second }))), deps);

      expect(outcome).toEqual({
        status: 'REJECTED',
        reason: expect.stringMatching(/^buildId: .*different content/),
      });
      const keys = s3Mock.commandCalls(PutObjectCommand).map((call) => call.args[0].input.Key);
      expect(keys).toHaveLength(2);
      expect(new Set(keys).size).toBe(2);
    });
  });

  describe('when Step Functions fails for another reason', () => {
    it('throws, so Lambda retries and the DLQ keeps the message, and records no rejection', async () => {
      sfnMock
        .on(StartExecutionCommand)
        .rejects(new StateMachineDoesNotExist({ message: 'State Machine Does Not Exist', $metadata: {} }));

      await expect(run(snsEvent(JSON.stringify(triggerMessage())), deps)).rejects.toThrow(
        StateMachineDoesNotExist,
      );
      expect(sfnMock).toHaveReceivedCommandTimes(DescribeExecutionCommand, 0);
      expect(sqsMock).toHaveReceivedCommandTimes(SendMessageCommand, 0);
      expect(auditItems()).toEqual([]);
    });

    it('throws when the existing execution cannot be described', async () => {
      sfnMock
        .on(StartExecutionCommand)
        .rejects(new ExecutionAlreadyExists({ message: 'Execution Already Exists', $metadata: {} }));
      sfnMock.on(DescribeExecutionCommand).rejects(new Error('throttled'));

      await expect(run(snsEvent(JSON.stringify(triggerMessage())), deps)).rejects.toThrow('throttled');
      expect(sqsMock).toHaveReceivedCommandTimes(SendMessageCommand, 0);
    });
  });
});

describe('trigger worker with a base-image update for the environment', () => {
  const SOE = '/soe/amazon-linux-2023/latest';
  const update = {
    schemaVersion: 1,
    environment: 'dev',
    buildId: 'soe-118',
    kind: 'base-image-update',
    baseImage: { ssmParameter: SOE },
    requestedBy: 'soe-pipeline@example.com',
  };
  const live = (appId: string, ssmParameter: string) => ({
    pk: 'LIVE#dev',
    sk: `APP#${appId}`,
    appId,
    version: '2.0.0',
    baseImage: { ssmParameter },
    appConfigUri: `s3://${ARTIFACTS_BUCKET}/inputs/${appId}/7/app-config.yml`,
    artifact: { s3Uri: `s3://${ARTIFACTS_BUCKET}/inputs/${appId}/7/app.tgz`, sha256: 'd'.repeat(64) },
  });

  it('starts one run per app live on that image, with the live version, app config and artifact', async () => {
    dbMock.on(QueryCommand).resolves({
      Items: [live('app-one', SOE), live('app-two', '/soe/rhel9/latest'), live('app-three', SOE)],
    });

    const [outcome] = await run(snsEvent(JSON.stringify(update)), deps);

    expect(dbMock).toHaveReceivedCommandWith(QueryCommand, {
      TableName: TEST_ENV.AUDIT_TABLE,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': 'LIVE#dev' },
    });
    expect(outcome).toMatchObject({
      status: 'FANNED_OUT',
      baseImage: SOE,
      runs: [
        {
          appId: 'app-one',
          status: 'STARTED',
          executionName: `app-one-dev-${expectedRunId('app-one', 'dev', 'soe-118')}`,
        },
        {
          appId: 'app-three',
          status: 'STARTED',
          executionName: `app-three-dev-${expectedRunId('app-three', 'dev', 'soe-118')}`,
        },
      ],
    });
    expect(startedInputs()).toEqual([
      expect.objectContaining({
        appId: 'app-one',
        kind: 'base-image-update',
        version: '2.0.0',
        buildId: 'soe-118',
        appConfigUri: live('app-one', SOE).appConfigUri,
      }),
      expect.objectContaining({
        appId: 'app-three',
        kind: 'base-image-update',
        version: '2.0.0',
        buildId: 'soe-118',
      }),
    ]);
    expect(sqsMock).toHaveReceivedCommandTimes(SendMessageCommand, 0);
  });

  it('starts nothing when no live release uses that image', async () => {
    dbMock.on(QueryCommand).resolves({ Items: [live('app-two', '/soe/rhel9/latest')] });

    const [outcome] = await run(snsEvent(JSON.stringify(update)), deps);

    expect(outcome).toEqual({ status: 'FANNED_OUT', baseImage: SOE, runs: [] });
    expect(sfnMock).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it('rejects an update whose image is not an SSM parameter name, naming the field', async () => {
    const [outcome] = await run(
      snsEvent(JSON.stringify({ ...update, baseImage: { ssmParameter: 'soe;reboot' } })),
      deps,
    );

    expect(outcome).toEqual({
      status: 'REJECTED',
      reason: expect.stringContaining('baseImage.ssmParameter: must be an SSM parameter name'),
    });
    expect(sfnMock).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });
});

describe('trigger worker keeping a rejected inline app config out of the audit table', () => {
  it('stores the excerpt with the app config replaced by its hash, and the whole message in the queue', async () => {
    const appConfig = {
      ...sampleAppConfig(),
      bake: { chefAttributes: { password: 'planted-rejected-secret' } },
    };
    const raw = JSON.stringify({ ...triggerMessage({ appConfig }), appId: 'Bad_App' });

    await run(snsEvent(raw), deps);

    expect(JSON.stringify(auditItems())).not.toContain('planted-rejected-secret');
    expect(String(auditItems()[0]?.excerpt)).toContain('"redacted":true');
    expect(queuedBodies()[0]?.message).toBe(raw);
  });
});

describe('trigger worker keeping an inline app config out of the audit table however the message is broken', () => {
  const SECRET = 'planted-excerpt-secret';
  const inline = { ...sampleAppConfig(), bake: { chefAttributes: { password: SECRET } } };

  it('rebuilds the excerpt from the parsed message: a duplicated appConfig cannot hide an inline one', async () => {
    const raw = JSON.stringify(triggerMessage()).replace(
      '"appConfig":{',
      `"appConfig":${JSON.stringify(inline)},"appConfig":{`,
    );

    await run(snsEvent(raw), deps);

    expect(String(auditItems()[0]?.violations)).toContain('appConfig: duplicated key');
    expect(JSON.stringify(auditItems())).not.toContain(SECRET);
    expect(queuedBodies()[0]?.message).toBe(raw);
  });

  it('keeps the text of a message that is not JSON only up to where an inline config could begin', async () => {
    const whole = JSON.stringify(triggerMessage({ appConfig: inline }));
    const raw = whole.slice(0, whole.indexOf(SECRET) + SECRET.length + 2);

    await run(snsEvent(raw), deps);

    expect(JSON.stringify(auditItems())).not.toContain('planted');
    expect(auditItems()[0]?.excerpt).toBe(
      `${raw.slice(0, raw.indexOf('appConfig'))}…[rest not kept: it may hold an inline app config]`,
    );
    expect(queuedBodies()[0]?.message).toBe(raw);
  });

  it('redacts the inline config of every message in an array', async () => {
    const raw = JSON.stringify([triggerMessage({ appConfig: inline })]);

    await run(snsEvent(raw), deps);

    expect(JSON.stringify(auditItems())).not.toContain(SECRET);
    expect(String(auditItems()[0]?.excerpt)).toContain('"redacted":true');
  });
});

describe('trigger worker: one start per build (the claim)', () => {
  const claimHeld = () =>
    dbMock
      .on(UpdateCommand, { TableName: TEST_ENV.COORDINATION_TABLE, UpdateExpression: CLAIM_UPDATE })
      .rejects(
        new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }),
      );

  it('claims TRIGGER#<execution name> for this invocation before starting, then marks it started', async () => {
    const outcomes = await run(snsEvent(JSON.stringify(triggerMessage())), deps, 'request-1');

    expect(outcomes).toMatchObject([{ status: 'STARTED' }]);
    expect(claims()).toEqual([
      {
        pk: `TRIGGER#${EXECUTION_NAME}`,
        ':kind': 'TRIGGER',
        ':me': 'request-1',
        ':at': NOW,
        ':lease': Math.floor(Date.parse(NOW) / 1000) + 300,
        ':expires': Math.floor(Date.parse(NOW) / 1000) + 604800,
        ':now': Math.floor(Date.parse(NOW) / 1000),
      },
    ]);
    expect(dbMock).toHaveReceivedCommandWith(UpdateCommand, {
      TableName: TEST_ENV.COORDINATION_TABLE,
      UpdateExpression: CLAIM_UPDATE,
      // Free, this invocation's own (a Lambda retry keeps the request id), or abandoned unstarted.
      ConditionExpression:
        'attribute_not_exists(pk) OR holder = :me OR (attribute_not_exists(startedAt) AND leaseUntil < :now)',
    });
    expect(dbMock).toHaveReceivedCommandWith(UpdateCommand, {
      TableName: TEST_ENV.COORDINATION_TABLE,
      Key: { pk: `TRIGGER#${EXECUTION_NAME}` },
      UpdateExpression: 'SET startedAt = :at',
      ConditionExpression: 'holder = :me',
    });
    const [claim] = dbMock.commandCalls(UpdateCommand, { UpdateExpression: CLAIM_UPDATE });
    const [start] = sfnMock.commandCalls(StartExecutionCommand);
    expect(claim && start && claim.calledBefore(start)).toBe(true);
  });

  it('reports a delivery whose build another invocation claimed and started as DUPLICATE, starting nothing', async () => {
    claimHeld();
    sfnMock
      .on(DescribeExecutionCommand)
      .resolves({ input: JSON.stringify(expectedInput()), status: 'RUNNING' });

    const outcomes = await run(snsEvent(JSON.stringify(triggerMessage())), deps, 'request-2');

    expect(outcomes).toEqual([
      { status: 'DUPLICATE', executionArn: EXECUTION_ARN, executionName: EXECUTION_NAME, runId: RUN_ID },
    ]);
    expect(sfnMock).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
    expect(auditItems()).toEqual([]);
  });

  it('leaves a delivery whose build is claimed but not started yet to Lambda’s retry, rejecting nothing', async () => {
    claimHeld();
    sfnMock
      .on(DescribeExecutionCommand)
      .rejects(new ExecutionDoesNotExist({ message: 'Execution Does Not Exist', $metadata: {} }));

    await expect(run(snsEvent(JSON.stringify(triggerMessage())), deps, 'request-3')).rejects.toMatchObject({
      name: 'StartInProgressError',
      message: expect.stringContaining(EXECUTION_NAME),
    });
    expect(sfnMock).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
    expect(sqsMock).toHaveReceivedCommandTimes(SendMessageCommand, 0);
    expect(auditItems()).toEqual([]);
  });

  it('still reports STARTED when the claim passed to another delivery meanwhile, and says so', async () => {
    dbMock
      .on(UpdateCommand, { UpdateExpression: 'SET startedAt = :at' })
      .rejects(
        new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }),
      );

    const outcomes = await run(snsEvent(JSON.stringify(triggerMessage())), deps, 'request-4');

    expect(outcomes).toMatchObject([{ status: 'STARTED', executionName: EXECUTION_NAME }]);
  });
});
