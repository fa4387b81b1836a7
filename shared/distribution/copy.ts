import { CopyImageCommand, waitUntilImageAvailable, type Image } from '@aws-sdk/client-ec2';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import * as z from 'zod';
import type { AuditRepository } from '../audit';
import type { StageConfig } from '../config/stage';
import { describeImage, encryptedWith } from '../distribute';
import type { RegionalClients } from '../clients/regional';
import { CopyPendingError, DistributionFailedError } from '../errors';
import { madeByRun, RUN_ID_TAG, snapshotsOf } from '../images';
import { logger } from '../logger';
import { loadRunConfig } from '../run-config';
import { runRefSchema } from '../run-ref';
import { accountsOf, resourceRecorder, shareImage } from './share';

const AMI_ID = /^ami-[a-f0-9]{8,17}$/;

export const copyInputSchema = z.object({
  action: z.literal('copy'),
  run: runRefSchema,
  runConfigParameter: z.string().startsWith('/ami-pipeline/'),
  /** The encrypted, shared AMI Distribute left in the stage's region. */
  source: z.object({ amiId: z.string().regex(AMI_ID), region: z.string().min(1) }),
  region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/),
});

export type CopyInput = z.infer<typeof copyInputSchema>;

export interface CopyOutput {
  region: string;
  amiId: string;
  snapshotIds: string[];
  grantIds: string[];
}

export interface CopyDeps {
  /** The stage region's EC2 (to read the source image). */
  ec2: EC2Client;
  ssm: SSMClient;
  clientsIn: (region: string) => RegionalClients;
  audit: AuditRepository;
  stage: Pick<StageConfig, 'stage' | 'region' | 'distribution'>;
  now: () => Date;
}

/**
 * One region of a run's distribution: copies the AMI there, encrypted with that region's stage key,
 * waits for it with the EC2 waiter (one Lambda invocation, no state transitions while it waits),
 * and shares it with the app's accounts as Distribute did in the stage's region. The copy is
 * recorded before the wait, so compensation finds it whatever happens next; its client token makes
 * a retried attempt adopt the same copy instead of starting another.
 */
export const copyToRegion = async (input: CopyInput, deps: CopyDeps): Promise<CopyOutput> => {
  const { run, region } = input;
  const config = await loadRunConfig(deps.ssm, input.runConfigParameter);
  const target = deps.stage.distribution.regions[region];
  if (!config.app.distribution.regions.includes(region) || !target) {
    throw new DistributionFailedError(
      `region: ${region} is not a distribution region of this app (${config.app.distribution.regions.join(', ') || 'none'}) and stage ${deps.stage.stage}`,
    );
  }
  const clients = deps.clientsIn(region);
  const record = resourceRecorder(run, config, deps.audit, deps.now);

  const source = await describeImage(deps.ec2, input.source.amiId);
  if (!source) throw new DistributionFailedError(`source AMI ${input.source.amiId} does not exist`);
  if (madeByRun(source) !== run.runId) {
    throw new DistributionFailedError(
      `source.amiId: ${input.source.amiId} was not made by this run (its ${RUN_ID_TAG} tag differs)`,
    );
  }

  const Tags = [
    ...Object.entries(config.platform.tags).map(([Key, Value]) => ({ Key, Value })),
    { Key: 'ami-pipeline:version', Value: config.release.version },
    { Key: 'ami-pipeline:build-id', Value: config.release.buildId },
    { Key: 'ami-pipeline:execution-arn', Value: run.executionArn },
    { Key: 'ami-pipeline:copied-from', Value: `${input.source.region}/${input.source.amiId}` },
  ];
  const copy = await clients.ec2.send(
    new CopyImageCommand({
      SourceImageId: input.source.amiId,
      SourceRegion: input.source.region,
      Name: source.Name ?? `${run.appId}-${config.release.version}-${run.runId}`,
      Description: `ami-pipeline ${run.appId} ${config.release.version} (run ${run.runId}), copy of ${input.source.region}/${input.source.amiId}`,
      Encrypted: true,
      KmsKeyId: target.kmsKeyArn,
      // The same token on a retried attempt returns the copy already started, not a second one.
      ClientToken: `ami-pipeline-${run.runId}-${region}`,
      // Tagged at creation: the role may only touch images and snapshots carrying the stage tag.
      TagSpecifications: [
        { ResourceType: 'image', Tags },
        { ResourceType: 'snapshot', Tags },
      ],
    }),
  );
  const amiId = copy.ImageId;
  if (!amiId) throw new DistributionFailedError(`CopyImage to ${region} returned no image id`);
  await record('AMI', amiId, {
    region,
    copiedFrom: input.source.amiId,
    sourceRegion: input.source.region,
    kmsKeyArn: target.kmsKeyArn,
  });

  // The EC2 waiter retries on every error until its time is up: one look first, so a denied or
  // failing DescribeImages fails the attempt now rather than after copyWaitSeconds.
  await describeImage(clients.ec2, amiId);
  try {
    await waitUntilImageAvailable(
      { client: clients.ec2, maxWaitTime: deps.stage.distribution.copyWaitSeconds, minDelay: 15 },
      { ImageIds: [amiId] },
    );
  } catch (err) {
    if (err instanceof Error && err.name === 'TimeoutError') {
      throw new CopyPendingError(
        `copy ${amiId} of ${input.source.amiId} in ${region} is still pending after ${deps.stage.distribution.copyWaitSeconds} s`,
        { cause: err },
      );
    }
    // The waiter's own message is the whole DescribeImages answer: name the state instead.
    const state = await describeImage(clients.ec2, amiId).then(
      (image) => image?.State ?? 'gone',
      () => 'unknown',
    );
    throw new DistributionFailedError(
      `copy ${amiId} of ${input.source.amiId} in ${region} did not become available (its state is ${state})`,
      { cause: err },
    );
  }
  const image: Image | undefined = await describeImage(clients.ec2, amiId);
  if (!image) throw new DistributionFailedError(`copy ${amiId} in ${region} disappeared`);
  if (!encryptedWith(image, target.kmsKeyArn)) {
    throw new DistributionFailedError(
      `copy ${amiId} in ${region} is not encrypted with the stage key ${target.kmsKeyArn}`,
    );
  }
  const snapshotIds = snapshotsOf(image);
  for (const snapshotId of snapshotIds) await record('SNAPSHOT', snapshotId, { amiId, region });

  const grantIds = await shareImage(
    { region, ec2: clients.ec2, kms: clients.kms, kmsKeyArn: target.kmsKeyArn },
    { amiId, snapshotIds },
    accountsOf(config),
    run.runId,
    record,
  );
  logger.info('AMI copied', { region, amiId, source: input.source.amiId, snapshots: snapshotIds.length });
  return { region, amiId, snapshotIds, grantIds };
};
