import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startEmulators, type Emulators } from '../harness/emulators';

/**
 * The emulators must behave as AWS does where the pipeline relies on it. S3 replaces an object
 * atomically: a retried trigger uploads the same app config again while PreProvision may be reading
 * it, and that read must see the whole object, never a half-written one.
 */
describe('local emulators', () => {
  let emulators: Emulators;
  let scratch: string;
  let s3: S3Client;

  beforeAll(async () => {
    scratch = mkdtempSync(path.join(tmpdir(), 'ami-pipeline-emulators-'));
    emulators = await startEmulators({ scratchDir: scratch });
    s3 = new S3Client({
      endpoint: emulators.s3Endpoint,
      region: 'eu-west-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    });
    await s3.send(new CreateBucketCommand({ Bucket: 'atomic' }));
  });

  afterAll(async () => {
    s3?.destroy();
    await emulators?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('S3: a read during rewrites of an object sees the whole object, as in S3', async () => {
    const body = 'x'.repeat(1_000_000);
    await s3.send(new PutObjectCommand({ Bucket: 'atomic', Key: 'app-config.json', Body: body }));

    const rewrites = Array.from({ length: 15 }, () =>
      s3.send(new PutObjectCommand({ Bucket: 'atomic', Key: 'app-config.json', Body: body })),
    );
    const reads = Array.from({ length: 45 }, async () => {
      const { Body } = await s3.send(new GetObjectCommand({ Bucket: 'atomic', Key: 'app-config.json' }));
      return (await Body?.transformToString())?.length;
    });
    const lengths = await Promise.all(reads);
    await Promise.all(rewrites);

    expect(lengths.filter((length) => length !== body.length)).toEqual([]);
  });
});
