import {
  CopyImageCommand,
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  waitUntilImageAvailable,
  type EC2Client,
  type Image,
} from '@aws-sdk/client-ec2';
import type { KMSClient } from '@aws-sdk/client-kms';
import type { SSMClient } from '@aws-sdk/client-ssm';
import * as z from 'zod';
import type { AuditRepository } from './audit';
import { bakeResultSchema } from './commands/contract';
import type { StageConfig } from './config/stage';
import { accountsOf, resourceRecorder, shareImage, type RecordResource } from './distribution/share';
import { DistributionFailedError } from './errors';
import { madeByRun, RUN_ID_TAG, snapshotsOf } from './images';
import { logger } from './logger';
import { loadRunConfig } from './run-config';
import { runRefSchema } from './run-ref';

export { LAUNCH_GRANT_OPERATIONS } from './distribution/share';

export const distributeInputSchema = z.object({
  run: runRefSchema,
  runConfigParameter: z.string().startsWith('/ami-pipeline/'),
  bake: bakeResultSchema,
});

export type DistributeInput = z.infer<typeof distributeInputSchema>;

export interface DistributeOutput {
  amiId: string;
  snapshotIds: string[];
  region: string;
  /** The accounts the AMI is shared with (the app's account first). */
  sharedWith: string[];
  grantIds: string[];
  /** The other regions to copy it to, one Map item each (state machine DistributeToRegions). */
  copies: { region: string }[];
}

export interface DistributeDeps {
  ec2: EC2Client;
  kms: KMSClient;
  ssm: SSMClient;
  audit: AuditRepository;
  kmsKeyArn: string;
  /** Upper bound on waiting for an encrypted copy (the Lambda timeout must exceed it). */
  copyWaitSeconds: number;
  /** The stage's distribution regions (an app may ask for copies only there). */
  stage: Pick<StageConfig, 'stage' | 'region' | 'distribution'>;
  now: () => Date;
}

export const encryptedWith = (image: Image, keyArn: string): boolean => {
  const volumes = (image.BlockDeviceMappings ?? []).filter((m) => m.Ebs);
  return volumes.length > 0 && volumes.every((m) => m.Ebs?.Encrypted === true && m.Ebs.KmsKeyId === keyArn);
};

/**
 * Distribute: make sure the AMI is encrypted with the stage key (copy it if not, and remove the
 * unencrypted original), tag it and its snapshots with the run, share it with the application
 * account (launch permission, snapshot create-volume permission, a KMS grant for launching), and
 * record each of those in the audit table so compensation and auditors can find them.
 */
export const distribute = async (input: DistributeInput, deps: DistributeDeps): Promise<DistributeOutput> => {
  const { run } = input;
  const config = await loadRunConfig(deps.ssm, input.runConfigParameter);
  const accounts = accountsOf(config);
  const record = resourceRecorder(run, config, deps.audit, deps.now);

  let image = await currentImage(input, deps);
  // The bake's result.json names the AMI; only an image this run made (tagged with its run id at
  // creation) may be tagged, shared, granted and later removed — never another app's.
  const madeBy = madeByRun(image);
  if (madeBy !== input.run.runId) {
    throw new DistributionFailedError(
      `bake.amiId: ${String(image.ImageId)} was not made by this run (its ${RUN_ID_TAG} tag is ${madeBy === undefined ? 'missing' : `"${madeBy}"`})`,
    );
  }
  // Checked again here (PreProvision checked the app config against this stage): a copy needs the
  // stage's key in its region, and nothing may be shared before the whole plan is known to work.
  const unknown = config.app.distribution.regions.filter((r) => !(r in deps.stage.distribution.regions));
  if (unknown.length) {
    throw new DistributionFailedError(
      `appConfig.distribution.regions: ${unknown.join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not distribution regions of stage ${deps.stage.stage}`,
    );
  }
  if (!encryptedWith(image, deps.kmsKeyArn)) {
    image = await replaceWithEncryptedCopy(image, input, config.platform.tags, deps, record);
  }
  const amiId = image.ImageId as string;
  const snapshotIds = snapshotsOf(image);

  await deps.ec2.send(
    new CreateTagsCommand({
      Resources: [amiId, ...snapshotIds],
      Tags: [
        ...Object.entries(config.platform.tags).map(([Key, Value]) => ({ Key, Value })),
        { Key: 'ami-pipeline:version', Value: config.release.version },
        { Key: 'ami-pipeline:build-id', Value: config.release.buildId },
        { Key: 'ami-pipeline:execution-arn', Value: run.executionArn },
      ],
    }),
  );
  const grantIds = await shareImage(
    { region: input.bake.region, ec2: deps.ec2, kms: deps.kms, kmsKeyArn: deps.kmsKeyArn },
    { amiId, snapshotIds },
    accounts,
    run.runId,
    record,
  );

  const copies = config.app.distribution.regions.map((region) => ({ region }));
  logger.info('AMI distributed', {
    amiId,
    accounts,
    snapshots: snapshotIds.length,
    copies: copies.map((c) => c.region),
  });
  return { amiId, snapshotIds, region: input.bake.region, sharedWith: accounts, grantIds, copies };
};

export const describeImage = async (ec2: EC2Client, amiId: string): Promise<Image | undefined> => {
  try {
    const { Images } = await ec2.send(new DescribeImagesCommand({ ImageIds: [amiId] }));
    return Images?.[0]?.ImageId ? Images[0] : undefined;
  } catch (err) {
    if (err instanceof Error && err.name === 'InvalidAMIID.NotFound') return undefined;
    throw err;
  }
};

/**
 * The baked AMI, or — when a retried Distribute already replaced it — its encrypted copy (recorded
 * in the audit table before the original was removed).
 */
const currentImage = async (input: DistributeInput, deps: DistributeDeps): Promise<Image> => {
  const baked = await describeImage(deps.ec2, input.bake.amiId);
  if (baked) return baked;
  const copies = (await deps.audit.resourcesOf(input.run.runId, 'AMI')).filter(
    (r) => r.detail?.copiedFrom === input.bake.amiId,
  );
  for (const copy of copies) {
    const image = await describeImage(deps.ec2, copy.resourceId);
    if (image) return image;
  }
  throw new DistributionFailedError(`AMI ${input.bake.amiId} from the bake does not exist`);
};

const replaceWithEncryptedCopy = async (
  original: Image,
  input: DistributeInput,
  tags: Record<string, string>,
  deps: DistributeDeps,
  record: RecordResource,
): Promise<Image> => {
  const Tags = Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
  const copy = await deps.ec2.send(
    new CopyImageCommand({
      SourceImageId: original.ImageId,
      SourceRegion: input.bake.region,
      Name: `${original.Name ?? input.bake.amiId}-enc`.slice(0, 128),
      Encrypted: true,
      KmsKeyId: deps.kmsKeyArn,
      ClientToken: `ami-pipeline-${input.run.runId}-encrypt`,
      // Tagged at creation: the role may only touch images carrying the stage tag.
      TagSpecifications: [
        { ResourceType: 'image', Tags },
        { ResourceType: 'snapshot', Tags },
      ],
    }),
  );
  const copyId = copy.ImageId;
  if (!copyId) throw new DistributionFailedError(`CopyImage of ${original.ImageId} returned no image id`);
  // Record before waiting: if the wait fails, compensation still finds the copy.
  await record('AMI', copyId, { copiedFrom: original.ImageId, reason: 'encrypt with the stage key' });
  try {
    await waitUntilImageAvailable(
      { client: deps.ec2, maxWaitTime: deps.copyWaitSeconds, minDelay: 15 },
      { ImageIds: [copyId] },
    );
  } catch (err) {
    throw new DistributionFailedError(
      `encrypted copy ${copyId} of ${String(original.ImageId)} did not become available within ${deps.copyWaitSeconds} s`,
      { cause: err },
    );
  }
  const encrypted = await describeImage(deps.ec2, copyId);
  if (!encrypted) throw new DistributionFailedError(`encrypted copy ${copyId} disappeared`);
  for (const snapshotId of snapshotsOf(encrypted)) await record('SNAPSHOT', snapshotId, { amiId: copyId });

  await deps.ec2.send(new DeregisterImageCommand({ ImageId: original.ImageId }));
  for (const snapshotId of snapshotsOf(original)) {
    await deps.ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
  }
  await deps.audit.recordEvent({
    runId: input.run.runId,
    type: 'UNENCRYPTED_AMI_REPLACED',
    stage: 'Distribute',
    at: deps.now().toISOString(),
    id: original.ImageId as string,
    detail: { original: original.ImageId, copy: copyId, removedSnapshots: snapshotsOf(original) },
  });
  return encrypted;
};
