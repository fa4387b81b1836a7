import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * KMS stand-in: customer keys that really encrypt (AES-256-GCM), so what the simulated services
 * store for a SecureString is ciphertext, and decrypting needs the right key.
 */
export interface SimGrant {
  grantId: string;
  keyId: string;
  grantee: string;
  operations: string[];
  name?: string | undefined;
}

export class KmsSim {
  private readonly keys = new Map<string, Buffer>();
  readonly grants = new Map<string, SimGrant>();

  createKey(arn: string, aliases: string[] = []): void {
    const material = randomBytes(32);
    this.keys.set(arn, material);
    for (const alias of aliases) this.keys.set(alias, material);
  }

  hasKey(keyId: string): boolean {
    return this.keys.has(keyId);
  }

  encrypt(keyId: string, plaintext: string): string {
    const key = this.material(keyId);
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64');
  }

  decrypt(keyId: string, ciphertext: string): string {
    const raw = Buffer.from(ciphertext, 'base64');
    const decipher = createDecipheriv('aes-256-gcm', this.material(keyId), raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
  }

  /** CreateGrant; as in KMS, the same Name and parameters return the existing grant. */
  createGrant(input: {
    KeyId?: string | undefined;
    GranteePrincipal?: string | undefined;
    Operations?: string[] | undefined;
    Name?: string | undefined;
  }) {
    this.material(input.KeyId ?? '');
    const existing = [...this.grants.values()].find(
      (g) =>
        input.Name &&
        g.name === input.Name &&
        g.keyId === input.KeyId &&
        g.grantee === input.GranteePrincipal,
    );
    if (existing) return { GrantId: existing.grantId, GrantToken: 'local', $metadata: {} };
    const grantId = randomBytes(32).toString('hex');
    this.grants.set(grantId, {
      grantId,
      keyId: input.KeyId ?? '',
      grantee: input.GranteePrincipal ?? '',
      operations: [...(input.Operations ?? [])],
      name: input.Name,
    });
    return { GrantId: grantId, GrantToken: 'local', $metadata: {} };
  }

  revokeGrant(input: { KeyId?: string | undefined; GrantId?: string | undefined }) {
    if (!this.grants.delete(input.GrantId ?? '')) {
      throw Object.assign(new Error(`grant ${input.GrantId} not found`), {
        name: 'NotFoundException',
        $metadata: {},
      });
    }
    return { $metadata: {} };
  }

  /** ListGrants of one key, a page at a time (Limit, Marker), as KMS pages them. */
  listGrants(input: { KeyId?: string | undefined; Limit?: number | undefined; Marker?: string | undefined }) {
    this.material(input.KeyId ?? '');
    const all = [...this.grants.values()].filter((g) => g.keyId === input.KeyId);
    const start = input.Marker ? Number(input.Marker) : 0;
    const limit = input.Limit ?? 50;
    const page = all.slice(start, start + limit);
    const more = start + limit < all.length;
    return {
      Grants: page.map((g) => ({
        GrantId: g.grantId,
        KeyId: g.keyId,
        GranteePrincipal: g.grantee,
        Operations: g.operations,
        Name: g.name,
      })),
      Truncated: more,
      ...(more ? { NextMarker: String(start + limit) } : {}),
      $metadata: {},
    };
  }

  private material(keyId: string): Buffer {
    const key = this.keys.get(keyId);
    if (!key) throw new Error(`KMS NotFoundException: key ${keyId} does not exist`);
    return key;
  }
}
