import {
  ModifyImageAttributeCommand,
  ModifySnapshotAttributeCommand,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import { CreateGrantCommand, GrantOperation, type KMSClient } from '@aws-sdk/client-kms';
import type { AuditRepository, ResourceRecord } from '../audit';
import { DistributionFailedError } from '../errors';
import { launchGrantName } from '../images';
import type { RunRef } from '../run-ref';
import type { RunConfig } from '../run-config';

/**
 * What an account needs on the stage key to launch an AMI encrypted with it: create volumes from
 * its snapshots (re-encrypting under its own key if it wishes) — nothing to encrypt new data or
 * manage the key.
 */
export const LAUNCH_GRANT_OPERATIONS: GrantOperation[] = [
  GrantOperation.Decrypt,
  GrantOperation.DescribeKey,
  GrantOperation.CreateGrant,
  GrantOperation.GenerateDataKeyWithoutPlaintext,
  GrantOperation.ReEncryptFrom,
  GrantOperation.ReEncryptTo,
];

/** Every account an app's AMI is shared with: its application account first, then the others. */
export const accountsOf = (config: RunConfig): string[] => [
  ...new Set([config.app.shareWithAccountId, ...config.app.distribution.accounts]),
];

/** Records a resource the run made, with the run's identifiers. */
export type RecordResource = (
  resourceType: string,
  resourceId: string,
  detail: Record<string, unknown>,
) => Promise<void>;

export const resourceRecorder =
  (run: RunRef, config: RunConfig, audit: AuditRepository, now: () => Date): RecordResource =>
  (resourceType, resourceId, detail) =>
    audit.recordResource({
      runId: run.runId,
      appId: run.appId,
      environment: run.environment,
      executionArn: run.executionArn,
      buildId: config.release.buildId,
      version: config.release.version,
      resourceType,
      resourceId,
      createdAt: now().toISOString(),
      detail,
    } satisfies ResourceRecord);

/**
 * Shares one AMI, in one region, with each account: launch permission, create-volume permission on
 * each snapshot, and a KMS grant on the key that encrypts it (named after the run, so a retried
 * CreateGrant returns the same grant and compensation can find one that was never recorded). Each
 * is recorded before the next is made. Returns the grant ids.
 */
export const shareImage = async (
  target: { region: string; ec2: EC2Client; kms: KMSClient; kmsKeyArn: string },
  image: { amiId: string; snapshotIds: string[] },
  accounts: string[],
  runId: string,
  record: RecordResource,
): Promise<string[]> => {
  const { region, kmsKeyArn } = target;
  const { amiId, snapshotIds } = image;
  const grantIds: string[] = [];
  for (const account of accounts) {
    await target.ec2.send(
      new ModifyImageAttributeCommand({ ImageId: amiId, LaunchPermission: { Add: [{ UserId: account }] } }),
    );
    await record('LAUNCH_PERMISSION', `${amiId}/${account}`, { amiId, account, region });
    for (const snapshotId of snapshotIds) {
      await target.ec2.send(
        new ModifySnapshotAttributeCommand({
          SnapshotId: snapshotId,
          Attribute: 'createVolumePermission',
          OperationType: 'add',
          UserIds: [account],
        }),
      );
      await record('SNAPSHOT_PERMISSION', `${snapshotId}/${account}`, { snapshotId, account, region });
    }
    const grant = await target.kms.send(
      new CreateGrantCommand({
        KeyId: kmsKeyArn,
        // The key's partition (aws, aws-us-gov, aws-cn) is the account's too.
        GranteePrincipal: `arn:${kmsKeyArn.split(':')[1] ?? 'aws'}:iam::${account}:root`,
        Operations: LAUNCH_GRANT_OPERATIONS,
        Name: launchGrantName(runId),
      }),
    );
    if (!grant.GrantId)
      throw new DistributionFailedError(`KMS CreateGrant for ${account} in ${region} returned no grant id`);
    await record('KMS_GRANT', grant.GrantId, {
      keyArn: kmsKeyArn,
      grantee: account,
      operations: LAUNCH_GRANT_OPERATIONS,
      region,
    });
    grantIds.push(grant.GrantId);
  }
  return grantIds;
};
