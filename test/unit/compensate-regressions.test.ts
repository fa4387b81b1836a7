import { TEST_ENV } from './support/env';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  EC2ServiceException,
  type DescribeImagesCommandInput,
  type Image,
} from '@aws-sdk/client-ec2';
import { KMSClient, RevokeGrantCommand } from '@aws-sdk/client-kms';
import { CancelCommandCommand, InvalidCommandId, ListCommandsCommand, SSMClient } from '@aws-sdk/client-ssm';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { AuditRepository, type ResourceRecord } from '../../shared/audit';
import type { CommandStep } from '../../shared/commands/contract';
import { TaskStore, type CommandTask } from '../../shared/commands/tasks';
import { compensate, type CompensateDeps, type CompensateInput } from '../../shared/compensate';
import { BUILD_ID, EXECUTION_ARN, RUN_ID, RUN_REF } from './support/fixtures';

const ec2Mock = mockClient(EC2Client);
const kmsMock = mockClient(KMSClient);
const ssmMock = mockClient(SSMClient);
const dbMock = mockClient(DynamoDBDocumentClient);

const NOW = '2025-03-04T11:10:00.000Z';
const KEY_ARN = TEST_ENV.KMS_KEY_ARN;
const COORDINATION = TEST_ENV.COORDINATION_TABLE;
const AUDIT = TEST_ENV.AUDIT_TABLE;

const db = DynamoDBDocumentClient.from(new DynamoDBClient({}));
const deps: CompensateDeps = {
  ec2: new EC2Client({}),
  kms: new KMSClient({}),
  ssm: new SSMClient({}),
  tasks: new TaskStore(db, COORDINATION),
  audit: new AuditRepository(db, AUDIT),
  kmsKeyArn: KEY_ARN,
  now: () => new Date(NOW),
};

const input = (stage = 'Distribute'): CompensateInput => ({
  run: { ...RUN_REF },
  failure: { stage, Error: 'DistributionFailedError', Cause: 'KMS CreateGrant failed' },
});

const task = (step: CommandStep, overrides: Partial<CommandTask> = {}): CommandTask => ({
  runId: RUN_ID,
  appId: 'sample-app',
  environment: 'dev',
  step,
  mode: step === 'provision' ? 'apply' : 'run',
  executionArn: EXECUTION_ARN,
  taskToken: `token-of-${step}`,
  status: 'DONE',
  commandId: `cmd-${step}`,
  instanceId: 'i-0123456789abcdef0',
  createdAt: '2025-03-04T10:06:00.000Z',
  expiresAt: 1741687560,
  ...overrides,
});

const resource = (resourceType: string, resourceId: string): ResourceRecord => ({
  runId: RUN_ID,
  appId: 'sample-app',
  environment: 'dev',
  executionArn: EXECUTION_ARN,
  buildId: BUILD_ID,
  version: '1.4.2',
  resourceType,
  resourceId,
  createdAt: '2025-03-04T10:40:00.000Z',
});

const imageWith = (ImageId: string, snapshots: string[]): Image => ({
  ImageId,
  State: 'available',
  BlockDeviceMappings: [
    ...snapshots.map((SnapshotId) => ({ DeviceName: '/dev/xvda', Ebs: { SnapshotId } })),
    { DeviceName: '/dev/sdz', VirtualName: 'ephemeral0' },
  ],
});

const ec2Error = (name: string) =>
  new EC2ServiceException({
    name,
    $fault: 'client',
    $metadata: { httpStatusCode: 400 },
    message: `${name} for the test`,
  });

/** What the run left behind: coordination tasks, audit inventory, and EC2's view by the run tag. */
let tasks: Partial<Record<CommandStep, CommandTask>>;
let inventory: ResourceRecord[];
let images: Map<string, Image>;
let taggedImages: string[];
let taggedSnapshots: string[];

beforeEach(() => {
  tasks = {};
  inventory = [];
  images = new Map();
  taggedImages = [];
  taggedSnapshots = [];
  dbMock.on(GetCommand).callsFake(async (req: { Key?: { pk?: string } }) => {
    const step = /^TASK#[a-f0-9]{20}#(bake|provision|validate)$/.exec(req.Key?.pk ?? '')?.[1] as
      CommandStep | undefined;
    return { Item: step ? tasks[step] : undefined };
  });
  dbMock.on(QueryCommand).callsFake(async (req: QueryCommandInput) => {
    const prefix = String(req.ExpressionAttributeValues?.[':prefix'] ?? '');
    return {
      Items: inventory.filter((r) => `RESOURCE#${r.resourceType}#${r.resourceId}`.startsWith(prefix)),
    };
  });
  dbMock.on(PutCommand).resolves({});
  dbMock.on(UpdateCommand).resolves({});
  ec2Mock.on(DescribeImagesCommand).callsFake(async (req: DescribeImagesCommandInput) => {
    if (req.ImageIds) {
      const [id = ''] = req.ImageIds;
      const found = images.get(id);
      if (!found) throw ec2Error('InvalidAMIID.NotFound');
      return { Images: [found] };
    }
    return { Images: taggedImages.flatMap((id) => images.get(id) ?? []) };
  });
  ec2Mock.on(DescribeSnapshotsCommand).callsFake(async () => ({
    Snapshots: taggedSnapshots.map((SnapshotId) => ({ SnapshotId })),
  }));
  ec2Mock.on(DeregisterImageCommand).resolves({});
  ec2Mock.on(DeleteSnapshotCommand).resolves({});
  kmsMock.on(RevokeGrantCommand).resolves({});
  ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
  ssmMock.on(CancelCommandCommand).resolves({});
});

afterEach(() => {
  ec2Mock.reset();
  kmsMock.reset();
  ssmMock.reset();
  dbMock.reset();
});

describe('compensation (bugs)', () => {
  it('still revokes grants and removes AMIs when looking up one pending command fails', async () => {
    tasks.bake = task('bake', { status: 'PENDING' });
    ssmMock
      .on(ListCommandsCommand)
      .rejects(new InvalidCommandId({ message: 'Invalid command id', $metadata: {} }));
    inventory.push(resource('KMS_GRANT', 'grant-1'), resource('AMI', 'ami-0000000000000000a'));
    images.set('ami-0000000000000000a', imageWith('ami-0000000000000000a', ['snap-00000000000000a1']));

    const output = await compensate(input('Bake'), deps);

    expect(kmsMock).toHaveReceivedCommandWith(RevokeGrantCommand, { GrantId: 'grant-1' });
    expect(ec2Mock).toHaveReceivedCommandWith(DeregisterImageCommand, { ImageId: 'ami-0000000000000000a' });
    expect(output.status).toBe('INCOMPLETE');
    expect(output.failed).toContainEqual(
      expect.objectContaining({ action: 'CANCEL_COMMAND', resource: 'cmd-bake' }),
    );
  });
});
