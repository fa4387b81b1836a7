import type { EC2Client } from '@aws-sdk/client-ec2';
import type { KMSClient } from '@aws-sdk/client-kms';
import * as z from 'zod';
import type { AuditRepository } from '../audit';
import { GONE, removeRunImages, type ImagePlace } from '../compensate';
import { errorMessage, errorName } from '../errors';
import { logger } from '../logger';
import { runRefSchema } from '../run-ref';

export const retireInputSchema = z.object({
  run: runRefSchema,
  amiId: z
    .string()
    .regex(/^ami-[a-f0-9]{8,17}$/)
    .nullable(),
  replacedBy: z.string().regex(/^[a-f0-9]{20}$/),
});

export type RetireInput = z.infer<typeof retireInputSchema>;

export interface RetireDeps {
  ec2: EC2Client;
  kms: KMSClient;
  audit: AuditRepository;
  kmsKeyArn: string;
  /** The stage's distribution regions: the release's copies there go too. */
  elsewhere?: readonly ImagePlace[];
  now: () => Date;
}

export interface RetireOutput {
  amiRemoved: boolean;
  removed: number;
}

/**
 * The last step of decommissioning a replaced release (its stack is already destroyed): its AMI,
 * snapshots and KMS grants go too, unless a live release of this environment still uses the AMI.
 * Everything is recorded on the old run as DECOMMISSIONED events; nothing is deleted from the
 * audit table. A step that fails is thrown, so the decommission execution fails and alerts.
 */
export const retireRelease = async (input: RetireInput, deps: RetireDeps): Promise<RetireOutput> => {
  const { run } = input;
  const stillLive = input.amiId
    ? (await deps.audit.liveReleases(run.environment)).some((release) => release.amiId === input.amiId)
    : false;
  const record = (type: string, id: string, detail: Record<string, unknown>) =>
    deps.audit.recordEvent({
      runId: run.runId,
      type,
      stage: 'Decommission',
      at: deps.now().toISOString(),
      id,
      detail,
    });

  let removed = 0;
  const failures: string[] = [];
  if (!stillLive) {
    await removeRunImages(run.runId, deps, async (action, resource, fn, gone = GONE) => {
      try {
        if ((await fn()) === false) return;
        removed++;
        await record('DECOMMISSIONED', `${action}#${resource}`, {
          action,
          resource,
          replacedBy: input.replacedBy,
        });
      } catch (err) {
        if (gone.test(errorName(err))) return;
        failures.push(`${action} ${resource}: ${errorName(err)}: ${errorMessage(err)}`);
      }
    });
  }
  await record('DECOMMISSIONED', 'RELEASE', {
    action: 'RETIRE_RELEASE',
    resource: run.runId,
    replacedBy: input.replacedBy,
    amiKept: stillLive ? 'a live release still uses it' : null,
    removed,
    failures,
  });
  if (failures.length) throw new Error(`decommission of ${run.runId} incomplete: ${failures.join('; ')}`);
  logger.info('release decommissioned', { runId: run.runId, removed, amiKept: stillLive });
  return { amiRemoved: !stillLive && input.amiId !== null, removed };
};
