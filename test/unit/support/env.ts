import path from 'node:path';
import { loadStageConfig } from '../../../shared/config/stage-file';

const CONFIG_DIR = path.join(__dirname, '..', '..', '..', 'config');

/**
 * The environment the workers read at import (requireEnv at cold start). Import this module before
 * any handler module: imports run in order, so the handler's module scope sees these values.
 */
export const TEST_ENV = {
  STAGE: 'dev',
  CONFIG_DIR,
  // What serverless.yml sets from config/stage.cjs `json`: the validated stage config.
  STAGE_CONFIG: JSON.stringify(loadStageConfig('dev', CONFIG_DIR)),
  ARTIFACTS_BUCKET: 'ami-pipeline-dev-artifacts',
  REPORTS_BUCKET: 'ami-pipeline-dev-reports',
  LOGS_BUCKET: 'ami-pipeline-dev-logs',
  MAX_MESSAGE_BYTES: '65536',
  STATE_MACHINE_ARN: 'arn:aws:states:eu-west-1:123456789012:stateMachine:ami-pipeline-dev',
  REJECTIONS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/ami-pipeline-dev-rejections',
  AUDIT_TABLE: 'ami-pipeline-dev-audit',
  COORDINATION_TABLE: 'ami-pipeline-dev-coordination',
  KMS_KEY_ARN: 'arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0',
  LOCK_TTL_SECONDS: '43200',
  // The approval functions: the role whose sessions decide, and where the request is published.
  APPROVER_ROLE_ARN: 'arn:aws:iam::123456789012:role/ami-pipeline-dev-approver',
  OUTCOME_TOPIC_ARN: 'arn:aws:sns:eu-west-1:123456789012:ami-pipeline-dev-outcome',
  // The token workers (bake, provision, validate): where their commands find tooling and log to.
  ASSETS_PREFIX: 'tooling/0123456789ab',
  COMMAND_LOG_GROUP: '/ami-pipeline/dev/commands',
  TF_LOCK_TABLE: 'ami-pipeline-dev-tf-locks',
  // log-export: the Firehose stream app log groups are subscribed to, and the role CloudWatch Logs uses.
  LOG_DELIVERY_STREAM_ARN: 'arn:aws:firehose:eu-west-1:123456789012:deliverystream/ami-pipeline-dev-logs',
  LOG_SUBSCRIPTION_ROLE_ARN: 'arn:aws:iam::123456789012:role/ami-pipeline-dev-LogsSubscriptionRole-1A2B3C',
  // The shared logger is built at import; keep test output free of log lines.
  POWERTOOLS_LOG_LEVEL: 'SILENT',
  AWS_REGION: 'eu-west-1',
} as const;

Object.assign(process.env, TEST_ENV);
