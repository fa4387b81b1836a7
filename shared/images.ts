import type { Image } from '@aws-sdk/client-ec2';

/** The EBS snapshots an AMI is made of. */
export const snapshotsOf = (image: Image): string[] =>
  (image.BlockDeviceMappings ?? []).flatMap((m) => (m.Ebs?.SnapshotId ? [m.Ebs.SnapshotId] : []));

/** The tag every resource a run makes carries (shared/pre-provision.ts resourceTags). */
export const RUN_ID_TAG = 'ami-pipeline:run-id';

/** The run id an image was made by, from its tag (undefined when untagged). */
export const madeByRun = (image: Image): string | undefined =>
  image.Tags?.find((t) => t.Key === RUN_ID_TAG)?.Value;

/**
 * The name of the KMS grant a run gives an account on the stage key. The name makes a retried
 * CreateGrant return the same grant, and lets compensation find a grant its worker never recorded.
 */
export const launchGrantName = (runId: string): string => `ami-pipeline-${runId}`;
