import { randomBytes } from 'node:crypto';
import type {
  CopyImageCommandInput,
  CreateTagsCommandInput,
  DescribeImagesCommandInput,
  DescribeSnapshotsCommandInput,
  Image,
  ModifyImageAttributeCommandInput,
  ModifySnapshotAttributeCommandInput,
  Snapshot,
} from '@aws-sdk/client-ec2';

const hex = (n: number) => randomBytes(n).toString('hex').slice(0, n);

const ec2Error = (name: string, message: string) =>
  Object.assign(new Error(message), { name, $fault: 'client', $metadata: {} });

export interface SimImage {
  imageId: string;
  name: string;
  state: 'available' | 'pending' | 'failed';
  encrypted: boolean;
  kmsKeyId?: string | undefined;
  snapshotIds: string[];
  tags: Record<string, string>;
  launchPermissions: Set<string>;
}

export interface SimSnapshot {
  snapshotId: string;
  encrypted: boolean;
  kmsKeyId?: string | undefined;
  tags: Record<string, string>;
  createVolumePermissions: Set<string>;
}

/**
 * EC2 stand-in for what the pipeline does to AMIs: images with snapshots, encryption, tags, launch
 * and create-volume permissions, copies, deregistration. Snapshots in use by an image cannot be
 * deleted, as in EC2.
 */
export class Ec2Sim {
  readonly images = new Map<string, SimImage>();
  readonly snapshots = new Map<string, SimSnapshot>();
  /** CopyImage's idempotency: a client token seen before returns the image it made. */
  private readonly copyTokens = new Map<string, string>();
  /**
   * What a copy into this region ends as: `failed` makes it as EC2 does when a copy fails (the
   * image appears, then goes to `failed`; its snapshots stay behind until deleted).
   */
  copyOutcome: 'available' | 'failed' = 'available';

  /**
   * @param region this stand-in's region
   * @param peers the stand-ins of other regions, for CopyImage with another SourceRegion
   */
  constructor(
    readonly region = 'eu-west-1',
    private readonly peers: (region: string) => Ec2Sim | undefined = () => undefined,
  ) {}

  /** What Packer would leave behind: an image and its root snapshot. */
  createImage(options: {
    name: string;
    encrypted: boolean;
    kmsKeyId?: string;
    tags: Record<string, string>;
  }): SimImage {
    const snapshotId = `snap-${hex(17)}`;
    this.snapshots.set(snapshotId, {
      snapshotId,
      encrypted: options.encrypted,
      kmsKeyId: options.kmsKeyId,
      tags: { ...options.tags },
      createVolumePermissions: new Set(),
    });
    const image: SimImage = {
      imageId: `ami-${hex(17)}`,
      name: options.name,
      state: 'available',
      encrypted: options.encrypted,
      kmsKeyId: options.kmsKeyId,
      snapshotIds: [snapshotId],
      tags: { ...options.tags },
      launchPermissions: new Set(),
    };
    this.images.set(image.imageId, image);
    return image;
  }

  describeImages(input: DescribeImagesCommandInput): { Images: Image[]; $metadata: object } {
    let images = [...this.images.values()];
    if (input.ImageIds?.length) {
      for (const id of input.ImageIds) {
        if (!this.images.has(id))
          throw ec2Error('InvalidAMIID.NotFound', `The image id '[${id}]' does not exist`);
      }
      images = images.filter((i) => input.ImageIds?.includes(i.imageId));
    }
    images = images.filter((i) => this.matches(i.tags, input.Filters));
    return { Images: images.map((i) => this.toImage(i)), $metadata: {} };
  }

  describeSnapshots(input: DescribeSnapshotsCommandInput): { Snapshots: Snapshot[]; $metadata: object } {
    const snapshots = [...this.snapshots.values()]
      .filter((s) => !input.SnapshotIds?.length || input.SnapshotIds.includes(s.snapshotId))
      .filter((s) => this.matches(s.tags, input.Filters));
    return {
      Snapshots: snapshots.map((s) => ({
        SnapshotId: s.snapshotId,
        Encrypted: s.encrypted,
        KmsKeyId: s.kmsKeyId,
        Tags: Object.entries(s.tags).map(([Key, Value]) => ({ Key, Value })),
      })),
      $metadata: {},
    };
  }

  createTags(input: CreateTagsCommandInput): { $metadata: object } {
    for (const id of input.Resources ?? []) {
      const target = this.images.get(id) ?? this.snapshots.get(id);
      if (!target)
        throw ec2Error(
          id.startsWith('ami-') ? 'InvalidAMIID.NotFound' : 'InvalidSnapshot.NotFound',
          `${id} does not exist`,
        );
      for (const tag of input.Tags ?? []) if (tag.Key) target.tags[tag.Key] = tag.Value ?? '';
    }
    return { $metadata: {} };
  }

  modifyImageAttribute(input: ModifyImageAttributeCommandInput): { $metadata: object } {
    const image = this.image(input.ImageId);
    for (const p of input.LaunchPermission?.Add ?? []) if (p.UserId) image.launchPermissions.add(p.UserId);
    for (const p of input.LaunchPermission?.Remove ?? [])
      if (p.UserId) image.launchPermissions.delete(p.UserId);
    return { $metadata: {} };
  }

  modifySnapshotAttribute(input: ModifySnapshotAttributeCommandInput): { $metadata: object } {
    const snapshot = this.snapshot(input.SnapshotId);
    for (const user of input.UserIds ?? []) {
      if (input.OperationType === 'remove') snapshot.createVolumePermissions.delete(user);
      else snapshot.createVolumePermissions.add(user);
    }
    return { $metadata: {} };
  }

  copyImage(input: CopyImageCommandInput): { ImageId: string; $metadata: object } {
    if (input.ClientToken && this.copyTokens.has(input.ClientToken)) {
      return { ImageId: this.copyTokens.get(input.ClientToken) as string, $metadata: {} };
    }
    const from =
      !input.SourceRegion || input.SourceRegion === this.region ? this : this.peers(input.SourceRegion);
    if (!from) throw ec2Error('InvalidRegion', `region ${input.SourceRegion} is not simulated`);
    const source = from.image(input.SourceImageId);
    if (source.encrypted && input.Encrypted && !input.KmsKeyId) {
      throw ec2Error(
        'InvalidParameter',
        'an encrypted copy into another region needs a KmsKeyId of that region',
      );
    }
    if (input.KmsKeyId && !input.KmsKeyId.includes(`:${this.region}:`)) {
      throw ec2Error('InvalidParameter', `KMS key ${input.KmsKeyId} is not in ${this.region}`);
    }
    const tags = Object.fromEntries(
      (input.TagSpecifications ?? []).flatMap((spec) =>
        (spec.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? '']),
      ),
    );
    const copy = this.createImage({
      name: input.Name ?? `${source.name}-copy`,
      encrypted: input.Encrypted ?? source.encrypted,
      ...(input.KmsKeyId ? { kmsKeyId: input.KmsKeyId } : {}),
      tags,
    });
    if (from !== this) copy.state = this.copyOutcome;
    if (input.ClientToken) this.copyTokens.set(input.ClientToken, copy.imageId);
    return { ImageId: copy.imageId, $metadata: {} };
  }

  deregisterImage(input: { ImageId?: string | undefined }): { $metadata: object } {
    this.image(input.ImageId);
    this.images.delete(input.ImageId as string);
    return { $metadata: {} };
  }

  deleteSnapshot(input: { SnapshotId?: string | undefined }): { $metadata: object } {
    this.snapshot(input.SnapshotId);
    const user = [...this.images.values()].find((i) => i.snapshotIds.includes(input.SnapshotId as string));
    if (user)
      throw ec2Error('InvalidSnapshot.InUse', `snapshot ${input.SnapshotId} is in use by ${user.imageId}`);
    this.snapshots.delete(input.SnapshotId as string);
    return { $metadata: {} };
  }

  image(id: string | undefined): SimImage {
    const image = this.images.get(id ?? '');
    if (!image) throw ec2Error('InvalidAMIID.NotFound', `The image id '[${id}]' does not exist`);
    return image;
  }

  private snapshot(id: string | undefined): SimSnapshot {
    const snapshot = this.snapshots.get(id ?? '');
    if (!snapshot) throw ec2Error('InvalidSnapshot.NotFound', `The snapshot '${id}' does not exist`);
    return snapshot;
  }

  private matches(
    tags: Record<string, string>,
    filters: { Name?: string | undefined; Values?: string[] | undefined }[] | undefined,
  ) {
    return (filters ?? []).every((f) => {
      if (!f.Name?.startsWith('tag:')) return true;
      const value = tags[f.Name.slice(4)];
      return value !== undefined && (f.Values ?? []).includes(value);
    });
  }

  private toImage(i: SimImage): Image {
    return {
      ImageId: i.imageId,
      Name: i.name,
      State: i.state,
      Tags: Object.entries(i.tags).map(([Key, Value]) => ({ Key, Value })),
      BlockDeviceMappings: i.snapshotIds.map((snapshotId, n) => ({
        DeviceName: n === 0 ? '/dev/xvda' : `/dev/xvd${String.fromCharCode(98 + n)}`,
        Ebs: {
          SnapshotId: snapshotId,
          Encrypted: i.encrypted,
          ...(i.kmsKeyId ? { KmsKeyId: i.kmsKeyId } : {}),
        },
      })),
    };
  }
}
