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
import { DistributionFailedError } from '../../shared/errors';
import type { RunConfig } from '../../shared/run-config';
import { RUN_CONFIG_PARAMETER, RUN_ID, RUN_REF, runConfigFixture } from './support/fixtures';

const ec2Mock = mockClient(EC2Client);
const kmsMock = mockClient(KMSClient);
const ssmMock = mockClient(SSMClient);
const dbMock = mockClient(DynamoDBDocumentClient);

const NOW = '2025-03-04T10:50:00.000Z';
const KEY_ARN = TEST_ENV.KMS_KEY_ARN;
const BAKED_AMI = 'ami-0a1b2c3d4e5f60718';
const BAKED_SNAPSHOTS = ['snap-0a1b2c3d4e5f60718', 'snap-0b1c2d3e4f5a60819'];
const COPY_AMI = 'ami-0c0c0c0c0c0c0c0c0';
const COPY_SNAPSHOTS = ['snap-0c0c0c0c0c0c0c0c1', 'snap-0c0c0c0c0c0c0c0c2'];
const GRANT_ID = '0c237476b39f8bc44e45212e08498fbe3151305030726c0590dd8d3e9f3d6a60';
const deps: DistributeDeps = {
  ec2: new EC2Client({}),
  kms: new KMSClient({}),
  ssm: new SSMClient({}),
  audit: new AuditRepository(DynamoDBDocumentClient.from(new DynamoDBClient({})), TEST_ENV.AUDIT_TABLE),
  kmsKeyArn: KEY_ARN,
  copyWaitSeconds: 60,
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
  dbMock.on(PutCommand).resolves({}); // The audit table as far as this test wrote it: a retry finds the copy the first attempt recorded.
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
});

afterEach(() => {
  ec2Mock.reset();
  kmsMock.reset();
  ssmMock.reset();
  dbMock.reset();
});

describe('distribute, retried or failing mid-way', () => {
  it('completes when Step Functions retries it after it already replaced an unencrypted AMI', async () => {
    givenBakedImage({ Encrypted: false });
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
