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
  DependencyTimeoutException,
  KMSClient,
  ListGrantsCommand,
  RevokeGrantCommand,
} from '@aws-sdk/client-kms';
import {
  DynamoDBDocumentClient,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { AuditRepository, type ResourceRecord } from '../../shared/audit';
import { retireRelease, type RetireDeps, type RetireInput } from '../../shared/release/decommission';
import { EXECUTION_ARN_PREFIX, RUN_ID } from './support/fixtures';

const ec2Mock = mockClient(EC2Client);
const kmsMock = mockClient(KMSClient);
const dbMock = mockClient(DynamoDBDocumentClient);

const NOW = '2025-03-05T11:12:00.000Z';
const AUDIT = TEST_ENV.AUDIT_TABLE;
const KEY_ARN = TEST_ENV.KMS_KEY_ARN;
/** The replaced release being retired; RUN_ID is the release that replaced it. */
const OLD_RUN_ID = 'b'.repeat(20);
const OLD_AMI = 'ami-0b0b0b0b0b0b0b0b0';
const OLD_SNAPSHOT = 'snap-0b0b0b0b0b0b0b0b0';
const GRANT_ID = 'a1b2c3d4e5f60718a1b2c3d4e5f60718a1b2c3d4e5f60718a1b2c3d4e5f60718';
const RUN_TAG_FILTER = [{ Name: 'tag:ami-pipeline:run-id', Values: [OLD_RUN_ID] }];

const db = DynamoDBDocumentClient.from(new DynamoDBClient({}));
const deps: RetireDeps = {
  ec2: new EC2Client({}),
  kms: new KMSClient({}),
  audit: new AuditRepository(db, AUDIT),
  kmsKeyArn: KEY_ARN,
  now: () => new Date(NOW),
};

const input: RetireInput = {
  run: {
    runId: OLD_RUN_ID,
    appId: 'sample-app',
    environment: 'dev',
    executionArn: `${EXECUTION_ARN_PREFIX}:sample-app-dev-${OLD_RUN_ID}`,
  },
  amiId: OLD_AMI,
  replacedBy: RUN_ID,
};

const resource = (resourceType: string, resourceId: string): ResourceRecord => ({
  runId: OLD_RUN_ID,
  appId: 'sample-app',
  environment: 'dev',
  executionArn: input.run.executionArn,
  buildId: 'sample-app-release#117',
  version: '1.4.1',
  resourceType,
  resourceId,
  createdAt: '2025-02-20T08:40:00.000Z',
});

/** A LIVE item of the dev environment, as audit.liveReleases returns it. */
const live = (appId: string, amiId: string) => ({
  pk: 'LIVE#dev',
  sk: `APP#${appId}`,
  entity: 'LIVE',
  appId,
  environment: 'dev',
  amiId,
});

const ec2Error = (name: string) =>
  new EC2ServiceException({ name, $fault: 'client', $metadata: { httpStatusCode: 400 }, message: name });

/** What the audit table and EC2 hold for the old release. */
let liveReleases: Record<string, unknown>[];
let inventory: ResourceRecord[];
let images: Map<string, Image>;

const auditEvents = (): Record<string, unknown>[] =>
  dbMock
    .commandCalls(PutCommand)
    .filter((call) => call.args[0].input.TableName === AUDIT)
    .map((call) => call.args[0].input.Item ?? {});

const stepEvents = () =>
  auditEvents()
    .filter((item) => item.type === 'DECOMMISSIONED' && item.id !== 'RELEASE')
    .map((item) => item.id);

const finalEvent = () => auditEvents().find((item) => item.id === 'RELEASE');

/** Runs retireRelease and returns what it threw (the test fails if it did not throw). */
const failureOf = async (): Promise<unknown> => {
  try {
    await retireRelease(input, deps);
  } catch (err) {
    return err;
  }
  throw new Error('expected retireRelease to fail');
};

beforeEach(() => {
  liveReleases = [live('sample-app', 'ami-0c0c0c0c0c0c0c0c0')];
  inventory = [resource('KMS_GRANT', GRANT_ID), resource('AMI', OLD_AMI), resource('SNAPSHOT', OLD_SNAPSHOT)];
  images = new Map([
    [
      OLD_AMI,
      {
        ImageId: OLD_AMI,
        Tags: [{ Key: 'ami-pipeline:run-id', Value: OLD_RUN_ID }],
        BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { SnapshotId: OLD_SNAPSHOT } }],
      },
    ],
  ]);
  dbMock.on(QueryCommand).callsFake(async (req: QueryCommandInput) => {
    const pk = req.ExpressionAttributeValues?.[':pk'];
    if (pk === 'LIVE#dev') return { Items: liveReleases };
    if (pk !== `RUN#${OLD_RUN_ID}`) return { Items: [] };
    const prefix = String(req.ExpressionAttributeValues?.[':prefix'] ?? '');
    return {
      Items: inventory.filter((r) => `RESOURCE#${r.resourceType}#${r.resourceId}`.startsWith(prefix)),
    };
  });
  dbMock.on(PutCommand).resolves({});
  ec2Mock.on(DescribeImagesCommand).callsFake(async (req: DescribeImagesCommandInput) => {
    if (req.ImageIds) {
      const found = images.get(req.ImageIds[0] ?? '');
      if (!found) throw ec2Error('InvalidAMIID.NotFound');
      return { Images: [found] };
    }
    return { Images: [...images.values()] };
  });
  ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [{ SnapshotId: OLD_SNAPSHOT }] });
  ec2Mock.on(DeregisterImageCommand).resolves({});
  ec2Mock.on(DeleteSnapshotCommand).resolves({});
  kmsMock.on(RevokeGrantCommand).resolves({});
  kmsMock
    .on(ListGrantsCommand)
    .resolves({ Grants: [{ GrantId: GRANT_ID, Name: `ami-pipeline-${OLD_RUN_ID}` }] });
});

afterEach(() => {
  ec2Mock.reset();
  kmsMock.reset();
  dbMock.reset();
});

describe('retiring a replaced release', () => {
  describe('when no live release of the environment uses its AMI', () => {
    it('revokes its KMS grants, deregisters its AMI and deletes its snapshots', async () => {
      const output = await retireRelease(input, deps);

      expect(kmsMock).toHaveReceivedCommandWith(RevokeGrantCommand, { KeyId: KEY_ARN, GrantId: GRANT_ID });
      expect(ec2Mock).toHaveReceivedCommandWith(DescribeImagesCommand, {
        Owners: ['self'],
        Filters: RUN_TAG_FILTER,
      });
      expect(ec2Mock).toHaveReceivedCommandWith(DeregisterImageCommand, { ImageId: OLD_AMI });
      expect(ec2Mock).toHaveReceivedCommandWith(DeleteSnapshotCommand, { SnapshotId: OLD_SNAPSHOT });
      expect(output).toEqual({ amiRemoved: true, removed: 3 });
    });

    it('asks the audit table which releases are live in the environment', async () => {
      await retireRelease(input, deps);

      expect(dbMock).toHaveReceivedCommandWith(QueryCommand, {
        TableName: AUDIT,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': 'LIVE#dev' },
      });
    });

    it('records each step as a DECOMMISSIONED event of the old run', async () => {
      await retireRelease(input, deps);

      expect(stepEvents()).toEqual([
        `REVOKE_GRANT#${GRANT_ID}`,
        `DEREGISTER_IMAGE#${OLD_AMI}`,
        `DELETE_SNAPSHOT#${OLD_SNAPSHOT}`,
      ]);
      expect(auditEvents()).toContainEqual({
        pk: `RUN#${OLD_RUN_ID}`,
        sk: `EVENT#${NOW}#DECOMMISSIONED#DEREGISTER_IMAGE#${OLD_AMI}`,
        entity: 'EVENT',
        runId: OLD_RUN_ID,
        type: 'DECOMMISSIONED',
        stage: 'Decommission',
        at: NOW,
        id: `DEREGISTER_IMAGE#${OLD_AMI}`,
        detail: { action: 'DEREGISTER_IMAGE', resource: OLD_AMI, replacedBy: RUN_ID },
      });
    });

    it('ends with a RETIRE_RELEASE event naming the release that replaced it', async () => {
      await retireRelease(input, deps);

      expect(finalEvent()).toEqual({
        pk: `RUN#${OLD_RUN_ID}`,
        sk: `EVENT#${NOW}#DECOMMISSIONED#RELEASE`,
        entity: 'EVENT',
        runId: OLD_RUN_ID,
        type: 'DECOMMISSIONED',
        stage: 'Decommission',
        at: NOW,
        id: 'RELEASE',
        detail: {
          action: 'RETIRE_RELEASE',
          resource: OLD_RUN_ID,
          replacedBy: RUN_ID,
          amiKept: null,
          removed: 3,
          failures: [],
        },
      });
      expect(auditEvents().at(-1)).toBe(finalEvent());
    });

    it('treats an AMI that is already gone as nothing to remove', async () => {
      images.clear();
      ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
      ec2Mock.on(DeleteSnapshotCommand).rejects(ec2Error('InvalidSnapshot.NotFound'));

      const output = await retireRelease(input, deps);

      expect(ec2Mock).not.toHaveReceivedCommand(DeregisterImageCommand);
      expect(stepEvents()).toEqual([`REVOKE_GRANT#${GRANT_ID}`]);
      expect(output).toEqual({ amiRemoved: true, removed: 1 });
    });
  });

  describe('when a live release of the environment still uses its AMI', () => {
    beforeEach(() => {
      liveReleases = [live('sample-app', 'ami-0c0c0c0c0c0c0c0c0'), live('billing-app', OLD_AMI)];
    });

    it('keeps the AMI, its snapshots and grants', async () => {
      const output = await retireRelease(input, deps);

      expect(kmsMock).not.toHaveReceivedCommand(RevokeGrantCommand);
      expect(ec2Mock).not.toHaveReceivedCommand(DeregisterImageCommand);
      expect(ec2Mock).not.toHaveReceivedCommand(DeleteSnapshotCommand);
      expect(output).toEqual({ amiRemoved: false, removed: 0 });
    });

    it('records only the final event, saying why the AMI was kept', async () => {
      await retireRelease(input, deps);

      expect(stepEvents()).toEqual([]);
      expect(finalEvent()?.detail).toEqual({
        action: 'RETIRE_RELEASE',
        resource: OLD_RUN_ID,
        replacedBy: RUN_ID,
        amiKept: 'a live release still uses it',
        removed: 0,
        failures: [],
      });
    });
  });

  describe('when a step fails', () => {
    beforeEach(() => {
      kmsMock
        .on(RevokeGrantCommand)
        .rejects(new DependencyTimeoutException({ message: 'KMS timed out', $metadata: {} }));
    });

    it('still runs the other steps', async () => {
      await failureOf();

      expect(ec2Mock).toHaveReceivedCommandWith(DeregisterImageCommand, { ImageId: OLD_AMI });
      expect(ec2Mock).toHaveReceivedCommandWith(DeleteSnapshotCommand, { SnapshotId: OLD_SNAPSHOT });
      expect(stepEvents()).toEqual([`DEREGISTER_IMAGE#${OLD_AMI}`, `DELETE_SNAPSHOT#${OLD_SNAPSHOT}`]);
    });

    it('throws one error naming the failed step, after recording the final event with it', async () => {
      const err = await failureOf();

      const failure = `REVOKE_GRANT ${GRANT_ID}: DependencyTimeoutException: KMS timed out`;
      expect(err).toBeInstanceOf(Error);
      expect(err).toHaveProperty('message', `decommission of ${OLD_RUN_ID} incomplete: ${failure}`);
      expect(finalEvent()?.detail).toMatchObject({ removed: 2, failures: [failure] });
    });

    it('names every failed step when several fail', async () => {
      ec2Mock.on(DeleteSnapshotCommand).rejects(ec2Error('InvalidSnapshot.InUse'));

      const err = await failureOf();

      expect(err).toHaveProperty(
        'message',
        `decommission of ${OLD_RUN_ID} incomplete: ` +
          `REVOKE_GRANT ${GRANT_ID}: DependencyTimeoutException: KMS timed out; ` +
          `DELETE_SNAPSHOT ${OLD_SNAPSHOT}: InvalidSnapshot.InUse: InvalidSnapshot.InUse`,
      );
      expect(stepEvents()).toEqual([`DEREGISTER_IMAGE#${OLD_AMI}`]);
    });
  });
});
