import { TEST_ENV } from './support/env';
import { DynamoDBClient, ProvisionedThroughputExceededException } from '@aws-sdk/client-dynamodb';
import {
  CopyImageCommand,
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  EC2Client,
  ModifyImageAttributeCommand,
  ModifySnapshotAttributeCommand,
  type DescribeImagesCommandInput,
  type Image,
} from '@aws-sdk/client-ec2';
import { CreateGrantCommand, KMSClient } from '@aws-sdk/client-kms';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { AuditRepository } from '../../shared/audit';
import { distribute, type DistributeDeps, type DistributeInput } from '../../shared/distribute';
import { ConfigurationError, DistributionFailedError } from '../../shared/errors';
import type { RunConfig } from '../../shared/run-config';
import { inCallOrder } from './support/call-order';
import {
  BUILD_ID,
  EXECUTION_ARN,
  RUN_CONFIG_PARAMETER,
  RUN_ID,
  RUN_REF,
  RUN_TAGS,
  runConfigFixture,
} from './support/fixtures';

const ec2Mock = mockClient(EC2Client);
const kmsMock = mockClient(KMSClient);
const ssmMock = mockClient(SSMClient);
const dbMock = mockClient(DynamoDBDocumentClient);

const NOW = '2025-03-04T10:50:00.000Z';
const KEY_ARN = TEST_ENV.KMS_KEY_ARN;
const AWS_MANAGED_EBS_KEY = 'arn:aws:kms:eu-west-1:123456789012:key/9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d';
const ACCOUNT = '111122223333';
const BAKED_AMI = 'ami-0a1b2c3d4e5f60718';
const BAKED_SNAPSHOTS = ['snap-0a1b2c3d4e5f60718', 'snap-0b1c2d3e4f5a60819'];
const COPY_AMI = 'ami-0c0c0c0c0c0c0c0c0';
const COPY_SNAPSHOTS = ['snap-0c0c0c0c0c0c0c0c1', 'snap-0c0c0c0c0c0c0c0c2'];
const GRANT_ID = '0c237476b39f8bc44e45212e08498fbe3151305030726c0590dd8d3e9f3d6a60';
const SECRET = 'planted-secret-d41d8cd98f00';

const deps: DistributeDeps = {
  ec2: new EC2Client({}),
  kms: new KMSClient({}),
  ssm: new SSMClient({}),
  audit: new AuditRepository(DynamoDBDocumentClient.from(new DynamoDBClient({})), TEST_ENV.AUDIT_TABLE),
  kmsKeyArn: KEY_ARN,
  copyWaitSeconds: 60,
  stage: {
    stage: 'dev',
    region: 'eu-west-1',
    distribution: { maxConcurrentCopies: 5, copyWaitSeconds: 60, copyRetries: 2, regions: {} },
  },
  now: () => new Date(NOW),
};

const input: DistributeInput = {
  run: { ...RUN_REF },
  runConfigParameter: RUN_CONFIG_PARAMETER,
  bake: { amiId: BAKED_AMI, snapshotIds: BAKED_SNAPSHOTS, region: 'eu-west-1' },
};

/** An AMI as DescribeImages returns it: EBS volumes (encrypted as asked) plus an instance-store volume. */
const image = (
  ImageId: string,
  snapshots: string[],
  ebs: { Encrypted: boolean; KmsKeyId?: string },
): Image => ({
  ImageId,
  Name: `sample-app-1.4.2-${RUN_ID}`,
  State: 'available',
  // Packer (and the encrypted copy) tag what the run makes with its run id.
  Tags: [{ Key: 'ami-pipeline:run-id', Value: RUN_ID }],
  BlockDeviceMappings: [
    ...snapshots.map((SnapshotId, i) => ({
      DeviceName: `/dev/xvd${'abcdef'[i]}`,
      Ebs: { SnapshotId, VolumeSize: 20, VolumeType: 'gp3' as const, ...ebs },
    })),
    { DeviceName: '/dev/sdz', VirtualName: 'ephemeral0' },
  ],
});

/** EC2's images, by id: DescribeImages, CopyImage and DeregisterImage act on it. */
let images: Map<string, Image>;

const givenBakedImage = (ebs: { Encrypted: boolean; KmsKeyId?: string }): void => {
  images.set(BAKED_AMI, image(BAKED_AMI, BAKED_SNAPSHOTS, ebs));
};

const givenRunConfig = (config: RunConfig = runConfigFixture()): void => {
  ssmMock.on(GetParameterCommand, { Name: RUN_CONFIG_PARAMETER }).resolves({
    Parameter: { Name: RUN_CONFIG_PARAMETER, Type: 'SecureString', Value: JSON.stringify(config) },
  });
};

const auditItems = (): Record<string, unknown>[] =>
  dbMock.commandCalls(PutCommand).map((call) => call.args[0].input.Item ?? {});

const auditResource = (resourceType: string, resourceId: string) =>
  auditItems().find((item) => item.resourceType === resourceType && item.resourceId === resourceId);

/** Runs distribute and returns what it threw (the test fails if it did not throw). */
const failureOf = async (): Promise<unknown> => {
  try {
    await distribute(input, deps);
  } catch (err) {
    return err;
  }
  throw new Error('expected distribute to fail');
};

beforeEach(() => {
  images = new Map();
  givenBakedImage({ Encrypted: true, KmsKeyId: KEY_ARN });
  givenRunConfig();
  ec2Mock.on(DescribeImagesCommand).callsFake(async (req: DescribeImagesCommandInput) => ({
    Images: (req.ImageIds ?? []).flatMap((id) => images.get(id) ?? []),
  }));
  ec2Mock.on(CopyImageCommand).callsFake(async () => {
    images.set(COPY_AMI, image(COPY_AMI, COPY_SNAPSHOTS, { Encrypted: true, KmsKeyId: KEY_ARN }));
    return { ImageId: COPY_AMI };
  });
  ec2Mock.on(DeregisterImageCommand).callsFake(async (req: { ImageId?: string }) => {
    images.delete(req.ImageId ?? '');
    return {};
  });
  ec2Mock.on(DeleteSnapshotCommand).resolves({});
  ec2Mock.on(CreateTagsCommand).resolves({});
  ec2Mock.on(ModifyImageAttributeCommand).resolves({});
  ec2Mock.on(ModifySnapshotAttributeCommand).resolves({});
  kmsMock.on(CreateGrantCommand).resolves({ GrantId: GRANT_ID, GrantToken: 'grant-token' });
  dbMock.on(PutCommand).resolves({});
  dbMock.on(QueryCommand).resolves({ Items: [] });
});

afterEach(() => {
  ec2Mock.reset();
  kmsMock.reset();
  ssmMock.reset();
  dbMock.reset();
});

describe('distribute', () => {
  describe('an AMI the bake already encrypted with the stage key', () => {
    it('reads the decrypted run config and does not copy the AMI', async () => {
      await distribute(input, deps);

      expect(ssmMock).toHaveReceivedCommandWith(GetParameterCommand, {
        Name: RUN_CONFIG_PARAMETER,
        WithDecryption: true,
      });
      expect(ec2Mock).toHaveReceivedCommandTimes(CopyImageCommand, 0);
      expect(ec2Mock).toHaveReceivedCommandTimes(DeregisterImageCommand, 0);
      expect(ec2Mock).toHaveReceivedCommandTimes(DeleteSnapshotCommand, 0);
    });

    it('tags the AMI and its snapshots with the platform tags, the version, the build and the execution', async () => {
      await distribute(input, deps);

      expect(ec2Mock).toHaveReceivedCommandTimes(CreateTagsCommand, 1);
      expect(ec2Mock.commandCalls(CreateTagsCommand)[0]?.args[0].input).toEqual({
        Resources: [BAKED_AMI, ...BAKED_SNAPSHOTS],
        Tags: [
          { Key: 'ami-pipeline:run-id', Value: RUN_ID },
          { Key: 'ami-pipeline:app-id', Value: 'sample-app' },
          { Key: 'ami-pipeline:stage', Value: 'dev' },
          { Key: 'ami-pipeline:version', Value: '1.4.2' },
          { Key: 'ami-pipeline:build-id', Value: BUILD_ID },
          { Key: 'ami-pipeline:execution-arn', Value: EXECUTION_ARN },
        ],
      });
    });

    it("shares the AMI and each snapshot with the app's account", async () => {
      await distribute(input, deps);

      expect(ec2Mock).toHaveReceivedCommandWith(ModifyImageAttributeCommand, {
        ImageId: BAKED_AMI,
        LaunchPermission: { Add: [{ UserId: ACCOUNT }] },
      });
      expect(ec2Mock).toHaveReceivedCommandTimes(ModifySnapshotAttributeCommand, 2);
      for (const SnapshotId of BAKED_SNAPSHOTS) {
        expect(ec2Mock).toHaveReceivedCommandWith(ModifySnapshotAttributeCommand, {
          SnapshotId,
          Attribute: 'createVolumePermission',
          OperationType: 'add',
          UserIds: [ACCOUNT],
        });
      }
    });

    it('grants the account only what launching needs on the stage key, named after the run', async () => {
      await distribute(input, deps);

      expect(kmsMock).toHaveReceivedCommandTimes(CreateGrantCommand, 1);
      expect(kmsMock.commandCalls(CreateGrantCommand)[0]?.args[0].input).toEqual({
        KeyId: KEY_ARN,
        GranteePrincipal: `arn:aws:iam::${ACCOUNT}:root`,
        Operations: [
          'Decrypt',
          'DescribeKey',
          'CreateGrant',
          'GenerateDataKeyWithoutPlaintext',
          'ReEncryptFrom',
          'ReEncryptTo',
        ],
        Name: `ami-pipeline-${RUN_ID}`,
      });
    });

    it('records the launch permission, each snapshot permission and the grant in the audit table', async () => {
      await distribute(input, deps);

      const base = {
        pk: `RUN#${RUN_ID}`,
        entity: 'RESOURCE',
        runId: RUN_ID,
        appId: 'sample-app',
        environment: 'dev',
        executionArn: EXECUTION_ARN,
        buildId: BUILD_ID,
        version: '1.4.2',
        createdAt: NOW,
      };
      expect(auditItems()).toEqual([
        expect.objectContaining({
          ...base,
          sk: `RESOURCE#LAUNCH_PERMISSION#${BAKED_AMI}/${ACCOUNT}`,
          resourceType: 'LAUNCH_PERMISSION',
          detail: { amiId: BAKED_AMI, account: ACCOUNT, region: 'eu-west-1' },
        }),
        expect.objectContaining({
          ...base,
          resourceType: 'SNAPSHOT_PERMISSION',
          resourceId: `${BAKED_SNAPSHOTS[0]}/${ACCOUNT}`,
          detail: { snapshotId: BAKED_SNAPSHOTS[0], account: ACCOUNT, region: 'eu-west-1' },
        }),
        expect.objectContaining({
          ...base,
          resourceType: 'SNAPSHOT_PERMISSION',
          resourceId: `${BAKED_SNAPSHOTS[1]}/${ACCOUNT}`,
          detail: { snapshotId: BAKED_SNAPSHOTS[1], account: ACCOUNT, region: 'eu-west-1' },
        }),
        expect.objectContaining({
          ...base,
          resourceType: 'KMS_GRANT',
          resourceId: GRANT_ID,
          detail: {
            keyArn: KEY_ARN,
            grantee: ACCOUNT,
            operations: [
              'Decrypt',
              'DescribeKey',
              'CreateGrant',
              'GenerateDataKeyWithoutPlaintext',
              'ReEncryptFrom',
              'ReEncryptTo',
            ],
            region: 'eu-west-1',
          },
        }),
      ]);
    });

    it('returns the AMI, its snapshots, the region, the accounts, the grants and no copies', async () => {
      const output = await distribute(input, deps);

      expect(output).toStrictEqual({
        amiId: BAKED_AMI,
        snapshotIds: BAKED_SNAPSHOTS,
        region: 'eu-west-1',
        sharedWith: [ACCOUNT],
        grantIds: [GRANT_ID],
        copies: [],
      });
    });

    it('keeps a secret in the run config out of every tag, audit item and output', async () => {
      const config = runConfigFixture();
      config.app.bake.chefAttributes = { sample_app: { db_password: SECRET } };
      givenRunConfig(config);

      const output = await distribute(input, deps);

      expect(JSON.stringify(output)).not.toContain(SECRET);
      expect(JSON.stringify(ec2Mock.calls().map((call) => call.args[0].input))).not.toContain(SECRET);
      expect(JSON.stringify(kmsMock.calls().map((call) => call.args[0].input))).not.toContain(SECRET);
      expect(JSON.stringify(auditItems())).not.toContain(SECRET);
    });
  });

  describe.each([
    ['an unencrypted AMI', { Encrypted: false }],
    ['an AMI encrypted with another key', { Encrypted: true, KmsKeyId: AWS_MANAGED_EBS_KEY }],
  ])('%s', (_case, ebs) => {
    beforeEach(() => {
      givenBakedImage(ebs);
    });

    it('copies it encrypted with the stage key, tagged at creation', async () => {
      await distribute(input, deps);

      expect(ec2Mock).toHaveReceivedCommandTimes(CopyImageCommand, 1);
      const tags = Object.entries(RUN_TAGS).map(([Key, Value]) => ({ Key, Value }));
      expect(ec2Mock.commandCalls(CopyImageCommand)[0]?.args[0].input).toEqual({
        SourceImageId: BAKED_AMI,
        SourceRegion: 'eu-west-1',
        Name: `sample-app-1.4.2-${RUN_ID}-enc`,
        Encrypted: true,
        KmsKeyId: KEY_ARN,
        ClientToken: `ami-pipeline-${RUN_ID}-encrypt`,
        TagSpecifications: [
          { ResourceType: 'image', Tags: tags },
          { ResourceType: 'snapshot', Tags: tags },
        ],
      });
    });

    it('waits for the copy, then deregisters the original and deletes its snapshots', async () => {
      await distribute(input, deps);

      const waitedForCopy = ec2Mock
        .commandCalls(DescribeImagesCommand)
        .find((call) => call.args[0].input.ImageIds?.includes(COPY_AMI));
      const deregistered = ec2Mock.commandCalls(DeregisterImageCommand);
      const deleted = ec2Mock.commandCalls(DeleteSnapshotCommand);
      expect(deregistered.map((call) => call.args[0].input)).toEqual([{ ImageId: BAKED_AMI }]);
      expect(deleted.map((call) => call.args[0].input)).toEqual(
        BAKED_SNAPSHOTS.map((SnapshotId) => ({ SnapshotId })),
      );
      expect(inCallOrder(waitedForCopy, deregistered[0], deleted[0])).toBe(true);
    });

    it('shares the copy and its snapshots, not the original', async () => {
      const output = await distribute(input, deps);

      expect(output).toMatchObject({ amiId: COPY_AMI, snapshotIds: COPY_SNAPSHOTS });
      expect(ec2Mock).toHaveReceivedCommandWith(CreateTagsCommand, {
        Resources: [COPY_AMI, ...COPY_SNAPSHOTS],
      });
      expect(ec2Mock).toHaveReceivedCommandWith(ModifyImageAttributeCommand, { ImageId: COPY_AMI });
      expect(ec2Mock).not.toHaveReceivedCommandWith(ModifyImageAttributeCommand, { ImageId: BAKED_AMI });
      expect(
        ec2Mock.commandCalls(ModifySnapshotAttributeCommand).map((call) => call.args[0].input.SnapshotId),
      ).toEqual(COPY_SNAPSHOTS);
    });

    it('records the copy and its snapshots before removing the original, and the replacement as an event', async () => {
      await distribute(input, deps);

      expect(auditResource('AMI', COPY_AMI)).toMatchObject({
        detail: { copiedFrom: BAKED_AMI, reason: 'encrypt with the stage key' },
      });
      for (const snapshotId of COPY_SNAPSHOTS) {
        expect(auditResource('SNAPSHOT', snapshotId)).toMatchObject({ detail: { amiId: COPY_AMI } });
      }
      const copyRecorded = dbMock
        .commandCalls(PutCommand)
        .find((call) => call.args[0].input.Item?.resourceId === COPY_AMI);
      expect(inCallOrder(copyRecorded, ec2Mock.commandCalls(DeregisterImageCommand)[0])).toBe(true);
      expect(auditItems()).toContainEqual(
        expect.objectContaining({
          sk: `EVENT#${NOW}#UNENCRYPTED_AMI_REPLACED#${BAKED_AMI}`,
          type: 'UNENCRYPTED_AMI_REPLACED',
          stage: 'Distribute',
          detail: { original: BAKED_AMI, copy: COPY_AMI, removedSnapshots: BAKED_SNAPSHOTS },
        }),
      );
    });

    it('keeps the original and leaves the recorded copy to compensation when the copy fails', async () => {
      ec2Mock.on(CopyImageCommand).callsFake(async () => {
        images.set(COPY_AMI, {
          ...image(COPY_AMI, COPY_SNAPSHOTS, { Encrypted: true, KmsKeyId: KEY_ARN }),
          State: 'failed',
        });
        return { ImageId: COPY_AMI };
      });

      await expect(distribute(input, deps)).rejects.toThrow();

      expect(auditResource('AMI', COPY_AMI)).toBeDefined();
      expect(ec2Mock).toHaveReceivedCommandTimes(DeregisterImageCommand, 0);
      expect(ec2Mock).toHaveReceivedCommandTimes(ModifyImageAttributeCommand, 0);
      expect(kmsMock).toHaveReceivedCommandTimes(CreateGrantCommand, 0);
    });
  });

  describe('failures', () => {
    it('throws DistributionFailedError and shares nothing when the baked AMI does not exist', async () => {
      images.clear();

      const err = await failureOf();

      expect(err).toBeInstanceOf(DistributionFailedError);
      expect(err).toHaveProperty('name', 'DistributionFailedError');
      expect(err).toHaveProperty('message', `AMI ${BAKED_AMI} from the bake does not exist`);
      expect(ec2Mock).toHaveReceivedCommandTimes(CreateTagsCommand, 0);
      expect(ec2Mock).toHaveReceivedCommandTimes(ModifyImageAttributeCommand, 0);
      expect(kmsMock).toHaveReceivedCommandTimes(CreateGrantCommand, 0);
    });

    it.each([
      [
        'another run',
        [{ Key: 'ami-pipeline:run-id', Value: '0123456789abcdef0123' }],
        '"0123456789abcdef0123"',
      ],
      ['nobody (untagged)', [], 'missing'],
    ])(
      'refuses an AMI made by %s: nothing tagged, shared or granted (a bake result cannot hand over a foreign image)',
      async (_who, Tags, tagText) => {
        givenBakedImage({ Encrypted: true, KmsKeyId: KEY_ARN });
        images.set(BAKED_AMI, { ...(images.get(BAKED_AMI) as Image), Tags });

        const err = await failureOf();

        expect(err).toBeInstanceOf(DistributionFailedError);
        expect(err).toHaveProperty(
          'message',
          `bake.amiId: ${BAKED_AMI} was not made by this run (its ami-pipeline:run-id tag is ${tagText})`,
        );
        expect(ec2Mock).toHaveReceivedCommandTimes(CreateTagsCommand, 0);
        expect(ec2Mock).toHaveReceivedCommandTimes(ModifyImageAttributeCommand, 0);
        expect(kmsMock).toHaveReceivedCommandTimes(CreateGrantCommand, 0);
      },
    );

    it('throws DistributionFailedError when KMS returns no grant id', async () => {
      kmsMock.on(CreateGrantCommand).resolves({});

      const err = await failureOf();

      expect(err).toBeInstanceOf(DistributionFailedError);
      expect(err).toHaveProperty(
        'message',
        `KMS CreateGrant for ${ACCOUNT} in eu-west-1 returned no grant id`,
      );
      expect(auditItems().some((item) => item.resourceType === 'KMS_GRANT')).toBe(false);
    });

    it('throws ConfigurationError when the run config does not match its schema', async () => {
      const config: Record<string, unknown> = { ...runConfigFixture() };
      delete config.platform;
      ssmMock.on(GetParameterCommand).resolves({ Parameter: { Value: JSON.stringify(config) } });

      const err = await failureOf();

      expect(err).toBeInstanceOf(ConfigurationError);
      expect(err).toHaveProperty('message', expect.stringContaining('platform: is required'));
      expect(ec2Mock.calls()).toHaveLength(0);
    });
  });
});

describe('distribute, retried or failing mid-way', () => {
  it('completes when Step Functions retries it after it already replaced an unencrypted AMI', async () => {
    givenBakedImage({ Encrypted: false });
    // The audit table as far as this test wrote it: the retry finds the copy the first attempt recorded.
    dbMock.on(QueryCommand).callsFake(async (req: { ExpressionAttributeValues?: Record<string, string> }) => {
      const pk = req.ExpressionAttributeValues?.[':pk'];
      const prefix = req.ExpressionAttributeValues?.[':prefix'] ?? '';
      return {
        Items: dbMock
          .commandCalls(PutCommand)
          .map((call) => call.args[0].input.Item as Record<string, unknown>)
          .filter((item) => item.pk === pk && String(item.sk).startsWith(prefix)),
      };
    });
    // The first attempt copies the AMI, deregisters the unencrypted original, then fails on an error
    // the state's Retry lists (ProvisionedThroughputExceededException) while recording the share.
    let throttled = false;
    dbMock.on(PutCommand).callsFake(async (req: { Item?: { resourceType?: string } }) => {
      if (req.Item?.resourceType === 'LAUNCH_PERMISSION' && !throttled) {
        throttled = true;
        throw new ProvisionedThroughputExceededException({ message: 'throttled', $metadata: {} });
      }
      return {};
    });
    await expect(distribute(input, deps)).rejects.toThrow(ProvisionedThroughputExceededException);
    expect(images.has(BAKED_AMI)).toBe(false);

    // Step Functions runs the worker again with the same input.
    const output = await distribute(input, deps);

    expect(output.amiId).toBe(COPY_AMI);
  });

  it('reports a failed encryption copy as DistributionFailedError', async () => {
    givenBakedImage({ Encrypted: false });
    ec2Mock.on(CopyImageCommand).callsFake(async () => {
      images.set(COPY_AMI, {
        ...image(COPY_AMI, COPY_SNAPSHOTS, { Encrypted: true, KmsKeyId: KEY_ARN }),
        State: 'failed',
      });
      return { ImageId: COPY_AMI };
    });

    const err = await failureOf();

    expect(err).toBeInstanceOf(DistributionFailedError);
  });
});
