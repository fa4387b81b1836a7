import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { logger } from '../shared/logger';
import type { StageConfig } from '../shared/config/stage';
import { loadStageConfig } from '../shared/config/stage-file';
import { CliError } from './errors';
import type { Io, OutputFormat } from './output';

export const REPO_ROOT = path.resolve(__dirname, '..');
export const DEFAULT_LOCAL_DIR = path.join(REPO_ROOT, '.local');

/** The options every command takes (`ami-pipeline --stage prod audit live`). */
export interface GlobalOptions {
  stage: string;
  region?: string;
  profile?: string;
  output: OutputFormat;
  /** `--local [dir]`: the local harness's state (default .local/) instead of AWS. */
  local?: string | boolean;
}

/** The deployed stack's names the CLI needs (its CloudFormation outputs). */
export interface StackNames {
  auditTable: string;
  artifactsBucket: string;
  reportsBucket: string;
  triggerTopicArn: string;
}

const OUTPUTS: Record<keyof StackNames, string> = {
  auditTable: 'AuditTableName',
  artifactsBucket: 'ArtifactsBucketName',
  reportsBucket: 'ReportsBucketName',
  triggerTopicArn: 'TriggerTopicArn',
};

/** The stage's config: the repo's config/ folder, or CONFIG_DIR. */
export const stageConfig = (stage: string): StageConfig =>
  loadStageConfig(stage, process.env.CONFIG_DIR ?? path.join(REPO_ROOT, 'config'));

export const stackName = (stage: string) => `ami-pipeline-${stage}`;

export interface Context {
  readonly stage: StageConfig;
  readonly names: StackNames;
  readonly db: DynamoDBDocumentClient;
  readonly s3: S3Client;
  readonly sns: SNSClient;
  readonly local: boolean;
  /** Only with `--local` and `withPipeline`: the harness the run goes through, in this process. */
  readonly pipeline?: LocalRun;
  close(): Promise<void>;
}

/** What `trigger --local` needs from the local harness. */
export interface LocalRun {
  settle(): Promise<unknown>;
}

export interface ContextOptions {
  /** Run the whole local harness (for `trigger --local`), not only its data stores. */
  withPipeline?: boolean;
  io?: Io;
}

const clientsFor = (config: { region: string; profile?: string | undefined }, forcePathStyle: boolean) => {
  const base = { region: config.region, ...(config.profile ? { profile: config.profile } : {}) };
  // No `endpoint`: the SDK honours AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE> itself.
  const db = DynamoDBDocumentClient.from(new DynamoDBClient(base), {
    marshallOptions: { removeUndefinedValues: true },
  });
  return {
    db,
    s3: new S3Client({
      ...base,
      forcePathStyle: forcePathStyle || process.env.AWS_S3_FORCE_PATH_STYLE === 'true',
    }),
    sns: new SNSClient(base),
  };
};

/** Names from the deployed stack's outputs (one DescribeStacks). */
const stackNames = async (
  stage: string,
  config: { region: string; profile?: string | undefined },
): Promise<StackNames> => {
  const cfn = new CloudFormationClient({
    region: config.region,
    ...(config.profile ? { profile: config.profile } : {}),
  });
  try {
    const { Stacks } = await cfn.send(new DescribeStacksCommand({ StackName: stackName(stage) }));
    const outputs = new Map((Stacks?.[0]?.Outputs ?? []).map((o) => [o.OutputKey, o.OutputValue]));
    const names = {} as StackNames;
    for (const [field, key] of Object.entries(OUTPUTS) as [keyof StackNames, string][]) {
      const value = outputs.get(key);
      if (!value) {
        throw new CliError(
          `stack ${stackName(stage)} in ${config.region} has no output ${key} (deployed from an older version? run serverless deploy --stage ${stage})`,
        );
      }
      names[field] = value;
    }
    return names;
  } catch (err) {
    if ((err as Error).name === 'ValidationError' && /does not exist/.test((err as Error).message)) {
      throw new CliError(
        `stack ${stackName(stage)} does not exist in ${config.region} (wrong --region or --profile, or not deployed; --local reads the local harness)`,
      );
    }
    throw err;
  } finally {
    cfn.destroy();
  }
};

/**
 * The local harness, loaded only for --local: it brings the emulators and the mocks (dev
 * dependencies) that an AWS session never needs. `require`, not `import()`: the harness must share
 * this process's CommonJS SDK classes, or its client mocks would not see the CLI's clients.
 */
/* eslint-disable @typescript-eslint/no-require-imports */
const localHarness = {
  template: () => require('../test/harness/template') as typeof import('../test/harness/template'),
  pipeline: () => require('../test/harness/pipeline') as typeof import('../test/harness/pipeline'),
  emulators: () => require('../test/harness/emulators') as typeof import('../test/harness/emulators'),
};
/* eslint-enable @typescript-eslint/no-require-imports */

/** Local mode: the environment the harness's emulators expect. */
const LOCAL_ENV = {
  // s3rver accepts only these credentials; dynalite accepts any.
  AWS_ACCESS_KEY_ID: 'S3RVER',
  AWS_SECRET_ACCESS_KEY: 'S3RVER',
  AWS_S3_FORCE_PATH_STYLE: 'true',
  // s3rver stores aws-chunked bodies verbatim: only send checksums when an API requires them.
  AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
  AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
};

const localDirOf = (local: string | boolean | undefined): string =>
  path.resolve(typeof local === 'string' ? local : DEFAULT_LOCAL_DIR);

const openLocal = async (
  options: GlobalOptions,
  stage: StageConfig,
  opts: ContextOptions,
): Promise<Context> => {
  const dir = localDirOf(options.local);
  if (!opts.withPipeline && !existsSync(path.join(dir, 'dynamodb'))) {
    throw new CliError(`no local state in ${dir}: run \`npm start\` first (or pass --local <dir>)`);
  }
  delete process.env.AWS_PROFILE;
  Object.assign(process.env, LOCAL_ENV, { AWS_REGION: stage.region });
  const { LocalTemplate } = localHarness.template();
  const template = new LocalTemplate(stage);
  const names: StackNames = {
    auditTable: template.resource('AuditTable').ref,
    artifactsBucket: template.resource('ArtifactsBucket').ref,
    reportsBucket: template.resource('ReportsBucket').ref,
    triggerTopicArn: template.resource('TriggerTopic').ref,
  };
  let stop: () => Promise<void>;
  let pipeline: LocalRun | undefined;
  try {
    if (opts.withPipeline) {
      // The handlers run in this process and share its logger, built before the harness set
      // POWERTOOLS_LOG_LEVEL: quiet it, the progress lines say what runs.
      logger.setLogLevel('SILENT');
      const { LocalPipeline } = localHarness.pipeline();
      const running = await LocalPipeline.start({
        stage: stage.stage,
        stateDir: dir,
        ...(opts.io ? { onEvent: localProgress(opts.io) } : {}),
      });
      pipeline = running;
      stop = () => running.stop();
    } else {
      const { startEmulators } = localHarness.emulators();
      const scratchDir = mkdtempSync(path.join(tmpdir(), 'ami-pipeline-cli-'));
      const emulators = await startEmulators({ stateDir: dir, scratchDir });
      process.env.AWS_ENDPOINT_URL_DYNAMODB = emulators.dynamodbEndpoint;
      process.env.AWS_ENDPOINT_URL_S3 = emulators.s3Endpoint;
      stop = async () => {
        await emulators.stop();
        rmSync(scratchDir, { recursive: true, force: true });
      };
    }
  } catch (err) {
    if (/lock|LOCK|already held/.test((err as Error).message)) {
      throw new CliError(`the local state in ${dir} is in use by another process (is npm start running?)`);
    }
    throw err;
  }
  const clients = clientsFor({ region: stage.region }, true);
  return {
    stage,
    names,
    ...clients,
    local: true,
    ...(pipeline ? { pipeline } : {}),
    async close() {
      clients.db.destroy();
      clients.s3.destroy();
      clients.sns.destroy();
      await stop();
    },
  };
};

/** Prints the local harness's states as they run (stderr: stdout keeps the answer). */
const localProgress =
  (io: Io) => (execution: { name: string }, event: { type: string; state?: unknown; error?: unknown }) => {
    if (event.type === 'StateExited') io.err(`  ${execution.name}  ✓ ${String(event.state)}`);
    else if (event.type === 'StateFailed')
      io.err(`  ${execution.name}  ✗ ${String(event.state)} ${String(event.error)}`);
  };

/** Opens what a command needs: AWS (names from the stack's outputs) or the local harness's state. */
export const openContext = async (options: GlobalOptions, opts: ContextOptions = {}): Promise<Context> => {
  const stage = stageConfig(options.stage);
  if (options.local) return openLocal(options, stage, opts);
  const config = { region: options.region ?? stage.region, profile: options.profile };
  const names = await stackNames(stage.stage, config);
  const clients = clientsFor(config, false);
  return {
    stage,
    names,
    ...clients,
    local: false,
    async close() {
      clients.db.destroy();
      clients.s3.destroy();
      clients.sns.destroy();
    },
  };
};
