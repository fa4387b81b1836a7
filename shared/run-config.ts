import {
  AddTagsToResourceCommand,
  GetParameterCommand,
  ParameterAlreadyExists,
  ParameterTier,
  ParameterType,
  PutParameterCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import * as z from 'zod';
import { appConfigSchema } from './config/app';
import { ConfigurationError, RunConfigTooLargeError } from './errors';
import { executionInputSchema } from './trigger/message';
import { describeIssues } from './validation';

/** SSM limits: standard parameters hold 4 KB, advanced ones 8 KB. */
export const STANDARD_TIER_MAX_BYTES = 4096;
export const ADVANCED_TIER_MAX_BYTES = 8192;

/** `/ami-pipeline/<stage>/<appId>/<runId>`: one SecureString per run; IAM scopes workers to the stage's prefix. */
export const runConfigParameterName = (stage: string, appId: string, runId: string): string =>
  `/ami-pipeline/${stage}/${appId}/${runId}`;

export interface StoredParameter {
  name: string;
  version: number;
  tier: ParameterTier;
  bytes: number;
}

/**
 * Writes the run config as a SecureString encrypted with the stage's customer key, choosing the
 * advanced tier only when the value needs it. Idempotent for Lambda retries: a second write of the
 * same run overwrites (PutParameter refuses tags together with Overwrite, so tags are re-applied).
 */
export const storeRunConfig = async (
  ssm: SSMClient,
  params: { name: string; value: string; kmsKeyId: string; tags: Record<string, string> },
): Promise<StoredParameter> => {
  const bytes = Buffer.byteLength(params.value, 'utf8');
  if (bytes > ADVANCED_TIER_MAX_BYTES) {
    throw new RunConfigTooLargeError(
      `run config is ${bytes} bytes; an SSM parameter holds at most ${ADVANCED_TIER_MAX_BYTES} (shrink bake.chefAttributes)`,
    );
  }
  const tier = bytes > STANDARD_TIER_MAX_BYTES ? ParameterTier.ADVANCED : ParameterTier.STANDARD;
  const tags = Object.entries(params.tags).map(([Key, Value]) => ({ Key, Value }));
  const base = {
    Name: params.name,
    Value: params.value,
    Type: ParameterType.SECURE_STRING,
    KeyId: params.kmsKeyId,
    Tier: tier,
    Description: 'ami-pipeline run config (written by pre-provision)',
  };
  try {
    const out = await ssm.send(new PutParameterCommand({ ...base, Tags: tags }));
    return { name: params.name, version: out.Version ?? 1, tier, bytes };
  } catch (err) {
    if (!(err instanceof ParameterAlreadyExists)) throw err;
  }
  const out = await ssm.send(new PutParameterCommand({ ...base, Overwrite: true }));
  await ssm.send(
    new AddTagsToResourceCommand({ ResourceType: 'Parameter', ResourceId: params.name, Tags: tags }),
  );
  return { name: params.name, version: out.Version ?? 1, tier, bytes };
};

/** The run config as pre-provision writes it and later workers read it back. */
export const runConfigSchema = z.object({
  schemaVersion: z.literal(1),
  run: z.object({
    runId: z.string(),
    executionArn: z.string(),
    startedAt: z.string(),
    stage: z.string(),
    region: z.string(),
  }),
  release: executionInputSchema.pick({
    appId: true,
    environment: true,
    version: true,
    buildId: true,
    kind: true,
    requestedBy: true,
    artifact: true,
    appConfigUri: true,
  }),
  app: appConfigSchema,
  platform: z.object({
    kmsKeyArn: z.string(),
    artifactsBucket: z.string(),
    reportsBucket: z.string(),
    logsBucket: z.string(),
    tags: z.record(z.string(), z.string()),
  }),
});

export type RunConfig = z.infer<typeof runConfigSchema>;

/** Reads and decrypts a run's config; the value is never logged or returned to the state machine. */
export const loadRunConfig = async (ssm: SSMClient, name: string): Promise<RunConfig> => {
  const out = await ssm.send(new GetParameterCommand({ Name: name, WithDecryption: true }));
  const parsed = runConfigSchema.safeParse(JSON.parse(out.Parameter?.Value ?? 'null'));
  if (!parsed.success) {
    throw new ConfigurationError(
      `run config ${name} does not match its schema: ${describeIssues(parsed.error).join('; ')}`,
    );
  }
  return parsed.data;
};
