import {
  DeleteParameterCommand,
  DeleteResourcePolicyCommand,
  GetParameterCommand,
  GetResourcePoliciesCommand,
  ParameterNotFound,
  PutParameterCommand,
  PutResourcePolicyCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import type { EC2Client } from '@aws-sdk/client-ec2';
import * as z from 'zod';
import type { AuditRepository } from '../audit';
import type { RegionalClients } from '../clients/regional';
import type { StageConfig } from '../config/stage';
import { describeImage } from '../distribute';
import { DistributionFailedError } from '../errors';
import { madeByRun } from '../images';
import { logger } from '../logger';
import { loadRunConfig } from '../run-config';
import { runRefSchema, type RunRef } from '../run-ref';
import { accountsOf, resourceRecorder } from './share';

const AMI_ID = /^ami-[a-f0-9]{8,17}$/;
const regionalAmi = z.object({ region: z.string().min(1), amiId: z.string().regex(AMI_ID) });

export const publishInputSchema = z.object({
  action: z.literal('publish'),
  run: runRefSchema,
  runConfigParameter: z.string().startsWith('/ami-pipeline/'),
  /** Distribute's result in the stage's region. */
  home: regionalAmi,
  /** DistributeToRegions' results, one per other region (empty when the app asks for none). */
  copies: z.array(regionalAmi),
});

export type PublishInput = z.infer<typeof publishInputSchema>;

export interface PublishOutput {
  parameters: { region: string; name: string; amiId: string; version: number }[];
}

export interface PublishDeps {
  ssm: SSMClient;
  ec2: EC2Client;
  clientsIn: (region: string) => RegionalClients;
  audit: AuditRepository;
  stage: Pick<StageConfig, 'stage' | 'region' | 'distribution'>;
  now: () => Date;
}

/** The parameter consuming accounts read for an app's current AMI, the same name in every region. */
export const latestAmiParameterName = (stage: string, appId: string): string =>
  `/ami-pipeline/${stage}/${appId}/latest-ami`;

/** What `LATEST_AMI_PARAMETER` records: enough for compensation to put the previous value back. */
export interface LatestAmiDetail {
  region: string;
  name: string;
  /** The parameter's ARN (its resource policy is addressed by it). */
  arn: string;
  /** The AMI the run published there; null when it withdrew the parameter (a region it is not in). */
  amiId: string | null;
  /** The value before this run wrote it; null when this run created the parameter. */
  previous: { value: string; version: number } | null;
  /** This pipeline's resource policy on it before the run (who could read it), or null. */
  previousPolicy: string | null;
}

export const RESOURCE_POLICY_SID = 'AmiPipelineConsumersRead';

/** `arn:<partition>:ssm:<region>:<account>:parameter/<name>`, account and partition from the execution. */
const parameterArn = (run: RunRef, region: string, name: string): string => {
  const [, partition, , , account] = run.executionArn.split(':');
  return `arn:${partition}:ssm:${region}:${account}:parameter${name}`;
};

/**
 * Publishes the run's AMI id in each region it is in, as `/ami-pipeline/<stage>/<appId>/latest-ami`
 * (an Advanced-tier String of data type aws:ec2:image, so SSM checks the id), readable by the app's
 * accounts through a resource policy (shared by AWS RAM). The value it replaces is recorded first,
 * so compensation can put it back; a retried attempt keeps what the first one recorded.
 */
export const publishAmis = async (input: PublishInput, deps: PublishDeps): Promise<PublishOutput> => {
  const { run } = input;
  const config = await loadRunConfig(deps.ssm, input.runConfigParameter);
  const record = resourceRecorder(run, config, deps.audit, deps.now);
  const accounts = accountsOf(config);
  const name = latestAmiParameterName(deps.stage.stage, run.appId);
  const recorded = await deps.audit.resourcesOf(run.runId, 'LATEST_AMI_PARAMETER');
  const parameters: PublishOutput['parameters'] = [];

  for (const { region, amiId } of [input.home, ...input.copies]) {
    const clients = region === deps.stage.region ? { ssm: deps.ssm, ec2: deps.ec2 } : deps.clientsIn(region);
    // Never publish an image this run did not make (the ids come from the execution's state).
    const image = await describeImage(clients.ec2, amiId);
    if (!image || madeByRun(image) !== run.runId) {
      throw new DistributionFailedError(`${region}: AMI ${amiId} does not exist or was not made by this run`);
    }
    // Recorded before the write, with the value it replaces; a retried attempt keeps that record.
    const mine = recorded.find((r) => (r.detail as LatestAmiDetail | undefined)?.region === region);
    const arn = parameterArn(run, region, name);
    if (!mine) {
      const previous = await currentValue(clients.ssm, name);
      const previousPolicy = previous ? ((await ourPolicy(clients.ssm, arn))?.Policy ?? null) : null;
      await record('LATEST_AMI_PARAMETER', `${region}:${name}`, {
        region,
        name,
        arn,
        amiId,
        previous,
        previousPolicy,
      } satisfies LatestAmiDetail);
    }
    const put = await clients.ssm.send(
      new PutParameterCommand({
        Name: name,
        Value: amiId,
        Type: 'String',
        DataType: 'aws:ec2:image',
        // Only Advanced-tier parameters can be shared with other accounts.
        Tier: 'Advanced',
        Overwrite: true,
        Description: `Current AMI of ${run.appId} in ${deps.stage.stage} (ami-pipeline run ${run.runId}, version ${config.release.version})`,
      }),
    );
    await shareParameter(clients.ssm, arn, accounts);
    parameters.push({ region, name, amiId, version: put.Version ?? 0 });
  }
  // A distribution region this release is not in (the app dropped it): the parameter there still
  // names an earlier release's copy, which that release's decommission will remove. Withdrawn, and
  // recorded like a write (amiId null) so compensation puts it back.
  const released = new Set([input.home.region, ...input.copies.map((c) => c.region)]);
  for (const region of Object.keys(deps.stage.distribution.regions).filter((r) => !released.has(r))) {
    const { ssm } = deps.clientsIn(region);
    const arn = parameterArn(run, region, name);
    if (!recorded.some((r) => (r.detail as LatestAmiDetail | undefined)?.region === region)) {
      const previous = await currentValue(ssm, name);
      if (!previous) continue;
      const previousPolicy = (await ourPolicy(ssm, arn))?.Policy ?? null;
      await record('LATEST_AMI_PARAMETER', `${region}:${name}`, {
        region,
        name,
        arn,
        amiId: null,
        previous,
        previousPolicy,
      } satisfies LatestAmiDetail);
    }
    try {
      await ssm.send(new DeleteParameterCommand({ Name: name }));
    } catch (err) {
      if (!(err instanceof ParameterNotFound || (err as Error).name === 'ParameterNotFound')) throw err;
    }
    logger.info('latest AMI withdrawn from a region the release is not in', { parameter: name, region });
  }
  logger.info('latest AMI published', { parameter: name, regions: parameters.map((p) => p.region) });
  return { parameters };
};

const currentValue = async (ssm: SSMClient, name: string): Promise<LatestAmiDetail['previous']> => {
  try {
    const { Parameter } = await ssm.send(new GetParameterCommand({ Name: name }));
    return Parameter?.Value ? { value: Parameter.Value, version: Parameter.Version ?? 0 } : null;
  } catch (err) {
    if (err instanceof ParameterNotFound || (err as Error).name === 'ParameterNotFound') return null;
    throw err;
  }
};

/** This pipeline's statement among the parameter's resource policies (by its Sid), if any. */
export const ourPolicy = async (ssm: SSMClient, arn: string) => {
  const { Policies = [] } = await ssm.send(new GetResourcePoliciesCommand({ ResourceArn: arn }));
  return Policies.find((p) => p.Policy?.includes(RESOURCE_POLICY_SID));
};

/**
 * Sets this pipeline's resource policy on the parameter (`policy`), or removes it (`null`): who may
 * read it. Publishing shares it so; compensation puts back what it was before the run.
 */
export const setConsumersPolicy = async (
  ssm: SSMClient,
  arn: string,
  policy: string | null,
): Promise<void> => {
  // A write whose answer was lost (the SDK retries it without the new hash) or a concurrent change
  // is a conflict: read the policy again and write against its current hash, a bounded few times.
  const same = (a: string, b: string) => JSON.stringify(JSON.parse(a)) === JSON.stringify(JSON.parse(b));
  for (let attempt = 1; ; attempt++) {
    const ours = await ourPolicy(ssm, arn);
    try {
      if (policy === null) {
        if (ours?.PolicyId && ours.PolicyHash) {
          await ssm.send(
            new DeleteResourcePolicyCommand({
              ResourceArn: arn,
              PolicyId: ours.PolicyId,
              PolicyHash: ours.PolicyHash,
            }),
          );
        }
        return;
      }
      if (ours?.Policy && same(ours.Policy, policy)) return;
      await ssm.send(
        new PutResourcePolicyCommand({
          ResourceArn: arn,
          Policy: policy,
          ...(ours ? { PolicyId: ours.PolicyId, PolicyHash: ours.PolicyHash } : {}),
        }),
      );
      return;
    } catch (err) {
      const name = (err as Error).name;
      if (name === 'ResourcePolicyNotFoundException' && policy === null) return;
      if (name !== 'ResourcePolicyConflictException' || attempt >= 3) throw err;
    }
  }
};

/**
 * Lets the accounts read the parameter: a resource policy (SSM shares it through AWS RAM), kept
 * as the one statement this pipeline owns and replaced when the accounts change.
 */
const shareParameter = (ssm: SSMClient, arn: string, accounts: string[]): Promise<void> =>
  setConsumersPolicy(
    ssm,
    arn,
    JSON.stringify({
      Version: '2012-10-17',
      Statement: [
        {
          Sid: RESOURCE_POLICY_SID,
          Effect: 'Allow',
          Principal: { AWS: accounts },
          Action: ['ssm:GetParameter', 'ssm:GetParameters'],
          Resource: arn,
        },
      ],
    }),
  );
