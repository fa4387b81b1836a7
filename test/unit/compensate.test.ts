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
import {
  ElasticLoadBalancingV2Client,
  ListenerNotFoundException,
  ModifyListenerCommand,
  PriorRequestNotCompleteException,
  type Action,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import {
  DependencyTimeoutException,
  KMSClient,
  ListGrantsCommand,
  RevokeGrantCommand,
} from '@aws-sdk/client-kms';
import {
  CancelCommandCommand,
  ListCommandsCommand,
  SSMClient,
  type CommandStatus,
  InvalidCommandId,
} from '@aws-sdk/client-ssm';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import {
  CloudWatchLogsClient,
  DeleteSubscriptionFilterCommand,
  ResourceNotFoundException,
  ServiceUnavailableException,
} from '@aws-sdk/client-cloudwatch-logs';
import { mockClient } from 'aws-sdk-client-mock';
import { AuditRepository, type ResourceRecord } from '../../shared/audit';
import type { CommandStep } from '../../shared/commands/contract';
import { TaskStore, type CommandTask } from '../../shared/commands/tasks';
import { compensate, type CompensateDeps, type CompensateInput } from '../../shared/compensate';
import { inCallOrder } from './support/call-order';
import { BUILD_ID, EXECUTION_ARN, RUN_ID, RUN_REF } from './support/fixtures';

const ec2Mock = mockClient(EC2Client);
const elbMock = mockClient(ElasticLoadBalancingV2Client);
const kmsMock = mockClient(KMSClient);
const ssmMock = mockClient(SSMClient);
const dbMock = mockClient(DynamoDBDocumentClient);
const logsMock = mockClient(CloudWatchLogsClient);

const NOW = '2025-03-04T11:10:00.000Z';
const KEY_ARN = TEST_ENV.KMS_KEY_ARN;
const COORDINATION = TEST_ENV.COORDINATION_TABLE;
const AUDIT = TEST_ENV.AUDIT_TABLE;
const RUN_TAG_FILTER = [{ Name: 'tag:ami-pipeline:run-id', Values: [RUN_ID] }];

const db = DynamoDBDocumentClient.from(new DynamoDBClient({}));
const deps: CompensateDeps = {
  ec2: new EC2Client({}),
  elbv2: new ElasticLoadBalancingV2Client({}),
  kms: new KMSClient({}),
  logs: new CloudWatchLogsClient({}),
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

const LISTENER_ARN =
  'arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/sample-app-dev/50dc6c495c0c9188/f2f7dc8efc522ab2';
const BLUE_TG =
  'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/sample-app-blue/73e2d6bc24d8a067';
/** The listener's actions as PrepareTraffic found them: everything to blue. */
const BLUE_ONLY: Action[] = [
  { Type: 'forward', ForwardConfig: { TargetGroups: [{ TargetGroupArn: BLUE_TG, Weight: 1 }] } },
];

/** What PrepareTraffic records before the first shift, so a failure can put the listener back. */
const listenerChange = (listenerArn: string, previousActions: Action[]): ResourceRecord => ({
  ...resource('LISTENER_CHANGE', `${listenerArn}#${RUN_ID}`),
  detail: { listenerArn, previousActions, blue: BLUE_TG, green: 'arn:green' },
});

const APP_GROUP = '/app/sample-app/application';
const STREAM_ARN = 'arn:aws:firehose:eu-west-1:123456789012:deliverystream/ami-pipeline-dev-logs';
const ROLE_ARN = 'arn:aws:iam::123456789012:role/ami-pipeline-dev-LogsSubscriptionRole-1A2B3C';

/** What ExportLogs records for a subscription; `replaced` when an earlier release's filter was there. */
const logSubscription = (logGroupName: string, replaced = false): ResourceRecord => ({
  ...resource('LOG_SUBSCRIPTION', `${logGroupName}#ami-pipeline-export`),
  detail: {
    logGroupName,
    filterName: 'ami-pipeline-export',
    destinationArn: STREAM_ARN,
    roleArn: ROLE_ARN,
    replaced: replaced ? { destinationArn: STREAM_ARN, roleArn: ROLE_ARN, filterPattern: '' } : null,
  },
});

const imageWith = (ImageId: string, snapshots: string[], runId: string = RUN_ID): Image => ({
  ImageId,
  State: 'available',
  Tags: [{ Key: 'ami-pipeline:run-id', Value: runId }],
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

const auditEvents = (): Record<string, unknown>[] =>
  dbMock
    .commandCalls(PutCommand)
    .filter((call) => call.args[0].input.TableName === AUDIT)
    .map((call) => call.args[0].input.Item ?? {});

const givenCommandStatus = (CommandId: string, Status: CommandStatus): void => {
  ssmMock.on(ListCommandsCommand, { CommandId }).resolves({ Commands: [{ CommandId, Status }] });
};

const undoneEvents = () =>
  auditEvents()
    .filter((item) => item.type === 'UNDONE')
    .map((item) => item.id);

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
  elbMock.on(ModifyListenerCommand).resolves({});
  kmsMock.on(RevokeGrantCommand).resolves({});
  kmsMock.on(ListGrantsCommand).resolves({ Grants: [] });
  ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
  ssmMock.on(CancelCommandCommand).resolves({});
  logsMock.on(DeleteSubscriptionFilterCommand).resolves({});
});

afterEach(() => {
  ec2Mock.reset();
  elbMock.reset();
  kmsMock.reset();
  ssmMock.reset();
  dbMock.reset();
  logsMock.reset();
});

describe('compensation', () => {
  describe('commands', () => {
    it.each<CommandStatus>(['InProgress', 'Pending', 'Cancelling'])(
      "cancels a run's command that is still %s and completes its task",
      async (status) => {
        tasks.bake = task('bake', { status: 'PENDING' });
        givenCommandStatus('cmd-bake', status);

        const output = await compensate(input('Bake'), deps);

        expect(ssmMock).toHaveReceivedCommandWith(ListCommandsCommand, { CommandId: 'cmd-bake' });
        expect(ssmMock).toHaveReceivedCommandWith(CancelCommandCommand, { CommandId: 'cmd-bake' });
        expect(dbMock).toHaveReceivedCommandWith(UpdateCommand, {
          TableName: COORDINATION,
          Key: { pk: `TASK#${RUN_ID}#bake` },
          ExpressionAttributeValues: expect.objectContaining({
            ':outcome': 'CANCELLED/compensation',
            ':token': 'token-of-bake',
          }),
        });
        expect(undoneEvents()).toEqual(['CANCEL_COMMAND#cmd-bake']);
        expect(output).toEqual({ status: 'COMPLETE', undone: 1, failed: [], needsStackDestroy: false });
      },
    );

    it.each<CommandStatus>(['Success', 'Failed', 'TimedOut', 'Cancelled'])(
      'leaves a pending task whose command already ended %s to command completion',
      async (status) => {
        tasks.bake = task('bake', { status: 'PENDING' });
        givenCommandStatus('cmd-bake', status);

        await compensate(input('Bake'), deps);

        expect(ssmMock).toHaveReceivedCommandTimes(CancelCommandCommand, 0);
        expect(dbMock).toHaveReceivedCommandTimes(UpdateCommand, 0);
      },
    );

    it('leaves finished tasks alone', async () => {
      tasks.bake = task('bake', { status: 'DONE' });

      await compensate(input('Provision'), deps);

      expect(ssmMock).toHaveReceivedCommandTimes(ListCommandsCommand, 0);
      expect(ssmMock).toHaveReceivedCommandTimes(CancelCommandCommand, 0);
      expect(dbMock).toHaveReceivedCommandTimes(UpdateCommand, 0);
    });

    it('looks for the command of a task that never recorded one (a crash after SendCommand), and closes the task', async () => {
      tasks.provision = task('provision', { status: 'PENDING', commandId: undefined });

      await compensate(input('Provision'), deps);

      // Found by its Comment among recent commands; none is running here, so nothing to cancel.
      expect(ssmMock).toHaveReceivedCommand(ListCommandsCommand);
      expect(ssmMock).toHaveReceivedCommandTimes(CancelCommandCommand, 0);
      expect(dbMock).toHaveReceivedCommandTimes(UpdateCommand, 1);
    });

    it('records a command it cannot cancel as UNDO_FAILED', async () => {
      tasks.validate = task('validate', { status: 'PENDING' });
      givenCommandStatus('cmd-validate', 'InProgress');
      ssmMock.on(CancelCommandCommand).rejects(new Error('builder unreachable'));

      const output = await compensate(input('Validate'), deps);

      expect(output.status).toBe('INCOMPLETE');
      expect(output.failed).toEqual([
        { action: 'CANCEL_COMMAND', resource: 'cmd-validate', error: 'Error: builder unreachable' },
      ]);
      expect(dbMock).toHaveReceivedCommandTimes(UpdateCommand, 0);
    });
  });

  describe('the ALB listener', () => {
    it('puts back the actions the listener had before the run shifted traffic', async () => {
      inventory.push(listenerChange(LISTENER_ARN, BLUE_ONLY));

      const output = await compensate(input('PostProvision'), deps);

      expect(elbMock).toHaveReceivedCommandTimes(ModifyListenerCommand, 1);
      expect(elbMock).toHaveReceivedCommandWith(ModifyListenerCommand, {
        ListenerArn: LISTENER_ARN,
        DefaultActions: BLUE_ONLY,
      });
      expect(dbMock).toHaveReceivedCommandWith(QueryCommand, {
        TableName: AUDIT,
        ExpressionAttributeValues: { ':pk': `RUN#${RUN_ID}`, ':prefix': 'RESOURCE#LISTENER_CHANGE#' },
      });
      expect(auditEvents()).toContainEqual(
        expect.objectContaining({
          sk: `EVENT#${NOW}#UNDONE#RESTORE_LISTENER#${LISTENER_ARN}`,
          type: 'UNDONE',
          stage: 'Compensate',
          detail: { action: 'RESTORE_LISTENER', resource: LISTENER_ARN, failedStage: 'PostProvision' },
        }),
      );
      expect(output).toEqual({ status: 'COMPLETE', undone: 1, failed: [], needsStackDestroy: false });
    });

    it('restores a first release listener to its fixed response', async () => {
      const fixedResponse: Action[] = [
        { Type: 'fixed-response', FixedResponseConfig: { StatusCode: '503', ContentType: 'text/plain' } },
      ];
      inventory.push(listenerChange(LISTENER_ARN, fixedResponse));

      await compensate(input('PostProvision'), deps);

      expect(elbMock).toHaveReceivedCommandWith(ModifyListenerCommand, {
        ListenerArn: LISTENER_ARN,
        DefaultActions: fixedResponse,
      });
    });

    it('touches no listener when the run never prepared traffic', async () => {
      inventory.push(resource('KMS_GRANT', 'grant-1'));

      await compensate(input(), deps);

      expect(elbMock).toHaveReceivedCommandTimes(ModifyListenerCommand, 0);
    });

    it('restores traffic to blue before it revokes grants or removes AMIs and snapshots', async () => {
      inventory.push(
        resource('AMI', 'ami-0000000000000000a'),
        resource('KMS_GRANT', 'grant-1'),
        listenerChange(LISTENER_ARN, BLUE_ONLY),
      );
      images.set('ami-0000000000000000a', imageWith('ami-0000000000000000a', ['snap-00000000000000a1']));

      await compensate(input('PostProvision'), deps);

      expect(
        inCallOrder(
          elbMock.commandCalls(ModifyListenerCommand)[0],
          kmsMock.commandCalls(RevokeGrantCommand)[0],
          ec2Mock.commandCalls(DeregisterImageCommand)[0],
          ec2Mock.commandCalls(DeleteSnapshotCommand)[0],
        ),
      ).toBe(true);
      expect(undoneEvents()).toEqual([
        `RESTORE_LISTENER#${LISTENER_ARN}`,
        'REVOKE_GRANT#grant-1',
        'DEREGISTER_IMAGE#ami-0000000000000000a',
        'DELETE_SNAPSHOT#snap-00000000000000a1',
      ]);
    });

    it('records a listener it cannot restore as UNDO_FAILED and still undoes the rest', async () => {
      inventory.push(listenerChange(LISTENER_ARN, BLUE_ONLY), resource('KMS_GRANT', 'grant-1'));
      images.set('ami-0000000000000000a', imageWith('ami-0000000000000000a', []));
      taggedImages.push('ami-0000000000000000a');
      elbMock
        .on(ModifyListenerCommand)
        .rejects(
          new PriorRequestNotCompleteException({ message: 'listener is being modified', $metadata: {} }),
        );

      const output = await compensate(input('PostProvision'), deps);

      const error = 'PriorRequestNotCompleteException: listener is being modified';
      expect(output).toEqual({
        status: 'INCOMPLETE',
        undone: 2,
        failed: [{ action: 'RESTORE_LISTENER', resource: LISTENER_ARN, error }],
        needsStackDestroy: false,
      });
      expect(auditEvents()).toContainEqual(
        expect.objectContaining({
          sk: `EVENT#${NOW}#UNDO_FAILED#RESTORE_LISTENER#${LISTENER_ARN}`,
          type: 'UNDO_FAILED',
          stage: 'Compensate',
          detail: { action: 'RESTORE_LISTENER', resource: LISTENER_ARN, error },
        }),
      );
      expect(kmsMock).toHaveReceivedCommandWith(RevokeGrantCommand, { GrantId: 'grant-1' });
      expect(ec2Mock).toHaveReceivedCommandWith(DeregisterImageCommand, { ImageId: 'ami-0000000000000000a' });
    });

    it('tries every recorded listener even when one of them fails', async () => {
      const otherListener = LISTENER_ARN.replace(/[a-f0-9]+$/, '0123456789abcdef');
      inventory.push(listenerChange(LISTENER_ARN, BLUE_ONLY), listenerChange(otherListener, BLUE_ONLY));
      elbMock
        .on(ModifyListenerCommand, { ListenerArn: LISTENER_ARN })
        .rejects(
          new PriorRequestNotCompleteException({ message: 'listener is being modified', $metadata: {} }),
        );

      const output = await compensate(input('PostProvision'), deps);

      expect(elbMock).toHaveReceivedCommandWith(ModifyListenerCommand, { ListenerArn: otherListener });
      expect(output.failed.map((f) => f.resource)).toEqual([LISTENER_ARN]);
      expect(undoneEvents()).toEqual([`RESTORE_LISTENER#${otherListener}`]);
    });

    it('does not count a listener that no longer exists as a failure', async () => {
      inventory.push(listenerChange(LISTENER_ARN, BLUE_ONLY));
      elbMock
        .on(ModifyListenerCommand)
        .rejects(
          new ListenerNotFoundException({ message: 'One or more listeners not found', $metadata: {} }),
        );

      const output = await compensate(input('PostProvision'), deps);

      expect(output).toEqual({ status: 'COMPLETE', undone: 0, failed: [], needsStackDestroy: false });
      expect(auditEvents()).toEqual([]);
    });
  });

  it('revokes every KMS grant the run recorded', async () => {
    inventory.push(resource('KMS_GRANT', 'grant-1'), resource('KMS_GRANT', 'grant-2'));

    await compensate(input(), deps);

    expect(kmsMock).toHaveReceivedCommandTimes(RevokeGrantCommand, 2);
    expect(kmsMock).toHaveReceivedCommandWith(RevokeGrantCommand, { KeyId: KEY_ARN, GrantId: 'grant-1' });
    expect(kmsMock).toHaveReceivedCommandWith(RevokeGrantCommand, { KeyId: KEY_ARN, GrantId: 'grant-2' });
    expect(dbMock).toHaveReceivedCommandWith(QueryCommand, {
      TableName: AUDIT,
      ExpressionAttributeValues: { ':pk': `RUN#${RUN_ID}`, ':prefix': 'RESOURCE#KMS_GRANT#' },
    });
    expect(undoneEvents()).toEqual(['REVOKE_GRANT#grant-1', 'REVOKE_GRANT#grant-2']);
  });

  it('revokes a grant named for the run that the inventory lacks (its worker died before recording it), across pages, and no other', async () => {
    inventory.push(resource('KMS_GRANT', 'grant-1'));
    kmsMock
      .on(ListGrantsCommand, { KeyId: KEY_ARN, Marker: undefined })
      .resolves({
        Grants: [
          { GrantId: 'grant-1', Name: `ami-pipeline-${RUN_ID}` },
          { GrantId: 'grant-other-run', Name: 'ami-pipeline-zzzzzzzzzzzzzzzzzzzz' },
        ],
        Truncated: true,
        NextMarker: 'page-2',
      })
      .on(ListGrantsCommand, { KeyId: KEY_ARN, Marker: 'page-2' })
      .resolves({
        Grants: [{ GrantId: 'grant-unrecorded', Name: `ami-pipeline-${RUN_ID}` }, { GrantId: 'unnamed' }],
      });

    const output = await compensate(input(), deps);

    expect(output.status).toBe('COMPLETE');
    expect(kmsMock.commandCalls(RevokeGrantCommand).map((c) => c.args[0].input.GrantId)).toEqual([
      'grant-1',
      'grant-unrecorded',
    ]);
    expect(undoneEvents()).toEqual(['REVOKE_GRANT#grant-1', 'REVOKE_GRANT#grant-unrecorded']);
  });

  it('still revokes recorded grants and removes images when listing the key’s grants fails, and says so', async () => {
    inventory.push(resource('KMS_GRANT', 'grant-1'));
    kmsMock
      .on(ListGrantsCommand)
      .rejects(Object.assign(new Error('denied by an SCP'), { name: 'AccessDeniedException' }));

    const output = await compensate(input(), deps);

    expect(output.status).toBe('INCOMPLETE');
    expect(output.failed).toEqual([
      { action: 'LIST_GRANTS', resource: KEY_ARN, error: 'AccessDeniedException: denied by an SCP' },
    ]);
    expect(kmsMock).toHaveReceivedCommandWith(RevokeGrantCommand, { GrantId: 'grant-1' });
    expect(undoneEvents()).toEqual(['REVOKE_GRANT#grant-1']);
  });

  describe('log subscriptions', () => {
    it('removes the subscription filter the run added to an app log group, and keeps the group', async () => {
      inventory.push(resource('LOG_GROUP', APP_GROUP), logSubscription(APP_GROUP));

      const output = await compensate(input('RecordRelease'), deps);

      expect(logsMock).toHaveReceivedCommandTimes(DeleteSubscriptionFilterCommand, 1);
      expect(logsMock).toHaveReceivedCommandWith(DeleteSubscriptionFilterCommand, {
        logGroupName: APP_GROUP,
        filterName: 'ami-pipeline-export',
      });
      expect(auditEvents()).toContainEqual(
        expect.objectContaining({
          sk: `EVENT#${NOW}#UNDONE#DELETE_SUBSCRIPTION_FILTER#${APP_GROUP}#ami-pipeline-export`,
          type: 'UNDONE',
          detail: {
            action: 'DELETE_SUBSCRIPTION_FILTER',
            resource: `${APP_GROUP}#ami-pipeline-export`,
            failedStage: 'RecordRelease',
          },
        }),
      );
      expect(logsMock.calls()).toHaveLength(1);
      expect(output).toEqual({ status: 'COMPLETE', undone: 1, failed: [], needsStackDestroy: false });
    });

    it("leaves a subscription the run only re-applied: it is the live release's", async () => {
      inventory.push(logSubscription(APP_GROUP, true));

      const output = await compensate(input('RecordRelease'), deps);

      expect(logsMock).toHaveReceivedCommandTimes(DeleteSubscriptionFilterCommand, 0);
      expect(output).toEqual({ status: 'COMPLETE', undone: 0, failed: [], needsStackDestroy: false });
    });

    it('takes a filter that is already gone as undone work, not as a failure', async () => {
      inventory.push(logSubscription(APP_GROUP));
      logsMock
        .on(DeleteSubscriptionFilterCommand)
        .rejects(
          new ResourceNotFoundException({ message: 'The specified filter does not exist', $metadata: {} }),
        );

      const output = await compensate(input('ExportLogs'), deps);

      expect(output).toEqual({ status: 'COMPLETE', undone: 0, failed: [], needsStackDestroy: false });
    });

    it('records a filter it cannot remove as UNDO_FAILED and still undoes the rest', async () => {
      inventory.push(logSubscription(APP_GROUP), resource('KMS_GRANT', 'grant-1'));
      logsMock
        .on(DeleteSubscriptionFilterCommand)
        .rejects(new ServiceUnavailableException({ message: 'try again', $metadata: {} }));

      const output = await compensate(input('ExportLogs'), deps);

      expect(output.failed).toEqual([
        {
          action: 'DELETE_SUBSCRIPTION_FILTER',
          resource: `${APP_GROUP}#ami-pipeline-export`,
          error: 'ServiceUnavailableException: try again',
        },
      ]);
      expect(kmsMock).toHaveReceivedCommandWith(RevokeGrantCommand, { GrantId: 'grant-1' });
    });

    it('removes subscriptions after traffic is back on blue', async () => {
      inventory.push(logSubscription(APP_GROUP), listenerChange(LISTENER_ARN, BLUE_ONLY));

      await compensate(input('RecordRelease'), deps);

      expect(
        inCallOrder(
          elbMock.commandCalls(ModifyListenerCommand)[0],
          logsMock.commandCalls(DeleteSubscriptionFilterCommand)[0],
        ),
      ).toBe(true);
    });
  });

  describe('AMIs and snapshots', () => {
    it('deregisters AMIs found by the run tag and in the audit inventory, each once', async () => {
      images.set('ami-0000000000000000a', imageWith('ami-0000000000000000a', []));
      images.set('ami-0000000000000000b', imageWith('ami-0000000000000000b', []));
      inventory.push(resource('AMI', 'ami-0000000000000000a'));
      taggedImages.push('ami-0000000000000000a', 'ami-0000000000000000b');

      await compensate(input(), deps);

      expect(ec2Mock).toHaveReceivedCommandWith(DescribeImagesCommand, {
        Owners: ['self'],
        Filters: RUN_TAG_FILTER,
      });
      expect(ec2Mock.commandCalls(DeregisterImageCommand).map((call) => call.args[0].input.ImageId)).toEqual([
        'ami-0000000000000000a',
        'ami-0000000000000000b',
      ]);
    });

    it('deletes the snapshots of each AMI after deregistering it', async () => {
      images.set(
        'ami-0000000000000000a',
        imageWith('ami-0000000000000000a', ['snap-00000000000000a1', 'snap-00000000000000a2']),
      );
      inventory.push(resource('AMI', 'ami-0000000000000000a'));

      await compensate(input(), deps);

      const deregistered = ec2Mock.commandCalls(DeregisterImageCommand)[0];
      const deleted = ec2Mock.commandCalls(DeleteSnapshotCommand);
      expect(deleted.map((call) => call.args[0].input.SnapshotId)).toEqual([
        'snap-00000000000000a1',
        'snap-00000000000000a2',
      ]);
      expect(inCallOrder(deregistered, deleted[0])).toBe(true);
    });

    it('deletes snapshots recorded in the inventory or tagged with the run, each once', async () => {
      images.set('ami-0000000000000000a', imageWith('ami-0000000000000000a', ['snap-00000000000000a1']));
      taggedImages.push('ami-0000000000000000a');
      inventory.push(
        resource('SNAPSHOT', 'snap-00000000000000a1'),
        resource('SNAPSHOT', 'snap-00000000000000c1'),
      );
      taggedSnapshots.push('snap-00000000000000c1', 'snap-00000000000000d1');

      await compensate(input(), deps);

      expect(ec2Mock).toHaveReceivedCommandWith(DescribeSnapshotsCommand, {
        OwnerIds: ['self'],
        Filters: RUN_TAG_FILTER,
      });
      expect(
        ec2Mock.commandCalls(DeleteSnapshotCommand).map((call) => call.args[0].input.SnapshotId),
      ).toEqual(['snap-00000000000000a1', 'snap-00000000000000c1', 'snap-00000000000000d1']);
    });

    it('records an UNDONE event for every step, naming the failed stage', async () => {
      inventory.push(resource('KMS_GRANT', 'grant-1'), resource('AMI', 'ami-0000000000000000a'));
      images.set('ami-0000000000000000a', imageWith('ami-0000000000000000a', ['snap-00000000000000a1']));

      const output = await compensate(input(), deps);

      expect(output).toEqual({ status: 'COMPLETE', undone: 3, failed: [], needsStackDestroy: false });
      expect(auditEvents()).toEqual([
        {
          pk: `RUN#${RUN_ID}`,
          sk: `EVENT#${NOW}#UNDONE#REVOKE_GRANT#grant-1`,
          entity: 'EVENT',
          runId: RUN_ID,
          type: 'UNDONE',
          stage: 'Compensate',
          at: NOW,
          id: 'REVOKE_GRANT#grant-1',
          detail: { action: 'REVOKE_GRANT', resource: 'grant-1', failedStage: 'Distribute' },
        },
        expect.objectContaining({
          sk: `EVENT#${NOW}#UNDONE#DEREGISTER_IMAGE#ami-0000000000000000a`,
          detail: {
            action: 'DEREGISTER_IMAGE',
            resource: 'ami-0000000000000000a',
            failedStage: 'Distribute',
          },
        }),
        expect.objectContaining({
          sk: `EVENT#${NOW}#UNDONE#DELETE_SNAPSHOT#snap-00000000000000a1`,
          detail: { action: 'DELETE_SNAPSHOT', resource: 'snap-00000000000000a1', failedStage: 'Distribute' },
        }),
      ]);
    });
  });

  describe('failures along the way', () => {
    it('records a failing step as UNDO_FAILED, reports it and still undoes the rest', async () => {
      inventory.push(resource('KMS_GRANT', 'grant-1'), resource('AMI', 'ami-0000000000000000a'));
      images.set('ami-0000000000000000a', imageWith('ami-0000000000000000a', ['snap-00000000000000a1']));
      kmsMock
        .on(RevokeGrantCommand)
        .rejects(new DependencyTimeoutException({ message: 'KMS dependency timed out', $metadata: {} }));

      const output = await compensate(input(), deps);

      expect(output).toEqual({
        status: 'INCOMPLETE',
        undone: 2,
        failed: [
          {
            action: 'REVOKE_GRANT',
            resource: 'grant-1',
            error: 'DependencyTimeoutException: KMS dependency timed out',
          },
        ],
        needsStackDestroy: false,
      });
      expect(auditEvents()).toContainEqual(
        expect.objectContaining({
          sk: `EVENT#${NOW}#UNDO_FAILED#REVOKE_GRANT#grant-1`,
          type: 'UNDO_FAILED',
          stage: 'Compensate',
          detail: {
            action: 'REVOKE_GRANT',
            resource: 'grant-1',
            error: 'DependencyTimeoutException: KMS dependency timed out',
          },
        }),
      );
      expect(ec2Mock).toHaveReceivedCommandWith(DeregisterImageCommand, { ImageId: 'ami-0000000000000000a' });
      expect(ec2Mock).toHaveReceivedCommandWith(DeleteSnapshotCommand, {
        SnapshotId: 'snap-00000000000000a1',
      });
    });

    it('still returns its report when the UNDO_FAILED event cannot be written', async () => {
      inventory.push(resource('KMS_GRANT', 'grant-1'));
      kmsMock
        .on(RevokeGrantCommand)
        .rejects(new DependencyTimeoutException({ message: 'KMS dependency timed out', $metadata: {} }));
      dbMock.on(PutCommand).rejects(new Error('audit table unavailable'));

      const output = await compensate(input(), deps);

      expect(output.status).toBe('INCOMPLETE');
      expect(output.failed).toHaveLength(1);
    });

    it('does not count resources that are already gone as failures', async () => {
      inventory.push(
        resource('AMI', 'ami-0000000000000000a'),
        resource('AMI', 'ami-00000000000000009'),
        resource('SNAPSHOT', 'snap-00000000000000a1'),
      );
      images.set('ami-0000000000000000a', imageWith('ami-0000000000000000a', []));
      ec2Mock.on(DeregisterImageCommand).rejects(ec2Error('InvalidAMIID.NotFound'));
      ec2Mock.on(DeleteSnapshotCommand).rejects(ec2Error('InvalidSnapshot.NotFound'));

      const output = await compensate(input(), deps);

      expect(output).toEqual({ status: 'COMPLETE', undone: 0, failed: [], needsStackDestroy: false });
      expect(ec2Mock).toHaveReceivedCommandWith(DescribeImagesCommand, {
        ImageIds: ['ami-00000000000000009'],
      });
      expect(ec2Mock).not.toHaveReceivedCommandWith(DeregisterImageCommand, {
        ImageId: 'ami-00000000000000009',
      });
      expect(auditEvents().filter((item) => item.type === 'UNDO_FAILED')).toEqual([]);
    });

    it('reports a snapshot still in use as a failure', async () => {
      inventory.push(resource('SNAPSHOT', 'snap-00000000000000a1'));
      ec2Mock.on(DeleteSnapshotCommand).rejects(ec2Error('InvalidSnapshot.InUse'));

      const output = await compensate(input(), deps);

      expect(output.status).toBe('INCOMPLETE');
      expect(output.failed).toEqual([
        {
          action: 'DELETE_SNAPSHOT',
          resource: 'snap-00000000000000a1',
          error: 'InvalidSnapshot.InUse: InvalidSnapshot.InUse for the test',
        },
      ]);
    });
  });

  describe('the green stack', () => {
    it.each<[string, Partial<Record<CommandStep, CommandTask>>, boolean]>([
      ['a provision apply that finished', { bake: task('bake'), provision: task('provision') }, true],
      [
        'a provision apply that never recorded its command',
        { provision: task('provision', { status: 'PENDING', commandId: undefined }) },
        true,
      ],
      [
        'a provision apply whose command was never sent',
        { provision: task('provision', { status: 'DONE', commandId: undefined, outcome: 'NOT_SENT' }) },
        false,
      ],
      ['only a provision destroy', { provision: task('provision', { mode: 'destroy' }) }, false],
      ['no provision at all', { bake: task('bake'), validate: task('validate') }, false],
      ['no task at all', {}, false],
    ])('after %s, reports needsStackDestroy %s', async (_case, given, expected) => {
      tasks = given;

      const output = await compensate(input('Provision'), deps);

      expect(output.needsStackDestroy).toBe(expected);
    });
  });
});

describe('compensation when a lookup fails', () => {
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
