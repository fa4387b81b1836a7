import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { resultPrefix, type CommandStep } from '../../../shared/commands/contract';
import { appConfigSchema } from '../../../shared/config/app';
import type { RunConfig } from '../../../shared/run-config';
import { CONFIG_DIR } from './sandbox';

export const STAGE = 'dev';
export const APP_ID = 'sample-app';
export const RUN_ID = 'a1b2c3d4e5f60718293a';
export const REGION = 'eu-west-1';
export const KMS_KEY_ARN = 'arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';
export const ARTIFACTS_BUCKET = 'ami-pipeline-dev-artifacts-123456789012-eu-west-1';
export const REPORTS_BUCKET = 'ami-pipeline-dev-reports-123456789012-eu-west-1';
export const LOCK_TABLE = 'ami-pipeline-dev-coordination';
export const ASSETS_PREFIX = 'tooling/0123456789abcdef';
export const RUN_CONFIG_PARAMETER = `/ami-pipeline/${STAGE}/${APP_ID}/${RUN_ID}`;
export const BASE_IMAGE_PARAMETER = '/soe/amazon-linux-2023/latest';
export const BASE_AMI = 'ami-0fedcba9876543210';
/** A Chef attribute standing in for a secret: it must never show up in output or tool arguments. */
export const SECRET = 'S3cr3t-db-passw0rd';

/** The run config pre-provision stores for a release of config/apps/sample-app.yml. */
export const runConfig = (): RunConfig => {
  const app = appConfigSchema.parse(
    parse(readFileSync(path.join(CONFIG_DIR, 'apps', 'sample-app.yml'), 'utf8')),
  );
  app.bake.chefAttributes = {
    ...app.bake.chefAttributes,
    sample_app: { listen_port: 8080, db_password: SECRET },
  };
  return {
    schemaVersion: 1,
    run: {
      runId: RUN_ID,
      executionArn: `arn:aws:states:${REGION}:123456789012:execution:ami-pipeline-dev:${APP_ID}-${STAGE}-${RUN_ID}`,
      startedAt: '2025-03-04T10:00:00.000Z',
      stage: STAGE,
      region: REGION,
    },
    release: {
      appId: APP_ID,
      environment: STAGE,
      version: '1.4.2',
      buildId: 'sample-app-release#118',
      kind: 'release',
      requestedBy: 'jenkins@ci.example.com',
      artifact: {
        s3Uri: `s3://${ARTIFACTS_BUCKET}/inputs/sample-app/118/sample-app-1.4.2.tgz`,
        sha256: 'c'.repeat(64),
      },
      appConfigUri: `s3://${ARTIFACTS_BUCKET}/inputs/sample-app/118/app-config.yml`,
    },
    app,
    platform: {
      kmsKeyArn: KMS_KEY_ARN,
      artifactsBucket: ARTIFACTS_BUCKET,
      reportsBucket: REPORTS_BUCKET,
      logsBucket: 'ami-pipeline-dev-logs-123456789012-eu-west-1',
      tags: { 'ami-pipeline:run-id': RUN_ID, 'ami-pipeline:app-id': APP_ID, 'ami-pipeline:stage': STAGE },
    },
  };
};

/** The parameters the worker sends with a step's document, as its script receives them. */
export const stepParameters = (
  step: CommandStep,
  extra: Record<string, string> = {},
): Record<string, string> => ({
  runConfigParameter: RUN_CONFIG_PARAMETER,
  artifactsBucket: ARTIFACTS_BUCKET,
  resultPrefix: resultPrefix(STAGE, APP_ID, RUN_ID, step),
  assetsPrefix: ASSETS_PREFIX,
  region: REGION,
  kmsKeyArn: KMS_KEY_ARN,
  executionTimeout: '3600',
  ...extra,
});

/** result.json of a step in the fake artifacts bucket, parsed. */
export const resultKeyOf = (step: CommandStep): string =>
  `${resultPrefix(STAGE, APP_ID, RUN_ID, step)}/result.json`;

/**
 * Values that must never reach a tool. Each one, if spliced into a shell, would create `marker`.
 */
export const hostileValues = (marker: string): Record<string, string> => ({
  'command substitution': `x$(touch ${marker})`,
  backticks: `1.0\`touch ${marker}\``,
  semicolon: `1.0; touch ${marker}`,
  newline: `1.0\ntouch ${marker}`,
  'trailing newline': '1.0\n',
  quote: `1.0'; touch ${marker}; '`,
});
