import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { SNSEvent } from 'aws-lambda';
import { appConfigSchema } from '../../../shared/config/app';
import { parseYaml } from '../../../shared/config/files';
import type { RunConfig } from '../../../shared/run-config';
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

/** sample-app build 118 in dev after PreProvision: the `$.run` every later worker receives. */
export const BUILD_ID = 'sample-app-release#118';
export const RUN_ID = expectedRunId('sample-app', 'dev', BUILD_ID);
export const EXECUTION_ARN = `${EXECUTION_ARN_PREFIX}:sample-app-dev-${RUN_ID}`;
export const RUN_REF = {
  runId: RUN_ID,
  appId: 'sample-app',
  environment: 'dev',
  executionArn: EXECUTION_ARN,
} as const;
export const RUN_CONFIG_PARAMETER = `/ami-pipeline/dev/sample-app/${RUN_ID}`;
export const RUN_TAGS = {
  'ami-pipeline:run-id': RUN_ID,
  'ami-pipeline:app-id': 'sample-app',
  'ami-pipeline:stage': 'dev',
} as const;

/** The run config pre-provision stores for that run (valid for shared/run-config.ts runConfigSchema). */
export const runConfigFixture = (): RunConfig => ({
  schemaVersion: 1,
  run: {
    runId: RUN_ID,
    executionArn: EXECUTION_ARN,
    startedAt: '2025-03-04T10:00:02.000Z',
    stage: 'dev',
    region: 'eu-west-1',
  },
  release: {
    appId: 'sample-app',
    environment: 'dev',
    version: '1.4.2',
    buildId: BUILD_ID,
    kind: 'release',
    requestedBy: 'jenkins@ci.example.com',
    artifact: {
      s3Uri: `s3://${ARTIFACTS_BUCKET}/inputs/sample-app/118/sample-app-1.4.2.tgz`,
      sha256: 'c'.repeat(64),
    },
    appConfigUri: `s3://${ARTIFACTS_BUCKET}/inputs/sample-app/118/app-config.yml`,
  },
  app: appConfigSchema.parse(sampleAppConfig()),
  platform: {
    kmsKeyArn: TEST_ENV.KMS_KEY_ARN,
    artifactsBucket: TEST_ENV.ARTIFACTS_BUCKET,
    reportsBucket: TEST_ENV.REPORTS_BUCKET,
    logsBucket: TEST_ENV.LOGS_BUCKET,
    tags: { ...RUN_TAGS },
  },
});
