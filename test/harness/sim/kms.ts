import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * KMS stand-in: customer keys that really encrypt (AES-256-GCM), so what the simulated services
 * store for a SecureString is ciphertext, and decrypting needs the right key.
 */
export class KmsSim {
  private readonly keys = new Map<string, Buffer>();

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

  private material(keyId: string): Buffer {
    const key = this.keys.get(keyId);
    if (!key) throw new Error(`KMS NotFoundException: key ${keyId} does not exist`);
    return key;
  }
}
