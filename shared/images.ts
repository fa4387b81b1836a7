import type { Image } from '@aws-sdk/client-ec2';

/** The EBS snapshots an AMI is made of. */
export const snapshotsOf = (image: Image): string[] =>
  (image.BlockDeviceMappings ?? []).flatMap((m) => (m.Ebs?.SnapshotId ? [m.Ebs.SnapshotId] : []));
