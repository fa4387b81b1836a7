import { TEST_ENV } from './support/env';
import { DynamoDBClient, ProvisionedThroughputExceededException } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, NoSuchKey, S3Client } from '@aws-sdk/client-s3';
import { SendTaskFailureCommand, SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import { ListCommandInvocationsCommand, ListCommandsCommand, SSMClient } from '@aws-sdk/client-ssm';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { AuditRepository } from '../../shared/audit';
import { completeCommand, type CompletionDeps } from '../../shared/commands/complete';
import type { CommandStep } from '../../shared/commands/contract';
import { TaskStore, type CommandTask } from '../../shared/commands/tasks';
import { BUILD_ID, EXECUTION_ARN, RUN_ID, s3Body } from './support/fixtures';

const dbMock = mockClient(DynamoDBDocumentClient);
const sfnMock = mockClient(SFNClient);
const ssmMock = mockClient(SSMClient);
const s3Mock = mockClient(S3Client);

const NOW = '2025-03-04T10:48:00.000Z';
const COMMAND_ID = '5b7c1a2e-3f4d-4e5f-8a9b-0c1d2e3f4a5b';
const BUILDER = 'i-0123456789abcdef0';
const TOKEN = 'AQCEAAAAKgAAAAMAAAAAAAAAA-waiting-task-token';
const ARTIFACTS = TEST_ENV.ARTIFACTS_BUCKET;
const COORDINATION = TEST_ENV.COORDINATION_TABLE;
const AUDIT = TEST_ENV.AUDIT_TABLE;

const db = DynamoDBDocumentClient.from(new DynamoDBClient({}));
const deps: CompletionDeps = {
  tasks: new TaskStore(db, COORDINATION),
  sfn: new SFNClient({}),
  ssm: new SSMClient({}),
  s3: new S3Client({}),
  audit: new AuditRepository(db, AUDIT),
  stage: 'dev',
  artifactsBucket: ARTIFACTS,
  reportsBucket: TEST_ENV.REPORTS_BUCKET,
  now: () => new Date(NOW),
};

const BAKE_RESULT = {
  amiId: 'ami-0a1b2c3d4e5f60718',
  snapshotIds: ['snap-0a1b2c3d4e5f60718', 'snap-0b1c2d3e4f5a60819'],
  region: 'eu-west-1',
};
/** The run item pre-provision wrote (what findRun returns). */
const RUN_ITEM = {
  pk: 'APP#sample-app',
  sk: `RUN#2025-03-04T10:00:02.000Z#${RUN_ID}`,
  entity: 'RUN',
  runId: RUN_ID,
  appId: 'sample-app',
  environment: 'dev',
  version: '1.4.2',
  buildId: BUILD_ID,
  kind: 'release',
  executionArn: EXECUTION_ARN,
  status: 'RUNNING',
};

const task = (overrides: Partial<CommandTask> = {}): CommandTask => ({
  runId: RUN_ID,
  appId: 'sample-app',
  environment: 'dev',
  step: 'bake',
  mode: 'run',
  executionArn: EXECUTION_ARN,
  taskToken: TOKEN,
  status: 'PENDING',
  commandId: COMMAND_ID,
  instanceId: BUILDER,
  createdAt: '2025-03-04T10:06:00.000Z',
  expiresAt: 1741687560,
  ...overrides,
});

const taskKey = (step: CommandStep) => ({ pk: `TASK#${RUN_ID}#${step}` });
const resultKey = (step: CommandStep) => `dev/sample-app/${RUN_ID}/${step}/result.json`;
/** The coordination table holds `waiting` and the COMMAND pointer from its command to it. */
const givenWaiting = (waiting: CommandTask): void => {
  dbMock
    .on(GetCommand, { TableName: COORDINATION, Key: { pk: `COMMAND#${COMMAND_ID}` } })
    .resolves({ Item: { pk: `COMMAND#${COMMAND_ID}`, kind: 'COMMAND', runId: RUN_ID, step: waiting.step } });
  dbMock.on(GetCommand, { TableName: COORDINATION, Key: taskKey(waiting.step) }).resolves({ Item: waiting });
};

const givenResult = (step: CommandStep, text: string): void => {
  s3Mock.on(GetObjectCommand, { Bucket: ARTIFACTS, Key: resultKey(step) }).resolves({ Body: s3Body(text) });
};

const completionUpdate = () =>
  dbMock
    .commandCalls(UpdateCommand)
    .map((call) => call.args[0].input)
    .find((input) => input.UpdateExpression?.includes('REMOVE pendingPk'));

beforeEach(() => {
  dbMock.on(GetCommand).resolves({});
  dbMock.on(PutCommand).resolves({});
  dbMock.on(UpdateCommand).resolves({});
  dbMock.on(QueryCommand).resolves({ Items: [RUN_ITEM] });
  sfnMock.on(SendTaskSuccessCommand).resolves({});
  sfnMock.on(SendTaskFailureCommand).resolves({});
  ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
  ssmMock.on(ListCommandInvocationsCommand).resolves({ CommandInvocations: [] });
  s3Mock
    .on(GetObjectCommand)
    .rejects(new NoSuchKey({ message: 'The specified key does not exist.', $metadata: {} }));
});

afterEach(() => {
  dbMock.reset();
  sfnMock.reset();
  ssmMock.reset();
  s3Mock.reset();
});

describe('command completion when an audit write fails', () => {
  it('leaves the task pending, so the redelivered event records the inventory and then completes it', async () => {
    givenWaiting(task());
    givenResult('bake', JSON.stringify(BAKE_RESULT));
    dbMock
      .on(PutCommand, { TableName: AUDIT, Item: { resourceType: 'AMI' } })
      .rejectsOnce(new ProvisionedThroughputExceededException({ message: 'throttled', $metadata: {} }))
      .resolves({});

    // First delivery: the task is answered, then the inventory write fails before the task is closed.
    await expect(completeCommand(COMMAND_ID, 'Success', deps)).rejects.toThrow(
      ProvisionedThroughputExceededException,
    );
    expect(completionUpdate()).toBeUndefined();
    // Lambda retries the asynchronous EventBridge invocation; the task is still pending.
    await completeCommand(COMMAND_ID, 'Success', deps);

    const amiWrites = dbMock
      .commandCalls(PutCommand)
      .filter((call) => call.args[0].input.Item?.resourceType === 'AMI');
    expect(amiWrites).toHaveLength(2);
    expect(completionUpdate()).toBeDefined();
  });
});
