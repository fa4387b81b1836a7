import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import path from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { PublishCommand } from '@aws-sdk/client-sns';
import {
  baseImageUpdateSchema,
  executionNameFor,
  runIdFor,
  triggerMessageSchema,
  TRIGGER_KINDS,
  type TriggerContext,
} from '../../shared/trigger/message';
import { describeIssues } from '../../shared/validation';
import { CliError } from '../errors';
import type { Context } from '../context';
import { checkAppConfigFile } from './config';

export interface TriggerOptions {
  app?: string;
  version?: string;
  build: string;
  appConfig?: string;
  artifact?: string;
  sha256?: string;
  requestedBy?: string;
  kind: (typeof TRIGGER_KINDS)[number];
  baseImageParameter?: string;
  environment?: string;
}

/** A file to upload (its key is content-addressed, like the trigger worker's inline configs). */
interface Upload {
  file: string;
  key: string;
  sha256: string;
}

const isS3Uri = (value: string) => value.startsWith('s3://');

const sha256OfFile = async (file: string): Promise<string> => {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
};

const readable = (file: string, option: string) => {
  try {
    if (!statSync(file).isFile()) throw new Error('not a file');
  } catch (err) {
    throw new CliError(`${option}: cannot read ${file} (${(err as Error).message})`, 2);
  }
};

/** Who asked: --requested-by, else Jenkins' BUILD_USER_ID, else the local user. */
const requester = (options: TriggerOptions): string =>
  options.requestedBy ?? process.env.BUILD_USER_ID ?? process.env.USER ?? userInfo().username;

export interface PreparedTrigger {
  message: Record<string, unknown>;
  uploads: Upload[];
  executionName?: string;
  runId?: string;
}

/**
 * Builds the message Jenkins would publish and checks it with the trigger worker's own schema (and
 * a local app config with PreProvision's checks) before anything is uploaded or sent.
 */
export const prepareTrigger = async (
  options: TriggerOptions,
  ctx: TriggerContext,
  configDir: string,
): Promise<PreparedTrigger> => {
  const environment = options.environment ?? ctx.stage;
  if (options.kind === 'base-image-update' && !options.app) {
    const message = {
      schemaVersion: 1,
      environment,
      buildId: options.build,
      kind: 'base-image-update',
      baseImage: { ssmParameter: options.baseImageParameter },
      requestedBy: requester(options),
    };
    const parsed = baseImageUpdateSchema(ctx).safeParse(message);
    if (!parsed.success) throw refused(describeIssues(parsed.error));
    return { message, uploads: [] };
  }
  const missing = (['app', 'version', 'appConfig', 'artifact'] as const).filter((k) => !options[k]);
  if (missing.length) {
    throw new CliError(
      `trigger: ${missing.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ')} required`,
      2,
    );
  }
  const appId = options.app as string;
  const runId = runIdFor(appId, environment, options.build);
  const uploads: Upload[] = [];
  const prefix = `inputs/${appId}/${runId}`;

  let appConfigUri = options.appConfig as string;
  if (!isS3Uri(appConfigUri)) {
    readable(appConfigUri, '--app-config');
    const check = checkAppConfigFile(appConfigUri, environment, configDir, appId);
    if (!check.valid) throw refused(check.violations.map((v) => `appConfig.${v}`));
    const sha256 = createHash('sha256').update(readFileSync(appConfigUri)).digest('hex');
    const ext = /\.json$/i.test(appConfigUri) ? 'json' : 'yml';
    uploads.push({ file: appConfigUri, key: `${prefix}/app-config-${sha256.slice(0, 16)}.${ext}`, sha256 });
    appConfigUri = `s3://${ctx.artifactsBucket}/${uploads[0]?.key}`;
  }

  let artifactUri = options.artifact as string;
  let sha256 = options.sha256;
  if (!isS3Uri(artifactUri)) {
    readable(artifactUri, '--artifact');
    const digest = await sha256OfFile(artifactUri);
    if (sha256 && sha256 !== digest) {
      throw refused([`artifact.sha256: ${sha256} does not match ${artifactUri} (its SHA-256 is ${digest})`]);
    }
    sha256 = digest;
    const base = path
      .basename(artifactUri)
      .replace(/[^A-Za-z0-9!_.*()-]/g, '_')
      .slice(0, 100);
    const key = `${prefix}/artifact-${digest.slice(0, 16)}-${base}`;
    uploads.push({ file: artifactUri, key, sha256: digest });
    artifactUri = `s3://${ctx.artifactsBucket}/${key}`;
  } else if (!sha256) {
    throw refused(['artifact.sha256: is required with an s3:// artifact (--sha256 <64 hex>)']);
  }

  const message = {
    schemaVersion: 1,
    appId,
    environment,
    version: options.version,
    buildId: options.build,
    kind: options.kind,
    appConfig: { s3Uri: appConfigUri },
    artifact: { s3Uri: artifactUri, sha256 },
    requestedBy: requester(options),
  };
  const parsed = triggerMessageSchema(ctx).safeParse(message);
  if (!parsed.success) throw refused(describeIssues(parsed.error));
  return { message, uploads, runId, executionName: executionNameFor(appId, environment, runId) };
};

const refused = (violations: string[]) =>
  new CliError(`trigger refused, nothing sent: ${violations.join('; ')}`, 2);

/**
 * Uploads one input. Keys are content-addressed (`…-<sha256 prefix>`), so writing the same key
 * again writes the same bytes: no existence check, which would need s3:GetObject/ListBucket that a
 * publishing role has no reason to hold.
 */
const upload = async (s3: S3Client, bucket: string, item: Upload) => {
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: item.key,
      Body: createReadStream(item.file),
      ContentLength: statSync(item.file).size,
      Metadata: { sha256: item.sha256 },
    }),
  );
};

export interface Published extends PreparedTrigger {
  messageId: string;
}

/** Uploads the inputs and publishes the message to the stage's trigger topic. */
export const publishTrigger = async (prepared: PreparedTrigger, ctx: Context): Promise<Published> => {
  for (const item of prepared.uploads) await upload(ctx.s3, ctx.names.artifactsBucket, item);
  const { MessageId } = await ctx.sns.send(
    new PublishCommand({ TopicArn: ctx.names.triggerTopicArn, Message: JSON.stringify(prepared.message) }),
  );
  if (!MessageId) throw new CliError('the trigger topic returned no message id');
  return { ...prepared, messageId: MessageId };
};
