import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import path from 'node:path';
import dynalite from 'dynalite';
import S3rver from 's3rver';

export interface Emulators {
  dynamodbEndpoint: string;
  s3Endpoint: string;
  stop(): Promise<void>;
}

/**
 * Starts dynalite (DynamoDB) and s3rver (S3) in this process, on 127.0.0.1 and random ports.
 * With `stateDir` both keep their data on disk (so `--local` tools can read the last run);
 * without it DynamoDB is in memory and S3 uses a throwaway folder.
 */
export const startEmulators = async (options: {
  stateDir?: string;
  scratchDir: string;
}): Promise<Emulators> => {
  const dynamoPath = options.stateDir ? path.join(options.stateDir, 'dynamodb') : undefined;
  const s3Dir = path.join(options.stateDir ?? options.scratchDir, 's3');
  if (dynamoPath) mkdirSync(dynamoPath, { recursive: true });
  mkdirSync(s3Dir, { recursive: true });

  const dynamo = dynalite({
    ...(dynamoPath ? { path: dynamoPath } : {}),
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
  });
  await new Promise<void>((resolve, reject) => {
    dynamo.once('error', reject);
    dynamo.listen(0, '127.0.0.1', () => resolve());
  });
  const dynamoPort = (dynamo.address() as AddressInfo).port;

  const s3 = new S3rver({ address: '127.0.0.1', port: 0, directory: s3Dir, silent: true });
  atomicPuts(s3);
  const s3Address = await s3.run();

  return {
    dynamodbEndpoint: `http://127.0.0.1:${dynamoPort}`,
    s3Endpoint: `http://127.0.0.1:${s3Address.port}`,
    async stop() {
      await s3.close();
      await new Promise<void>((resolve) => {
        dynamo.close(() => resolve());
        // Keep-alive sockets from SDK clients would hold close() open.
        (dynamo as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
    },
  };
};

/** The part of s3rver's filesystem store `atomicPuts` uses. */
interface FilesystemStore {
  putObject(object: { key: string }): Promise<unknown>;
  getResourcePath(bucket: string, key: string, resource: string): string;
}

/**
 * S3 replaces an object atomically: a reader sees the old object or the new one. s3rver truncates
 * the object's file and writes it in place, so a read racing a rewrite (a retried trigger uploading
 * the same app config again while PreProvision reads it) could see half an object. Here an object is
 * written under a temporary key and its files renamed into place, as S3 behaves.
 */
const atomicPuts = (s3: S3rver): void => {
  const store = (s3 as unknown as { store: FilesystemStore }).store;
  const putObject = store.putObject.bind(store);
  store.putObject = async (object: { key: string; bucket?: string }) => {
    const key = object.key;
    const bucket = String(object.bucket);
    const temporary = `${key}.atomic-put-${randomUUID()}`;
    object.key = temporary;
    try {
      const result = await putObject(object);
      for (const resource of ['metadata.json', 'object.md5', 'object']) {
        await rename(
          store.getResourcePath(bucket, temporary, resource),
          store.getResourcePath(bucket, key, resource),
        ).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
      }
      return result;
    } finally {
      object.key = key;
    }
  };
};
