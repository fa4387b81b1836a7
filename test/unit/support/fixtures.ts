import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { SNSEvent } from 'aws-lambda';
import { parseYaml } from '../../../shared/config/files';
import { TEST_ENV } from './env';

export const CONFIG_DIR = TEST_ENV.CONFIG_DIR;
export const ARTIFACTS_BUCKET = TEST_ENV.ARTIFACTS_BUCKET;
export const TOPIC_ARN = 'arn:aws:sns:eu-west-1:123456789012:ami-pipeline-dev-trigger';
export const EXECUTION_ARN_PREFIX = 'arn:aws:states:eu-west-1:123456789012:execution:ami-pipeline-dev';
export const SAMPLE_APP_YAML = readFileSync(path.join(CONFIG_DIR, 'apps', 'sample-app.yml'), 'utf8');

/** A fresh copy of config/apps/sample-app.yml as an object, safe to mutate. */
export const sampleAppConfig = (): Record<string, unknown> => {
  const parsed = parseYaml(SAMPLE_APP_YAML);
  if (typeof parsed !== 'object' || parsed === null) throw new Error('sample-app.yml is not a mapping');
  return parsed as Record<string, unknown>;
};

/**
 * The run id the contract promises, computed independently of the code under test:
 * the first 20 hex characters of SHA-256 over `appId \n environment \n buildId`.
 */
export const expectedRunId = (appId: string, environment: string, buildId: string): string =>
  createHash('sha256').update(`${appId}\n${environment}\n${buildId}`).digest('hex').slice(0, 20);

export const sha256Of = (text: string): string => createHash('sha256').update(text).digest('hex');

/** A valid trigger message for sample-app in dev, referencing its config in the artifacts bucket. */
export const triggerMessage = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  schemaVersion: 1,
  appId: 'sample-app',
  environment: 'dev',
  version: '1.4.2',
  buildId: 'sample-app-release#118',
  kind: 'release',
  appConfig: { s3Uri: `s3://${ARTIFACTS_BUCKET}/inputs/sample-app/118/app-config.yml` },
  artifact: {
    s3Uri: `s3://${ARTIFACTS_BUCKET}/inputs/sample-app/118/sample-app-1.4.2.tgz`,
    sha256: 'c'.repeat(64),
  },
  requestedBy: 'jenkins@ci.example.com',
  ...overrides,
});

/** One SNS delivery per message body, as Lambda receives it. */
export const snsEvent = (...messages: string[]): SNSEvent => ({
  Records: messages.map((message, i) => ({
    EventVersion: '1.0',
    EventSubscriptionArn: `${TOPIC_ARN}:5f1c2d3e-0000-4000-8000-00000000000${i}`,
    EventSource: 'aws:sns',
    Sns: {
      SignatureVersion: '1',
      Timestamp: '2025-03-04T10:00:00.000Z',
      Signature: 'sig',
      SigningCertUrl: 'https://sns.eu-west-1.amazonaws.com/cert.pem',
      MessageId: `sns-message-${i + 1}`,
      Message: message,
      MessageAttributes: {},
      Type: 'Notification',
      UnsubscribeUrl: 'https://sns.eu-west-1.amazonaws.com/unsubscribe',
      TopicArn: TOPIC_ARN,
    },
  })),
});

/** An S3 GetObject body carrying `text`, with the SDK's stream helpers. */
export const s3Body = (text: string) =>
  Object.assign(Readable.from([Buffer.from(text, 'utf8')]), {
    transformToString: async () => text,
    transformToByteArray: async () => new Uint8Array(Buffer.from(text, 'utf8')),
    transformToWebStream: (): ReadableStream => {
      throw new Error('not used by the code under test');
    },
  });
