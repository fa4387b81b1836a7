import { RUN_ID_TAG } from './images';
import { GetObjectCommand, NoSuchKey, type S3Client } from '@aws-sdk/client-s3';
import type { SSMClient } from '@aws-sdk/client-ssm';
import * as z from 'zod';
import type { AuditRepository } from './audit';
import { appConfigSchema, type AppConfig } from './config/app';
import { parseYaml } from './config/files';
import { checkRules, type Rules } from './config/rules';
import type { StageConfig } from './config/stage';
import { AppConfigInvalidError, AppConfigNotFoundError } from './errors';
import { logger } from './logger';
import { runConfigParameterName, storeRunConfig, type RunConfig } from './run-config';
import { executionInputSchema, parseS3Uri } from './trigger/message';
import { describeIssues } from './validation';

export const preProvisionInputSchema = z.object({
  trigger: executionInputSchema,
  run: z.object({
    executionArn: z.string().startsWith('arn:'),
    startedAt: z.iso.datetime({ offset: true }),
  }),
});

export type PreProvisionInput = z.infer<typeof preProvisionInputSchema>;

/** Only names and identifiers leave this stage: the run config itself stays in Parameter Store. */
export interface PreProvisionOutput {
  runConfigParameter: string;
  runConfigVersion: number;
}

/** Deploy-time names of the stage's resources (CloudFormation outputs passed as environment). */
export interface PlatformNames {
  kmsKeyArn: string;
  artifactsBucket: string;
  reportsBucket: string;
  logsBucket: string;
}

export interface PreProvisionDeps {
  stage: StageConfig;
  rules: Rules;
  platform: PlatformNames;
  audit: AuditRepository;
  s3: S3Client;
  ssm: SSMClient;
  now: () => Date;
}

/** Tags every resource the pipeline creates carries (DESIGN "Data"). */
export const resourceTags = (runId: string, appId: string, stage: string): Record<string, string> => ({
  [RUN_ID_TAG]: runId,
  'ami-pipeline:app-id': appId,
  'ami-pipeline:stage': stage,
});

/**
 * Pre-provision: record the run, load and check the app config (schema, then platform rules, every
 * violation in one error), merge it with the stage settings and the trigger, and store the result
 * as the run's SecureString parameter.
 */
export const preProvision = async (
  input: PreProvisionInput,
  deps: PreProvisionDeps,
): Promise<PreProvisionOutput> => {
  const { trigger, run } = input;
  await deps.audit.recordRunStarted({
    runId: trigger.runId,
    appId: trigger.appId,
    environment: trigger.environment,
    version: trigger.version,
    buildId: trigger.buildId,
    kind: trigger.kind,
    requestedBy: trigger.requestedBy,
    executionArn: run.executionArn,
    startedAt: run.startedAt,
  });

  const app = validateAppConfig(
    await loadAppConfig(trigger.appConfigUri, deps.s3),
    deps.rules,
    trigger.appId,
    trigger.environment,
    deps.stage,
  );

  const tags = resourceTags(trigger.runId, trigger.appId, deps.stage.stage);
  const runConfig: RunConfig = {
    schemaVersion: 1,
    run: {
      runId: trigger.runId,
      executionArn: run.executionArn,
      startedAt: run.startedAt,
      stage: deps.stage.stage,
      region: deps.stage.region,
    },
    release: {
      appId: trigger.appId,
      environment: trigger.environment,
      version: trigger.version,
      buildId: trigger.buildId,
      kind: trigger.kind,
      requestedBy: trigger.requestedBy,
      artifact: trigger.artifact,
      appConfigUri: trigger.appConfigUri,
    },
    app,
    platform: { ...deps.platform, tags },
  };
  const stored = await storeRunConfig(deps.ssm, {
    name: runConfigParameterName(deps.stage.stage, trigger.appId, trigger.runId),
    value: JSON.stringify(runConfig),
    kmsKeyId: deps.platform.kmsKeyArn,
    tags,
  });

  const at = deps.now().toISOString();
  await deps.audit.recordResource({
    runId: trigger.runId,
    appId: trigger.appId,
    environment: trigger.environment,
    executionArn: run.executionArn,
    buildId: trigger.buildId,
    version: trigger.version,
    resourceType: 'PARAMETER',
    resourceId: stored.name,
    createdAt: at,
    detail: {
      version: stored.version,
      tier: stored.tier,
      bytes: stored.bytes,
      kmsKeyArn: deps.platform.kmsKeyArn,
    },
  });
  await deps.audit.recordEvent({
    runId: trigger.runId,
    type: 'PRE_PROVISIONED',
    stage: 'PreProvision',
    at,
    detail: { runConfigParameter: stored.name, runConfigVersion: stored.version },
  });
  logger.info('run config stored', { parameter: stored.name, version: stored.version, tier: stored.tier });
  return { runConfigParameter: stored.name, runConfigVersion: stored.version };
};

const loadAppConfig = async (uri: string, s3: S3Client): Promise<unknown> => {
  const { bucket, key } = parseS3Uri(uri);
  let text: string;
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    text = (await object.Body?.transformToString('utf8')) ?? '';
  } catch (err) {
    if (err instanceof NoSuchKey)
      throw new AppConfigNotFoundError(`app config ${uri} does not exist`, { cause: err });
    throw err;
  }
  try {
    return parseYaml(text);
  } catch (err) {
    throw new AppConfigInvalidError([`appConfig: is not valid YAML or JSON (${(err as Error).message})`], {
      cause: err,
    });
  }
};

/** Schema first (rules need a well-formed config), then the platform rules; every violation listed. */
export const validateAppConfig = (
  raw: unknown,
  rules: Rules,
  appId: string,
  environment: string,
  stage?: Pick<StageConfig, 'stage' | 'region' | 'distribution'>,
): AppConfig => {
  const parsed = appConfigSchema.safeParse(raw);
  if (!parsed.success) throw new AppConfigInvalidError(describeIssues(parsed.error, 'appConfig'));
  const violations = [
    ...checkRules(parsed.data, rules, environment),
    ...(stage ? checkDistribution(parsed.data, stage) : []),
  ].map((v) => `appConfig.${v}`);
  if (parsed.data.appId !== appId) {
    violations.unshift(
      `appConfig.appId: "${parsed.data.appId}" does not match the trigger's appId "${appId}"`,
    );
  }
  if (violations.length > 0) throw new AppConfigInvalidError(violations);
  return parsed.data;
};

/**
 * An app may ask for copies only in regions its stage distributes to (the stage names the key each
 * copy is encrypted with), and never in the stage's own region, which always has the AMI.
 */
export const checkDistribution = (
  app: AppConfig,
  stage: Pick<StageConfig, 'stage' | 'region' | 'distribution'>,
): string[] => {
  const known = Object.keys(stage.distribution.regions);
  return app.distribution.regions.flatMap((region, i) => {
    if (region === stage.region)
      return [`distribution.regions[${i}]: ${region} is the stage's own region, which always has the AMI`];
    if (!known.includes(region))
      return [
        `distribution.regions[${i}]: ${region} is not a distribution region of stage ${stage.stage} (${known.length ? `it has ${known.join(', ')}` : 'it has none'}; config/${stage.stage}.yml distribution.regions)`,
      ];
    return [];
  });
};
