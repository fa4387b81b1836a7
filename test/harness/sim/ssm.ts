import {
  InvalidKeyId,
  ParameterAlreadyExists,
  ParameterNotFound,
  type AddTagsToResourceCommandInput,
  type GetParameterCommandInput,
  type GetParameterCommandOutput,
  type PutParameterCommandInput,
  type PutParameterCommandOutput,
} from '@aws-sdk/client-ssm';
import type { KmsSim } from './kms';

interface StoredVersion {
  version: number;
  type: string;
  dataType?: string | undefined;
  tier: string;
  keyId?: string | undefined;
  /** Ciphertext for SecureString, the value otherwise. */
  stored: string;
  lastModified: Date;
}

const validation = (message: string) =>
  Object.assign(new Error(message), { name: 'ValidationException', $fault: 'client', $metadata: {} });

const meta = { $metadata: {} };

/**
 * Parameter Store stand-in with the rules the pipeline relies on: names and hierarchy depth, value
 * size per tier, SecureString encrypted with a KMS key that must exist, Overwrite vs
 * ParameterAlreadyExists, no Tags with Overwrite, versions.
 */
export class ParameterStoreSim {
  private readonly params = new Map<string, { versions: StoredVersion[]; tags: Record<string, string> }>();

  constructor(private readonly kms: KmsSim) {}

  putParameter(input: PutParameterCommandInput): PutParameterCommandOutput {
    const name = input.Name ?? '';
    if (!/^\/?[A-Za-z0-9_.\-/]{1,2048}$/.test(name) || name.split('/').length - 1 > 15) {
      throw validation(`parameter name ${name} is invalid or nested deeper than 15 levels`);
    }
    const value = input.Value ?? '';
    const tier = input.Tier ?? 'Standard';
    const limit = tier === 'Advanced' ? 8192 : 4096;
    if (Buffer.byteLength(value, 'utf8') > limit) {
      throw validation(`value of ${name} exceeds the ${tier} tier limit of ${limit} bytes`);
    }
    if (input.Tags && input.Overwrite) throw validation('Tags cannot be used with Overwrite: true');
    const existing = this.params.get(name);
    if (existing && !input.Overwrite) {
      throw new ParameterAlreadyExists({ message: `parameter ${name} already exists`, $metadata: {} });
    }
    const type = input.Type ?? existing?.versions.at(-1)?.type ?? 'String';
    let stored = value;
    if (type === 'SecureString') {
      const keyId = input.KeyId ?? 'alias/aws/ssm';
      if (!this.kms.hasKey(keyId))
        throw new InvalidKeyId({ message: `key ${keyId} not found`, $metadata: {} });
      stored = this.kms.encrypt(keyId, value);
    }
    const entry = existing ?? { versions: [], tags: {} };
    const version = (entry.versions.at(-1)?.version ?? 0) + 1;
    if (input.DataType === 'aws:ec2:image' && !/^ami-[a-f0-9]{8,17}$/.test(value)) {
      throw validation(`value of ${name} is not an AMI id (data type aws:ec2:image)`);
    }
    entry.versions.push({
      version,
      type,
      dataType: input.DataType ?? entry.versions.at(-1)?.dataType,
      tier,
      keyId: input.KeyId,
      stored,
      lastModified: new Date(),
    });
    for (const tag of input.Tags ?? []) if (tag.Key) entry.tags[tag.Key] = tag.Value ?? '';
    this.params.set(name, entry);
    return { Version: version, Tier: tier, ...meta };
  }

  getParameter(input: GetParameterCommandInput): GetParameterCommandOutput {
    const latest = this.latest(input.Name ?? '');
    const value =
      latest.type === 'SecureString' && input.WithDecryption
        ? this.kms.decrypt(latest.keyId ?? '', latest.stored)
        : latest.stored;
    return {
      Parameter: {
        Name: input.Name,
        Type: latest.type as 'SecureString',
        Value: value,
        Version: latest.version,
      },
      ...meta,
    };
  }

  deleteParameter(input: { Name?: string | undefined }): { $metadata: object } {
    this.latest(input.Name ?? '');
    this.params.delete(input.Name ?? '');
    this.policies.delete(input.Name ?? '');
    return meta;
  }

  /** Resource policies by parameter name (ResourceArn …:parameter/<name>); sharing needs Advanced tier. */
  readonly policies = new Map<string, { policyId: string; policyHash: string; policy: string }>();

  getResourcePolicies(input: { ResourceArn?: string | undefined }) {
    const found = this.policies.get(this.nameOf(input.ResourceArn));
    return {
      Policies: found
        ? [{ PolicyId: found.policyId, PolicyHash: found.policyHash, Policy: found.policy }]
        : [],
      ...meta,
    };
  }

  putResourcePolicy(input: {
    ResourceArn?: string | undefined;
    Policy?: string | undefined;
    PolicyId?: string | undefined;
    PolicyHash?: string | undefined;
  }) {
    const name = this.nameOf(input.ResourceArn);
    if (this.latest(name).tier !== 'Advanced') {
      throw validation(`parameter ${name} must be in the Advanced tier to be shared`);
    }
    const existing = this.policies.get(name);
    if (existing && (input.PolicyId !== existing.policyId || input.PolicyHash !== existing.policyHash)) {
      throw Object.assign(new Error('policy id or hash does not match'), {
        name: 'ResourcePolicyConflictException',
        $fault: 'client',
        $metadata: {},
      });
    }
    const policyId = existing?.policyId ?? `policy-${this.policies.size + 1}`;
    const policyHash = `${policyId}-${Date.now()}-${Math.random().toString(16).slice(2)}`;
    this.policies.set(name, { policyId, policyHash, policy: input.Policy ?? '' });
    return { PolicyId: policyId, PolicyHash: policyHash, ...meta };
  }

  deleteResourcePolicy(input: {
    ResourceArn?: string | undefined;
    PolicyId?: string | undefined;
    PolicyHash?: string | undefined;
  }) {
    const name = this.nameOf(input.ResourceArn);
    const existing = this.policies.get(name);
    if (!existing || input.PolicyId !== existing.policyId || input.PolicyHash !== existing.policyHash) {
      throw Object.assign(new Error('policy id or hash does not match'), {
        name: existing ? 'ResourcePolicyConflictException' : 'ResourcePolicyNotFoundException',
        $fault: 'client',
        $metadata: {},
      });
    }
    this.policies.delete(name);
    return meta;
  }

  /** The accounts a parameter's resource policy lets read it. */
  readers(name: string): string[] {
    const policy = this.policies.get(name);
    if (!policy) return [];
    const doc = JSON.parse(policy.policy) as { Statement: { Principal: { AWS: string[] | string } }[] };
    return doc.Statement.flatMap((st) => [st.Principal.AWS].flat());
  }

  private nameOf(arn: string | undefined): string {
    const match = /:parameter(\/.+)$/.exec(arn ?? '');
    if (!match?.[1]) throw validation(`${arn} is not a parameter ARN`);
    return match[1];
  }

  addTagsToResource(input: AddTagsToResourceCommandInput): { $metadata: object } {
    const entry = this.params.get(input.ResourceId ?? '');
    if (!entry)
      throw new ParameterNotFound({ message: `parameter ${input.ResourceId} not found`, $metadata: {} });
    for (const tag of input.Tags ?? []) if (tag.Key) entry.tags[tag.Key] = tag.Value ?? '';
    return meta;
  }

  /** Test/inspection view: type, tier, version, tags and the raw stored value (ciphertext for SecureString). */
  describe(name: string): (StoredVersion & { tags: Record<string, string> }) | undefined {
    const entry = this.params.get(name);
    const latest = entry?.versions.at(-1);
    return entry && latest ? { ...latest, tags: { ...entry.tags } } : undefined;
  }

  names(): string[] {
    return [...this.params.keys()];
  }

  private latest(name: string): StoredVersion {
    const latest = this.params.get(name)?.versions.at(-1);
    if (!latest) throw new ParameterNotFound({ message: `parameter ${name} not found`, $metadata: {} });
    return latest;
  }
}
