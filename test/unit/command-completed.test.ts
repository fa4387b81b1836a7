// First import: the handler module reads its environment (requireEnv) when it is loaded.
import { TEST_ENV } from './support/env';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SendTaskFailureCommand, SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import { ListCommandInvocationsCommand, ListCommandsCommand, SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { run } from '../../functions/command-completed/handler';
import { AuditRepository } from '../../shared/audit';
import type { CompletionDeps } from '../../shared/commands/complete';
import { TaskStore, type CommandTask } from '../../shared/commands/tasks';
import { InvalidTaskInputError } from '../../shared/errors';
import { EXECUTION_ARN, RUN_ID } from './support/fixtures';

const dbMock = mockClient(DynamoDBDocumentClient);
const sfnMock = mockClient(SFNClient);
const ssmMock = mockClient(SSMClient);

const COMMAND_ID = '5b7c1a2e-3f4d-4e5f-8a9b-0c1d2e3f4a5b';
const TOKEN = 'AQCEAAAAKgAAAAMAAAAAAAAAA-waiting-provision-token';

const db = DynamoDBDocumentClient.from(new DynamoDBClient({}));
const deps: CompletionDeps = {
  tasks: new TaskStore(db, TEST_ENV.COORDINATION_TABLE),
  sfn: new SFNClient({}),
  ssm: new SSMClient({}),
  s3: new S3Client({}),
  audit: new AuditRepository(db, TEST_ENV.AUDIT_TABLE),
  stage: 'dev',
  artifactsBucket: TEST_ENV.ARTIFACTS_BUCKET,
  reportsBucket: TEST_ENV.REPORTS_BUCKET,
  now: () => new Date('2025-03-04T10:48:00.000Z'),
};

const WAITING: CommandTask = {
  runId: RUN_ID,
  appId: 'sample-app',
  environment: 'dev',
  step: 'provision',
  mode: 'apply',
  executionArn: EXECUTION_ARN,
  taskToken: TOKEN,
  status: 'PENDING',
  commandId: COMMAND_ID,
  instanceId: 'i-0123456789abcdef0',
  createdAt: '2025-03-04T10:30:00.000Z',
  expiresAt: 1741687560,
};

/** The EventBridge event SSM emits when a command changes status. */
const statusChange = (status: string, overrides: Record<string, unknown> = {}) => ({
  version: '0',
  id: '6a7e8feb-b491-4cf7-a9f1-bf3703467718',
  'detail-type': 'EC2 Command Status-change Notification',
  source: 'aws.ssm',
  account: '123456789012',
  time: '2025-03-04T10:47:59Z',
  region: 'eu-west-1',
  resources: ['arn:aws:ec2:eu-west-1:123456789012:instance/i-0123456789abcdef0'],
  detail: {
    'command-id': COMMAND_ID,
    'document-name': 'ami-pipeline-dev-provision',
    'expire-after': '2025-03-04T12:30:00.000Z',
    parameters: { mode: ['apply'] },
    'requested-date-time': '2025-03-04T10:30:00.000Z',
    status,
  },
  ...overrides,
});

beforeEach(() => {
  dbMock.on(GetCommand).resolves({});
  dbMock
    .on(GetCommand, { Key: { pk: `COMMAND#${COMMAND_ID}` } })
    .resolves({ Item: { pk: `COMMAND#${COMMAND_ID}`, kind: 'COMMAND', runId: RUN_ID, step: 'provision' } });
  dbMock.on(GetCommand, { Key: { pk: `TASK#${RUN_ID}#provision` } }).resolves({ Item: WAITING });
  dbMock.on(UpdateCommand).resolves({});
  dbMock.on(PutCommand).resolves({});
  sfnMock.on(SendTaskFailureCommand).resolves({});
  ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
  ssmMock.on(ListCommandInvocationsCommand).resolves({
    CommandInvocations: [
      { CommandId: COMMAND_ID, CommandPlugins: [{ Output: 'Error: acquiring the state lock' }] },
    ],
  });
});

afterEach(() => {
  dbMock.reset();
  sfnMock.reset();
  ssmMock.reset();
});

describe('command-completed worker', () => {
  it("completes the task waiting for the event's command with the event's status", async () => {
    const outcome = await run(statusChange('Failed'), deps);

    expect(outcome).toBe('FAILED');
    expect(dbMock).toHaveReceivedCommandWith(GetCommand, { Key: { pk: `COMMAND#${COMMAND_ID}` } });
    expect(sfnMock).toHaveReceivedCommandWith(SendTaskFailureCommand, {
      taskToken: TOKEN,
      error: 'ProvisionFailedError',
      cause: `provision command ${COMMAND_ID} ended Failed: Error: acquiring the state lock`,
    });
    expect(sfnMock).toHaveReceivedCommandTimes(SendTaskSuccessCommand, 0);
  });

  it.each<[string, Record<string, unknown>, string]>([
    [
      'a per-instance invocation notification',
      { 'detail-type': 'EC2 Command Invocation Status-change Notification' },
      'detail-type',
    ],
    [
      'an event without a command id',
      { detail: { status: 'Success', 'document-name': 'x' } },
      'detail.command-id',
    ],
    [
      'an event without a status',
      { detail: { 'command-id': COMMAND_ID, 'document-name': 'x' } },
      'detail.status',
    ],
    ['an event without any detail', { detail: undefined }, 'detail'],
  ])('rejects %s with InvalidTaskInputError and touches nothing', async (_case, overrides, field) => {
    const event = JSON.parse(JSON.stringify(statusChange('Success', overrides)));

    const attempt = run(event, deps);

    await expect(attempt).rejects.toThrow(InvalidTaskInputError);
    await expect(attempt).rejects.toThrow(field);
    expect(dbMock.calls()).toHaveLength(0);
    expect(sfnMock.calls()).toHaveLength(0);
    expect(ssmMock.calls()).toHaveLength(0);
  });
});
