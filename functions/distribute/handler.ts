import type { Context } from 'aws-lambda';
import * as z from 'zod';
import { ec2 } from '../../shared/clients/ec2';
import { kms } from '../../shared/clients/kms';
import { clientsIn } from '../../shared/clients/regional';
import { ssm } from '../../shared/clients/ssm';
import { auditFromEnv } from '../../shared/audit-env';
import { stageConfigFromEnv } from '../../shared/config/stage';
import { distribute, distributeInputSchema, type DistributeDeps } from '../../shared/distribute';
import { copyInputSchema, copyToRegion } from '../../shared/distribution/copy';
import { publishAmis, publishInputSchema } from '../../shared/distribution/publish';
import { requireEnv } from '../../shared/env';
import { withLogContext } from '../../shared/logger';
import { parseTaskInput } from '../../shared/task-input';

const stage = stageConfigFromEnv();

const defaultDeps: DistributeDeps = {
  ec2,
  kms,
  ssm,
  audit: auditFromEnv(),
  kmsKeyArn: requireEnv('KMS_KEY_ARN'),
  // The Lambda timeout (function.yml) leaves two minutes above the longest wait the stage allows.
  copyWaitSeconds: stage.distribution.copyWaitSeconds,
  stage,
  now: () => new Date(),
};

/**
 * Three tasks of one worker (one role, the same clients): Distribute in the stage's region (no
 * `action`), a copy to one other region (`copy`, a DistributeToRegions Map item), and publishing the
 * AMI ids (`publish`, PublishAmiIds).
 */
const inputSchema = z.union([copyInputSchema, publishInputSchema, distributeInputSchema]);

const dispatch = (input: z.infer<typeof inputSchema>, deps: DistributeDeps): Promise<unknown> => {
  const more = { clientsIn, audit: deps.audit, stage: deps.stage, now: deps.now };
  if ('action' in input && input.action === 'copy')
    return copyToRegion(input, { ...more, ec2: deps.ec2, ssm: deps.ssm });
  if ('action' in input && input.action === 'publish')
    return publishAmis(input, { ...more, ec2: deps.ec2, ssm: deps.ssm });
  return distribute(input as z.infer<typeof distributeInputSchema>, deps);
};

export const run = async (event: unknown, deps: DistributeDeps = defaultDeps) =>
  dispatch(parseTaskInput(inputSchema, event), deps);

export const handler = async (event: unknown, context: Context) => {
  const input = parseTaskInput(inputSchema, event);
  return withLogContext(context, input.run, () => dispatch(input, defaultDeps));
};
