import {
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import { DeleteSubscriptionFilterCommand, type CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import type { Action, ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { paginateListGrants, RevokeGrantCommand, type KMSClient } from '@aws-sdk/client-kms';
import {
  CancelCommandCommand,
  DeleteParameterCommand,
  GetParameterCommand,
  ListCommandsCommand,
  PutParameterCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import * as z from 'zod';
import type { AuditRepository, ResourceRecord } from './audit';
import { setConsumersPolicy, type LatestAmiDetail } from './distribution/publish';
import { COMMAND_STEPS, NOT_ENDED_STATUSES } from './commands/contract';
import type { TaskStore } from './commands/tasks';
import { findUnrecordedCommands } from './commands/unrecorded';
import { errorMessage, errorName } from './errors';
import { logger } from './logger';
import type { LogSubscriptionDetail } from './release/log-export';
import { launchGrantName, madeByRun, RUN_ID_TAG, snapshotsOf } from './images';
import { restoreListener } from './release/traffic';
import { runRefSchema } from './run-ref';

export const compensateInputSchema = z.object({
  run: runRefSchema,
  failure: z
    .object({ stage: z.string(), Error: z.string().optional(), Cause: z.string().optional() })
    .passthrough(),
});

export type CompensateInput = z.infer<typeof compensateInputSchema>;

export interface CompensationFailure {
  action: string;
  resource: string;
  error: string;
}

export interface CompensateOutput {
  status: 'COMPLETE' | 'INCOMPLETE';
  undone: number;
  failed: CompensationFailure[];
  /** The run reached Provision: its green stack must be destroyed (a long-running command). */
  needsStackDestroy: boolean;
}

export interface CompensateDeps {
  ec2: EC2Client;
  elbv2: ElasticLoadBalancingV2Client;
  kms: KMSClient;
  logs: CloudWatchLogsClient;
  ssm: SSMClient;
  tasks: TaskStore;
  audit: AuditRepository;
  kmsKeyArn: string;
  /** The stage's distribution regions: a run's copies there are removed too. */
  elsewhere?: readonly ImagePlace[];
  now: () => Date;
}

const RUN_TAG = `tag:${RUN_ID_TAG}`;
/** Error names meaning the resource no longer exists (nothing left to undo). */
export const GONE = /NotFound|InvalidAMIID\.Unavailable|InvalidSnapshot\.NotFound|NotFoundException/;

/**
 * Undoes what a failed run made, from what AWS and the audit table say it made: cancels its
 * in-flight commands, puts the ALB listener back as the run found it (blue at 100 %), removes the
 * log subscriptions it added, revokes its KMS grants, deregisters its AMIs (which ends their launch
 * permissions) and deletes their snapshots. Resources are found by the run's tag as well as the
 * audit inventory, so an AMI Packer made just before the failure is not missed. Every step is
 * attempted and recorded (UNDONE or UNDO_FAILED); a failed step never stops the others.
 */
export const compensate = async (input: CompensateInput, deps: CompensateDeps): Promise<CompensateOutput> => {
  const { runId } = input.run;
  const failed: CompensationFailure[] = [];
  let undone = 0;
  /**
   * Runs one undo step; `fn` returns false when there turned out to be nothing to undo. An error
   * matching `gone` means the resource no longer exists, which is not a failure.
   */
  const attempt = async (
    action: string,
    resource: string,
    fn: () => Promise<unknown>,
    gone: RegExp = GONE,
  ) => {
    const recordUndone = async (note?: string) => {
      undone++;
      await deps.audit.recordEvent({
        runId,
        type: 'UNDONE',
        stage: 'Compensate',
        at: deps.now().toISOString(),
        id: `${action}#${resource}`,
        detail: { action, resource, failedStage: input.failure.stage, ...(note ? { note } : {}) },
      });
    };
    try {
      if ((await fn()) === false) return;
      await recordUndone();
    } catch (err) {
      if (gone.test(errorName(err))) {
        // Gone on the SDK's retry of this very call: the attempt whose answer was lost (a timeout)
        // removed it, and that is this compensation's work to record. Gone at the first attempt:
        // it was already gone, nothing left to undo.
        if (sdkAttempts(err) > 1) await recordUndone('the answer was lost; found gone when retried');
        return;
      }
      failed.push({ action, resource, error: `${errorName(err)}: ${errorMessage(err)}` });
      await deps.audit
        .recordEvent({
          runId,
          type: 'UNDO_FAILED',
          stage: 'Compensate',
          at: deps.now().toISOString(),
          id: `${action}#${resource}`,
          detail: { action, resource, error: `${errorName(err)}: ${errorMessage(err)}` },
        })
        .catch((auditErr: unknown) =>
          logger.error('could not record a failed undo', { error: auditErr as Error }),
        );
    }
  };

  // Never undo a live release. RecordRelease turns its own errors after the pointer moved into
  // ReleaseLiveError (not compensated), but a worker that dies or times out there reaches this
  // state as Lambda.Unknown: nothing is touched, and the run is reported for a person to look at.
  if ((await deps.audit.liveRunId(input.run.environment, input.run.appId)) === runId) {
    const error = 'ReleaseLiveError: the release is live (its LIVE item names this run); nothing was undone';
    await deps.audit.recordEvent({
      runId,
      type: 'UNDO_FAILED',
      stage: 'Compensate',
      at: deps.now().toISOString(),
      id: `COMPENSATE#${runId}`,
      detail: { action: 'COMPENSATE', resource: runId, error },
    });
    logger.error('compensation refused: the release is live', { runId, failedStage: input.failure.stage });
    return {
      status: 'INCOMPLETE',
      undone: 0,
      failed: [{ action: 'COMPENSATE', resource: runId, error }],
      needsStackDestroy: false,
    };
  }

  let needsStackDestroy = false;
  for (const step of COMMAND_STEPS) {
    const task = await deps.tasks.get(runId, step);
    if (!task) continue;
    // A provision apply that was never sent made nothing to destroy; one sent but not recorded
    // (no command id after a crash) may have: destroying a stack that does not exist is harmless.
    if (step === 'provision' && task.mode === 'apply' && task.outcome !== 'NOT_SENT')
      needsStackDestroy = true;
    if (task.status === 'PENDING' && !task.commandId) {
      // The worker died between SendCommand and recording the command id (or lost SendCommand's
      // answer): its command runs unknown to the coordination table. Found by its Comment.
      for (const command of await findUnrecordedCommands(deps, task)) {
        const commandId = command.CommandId as string;
        await attempt('CANCEL_COMMAND', commandId, async () => {
          if (!NOT_ENDED_STATUSES.has(command.Status ?? '')) return false;
          await deps.ssm.send(new CancelCommandCommand({ CommandId: commandId }));
          return true;
        });
      }
      // Nothing will report on this task any more: take it off the reconciler's pending list.
      await deps.tasks.complete(task, 'CANCELLED/compensation');
    }
    if (task.status === 'PENDING' && task.commandId) {
      const commandId = task.commandId;
      await attempt('CANCEL_COMMAND', commandId, async () => {
        // A command that already ended is command-completed's to close (its event may be in flight).
        const { Commands } = await deps.ssm.send(new ListCommandsCommand({ CommandId: commandId }));
        if (!NOT_ENDED_STATUSES.has(Commands?.[0]?.Status ?? '')) return false;
        await deps.ssm.send(new CancelCommandCommand({ CommandId: commandId }));
        await deps.tasks.complete(task, 'CANCELLED/compensation');
        return true;
      });
    }
  }

  // Traffic first: blue must serve 100 % again before anything green is removed.
  for (const change of await deps.audit.resourcesOf(runId, 'LISTENER_CHANGE')) {
    const detail = change.detail as { listenerArn: string; previousActions: Action[] };
    // Only a missing listener is "gone"; a missing blue target group is a failed restore.
    await attempt(
      'RESTORE_LISTENER',
      detail.listenerArn,
      () => restoreListener(deps.elbv2, detail.listenerArn, detail.previousActions),
      /^ListenerNotFound/,
    );
  }

  // The subscriptions this run added. One it replaced belongs to an earlier release (the live one):
  // it stays. Log groups stay too: they may already hold the app's logs.
  for (const subscription of await deps.audit.resourcesOf(runId, 'LOG_SUBSCRIPTION')) {
    const detail = subscription.detail as unknown as LogSubscriptionDetail;
    if (detail.replaced) continue;
    await attempt('DELETE_SUBSCRIPTION_FILTER', subscription.resourceId, () =>
      deps.logs.send(
        new DeleteSubscriptionFilterCommand({
          logGroupName: detail.logGroupName,
          filterName: detail.filterName,
        }),
      ),
    );
  }

  await restoreLatestAmiParameters(runId, deps, attempt);
  await removeRunImages(runId, deps, attempt);

  const output: CompensateOutput = {
    status: failed.length ? 'INCOMPLETE' : 'COMPLETE',
    undone,
    failed,
    needsStackDestroy,
  };
  if (failed.length) logger.error('compensation incomplete', { runId, failed });
  else logger.info('compensation complete', { runId, undone, needsStackDestroy });
  return output;
};

/** How many attempts the SDK made for a call that failed (its retry middleware counts them). */
const sdkAttempts = (err: unknown): number => {
  const attempts = (err as { $metadata?: { attempts?: unknown } } | undefined)?.$metadata?.attempts;
  return typeof attempts === 'number' ? attempts : 1;
};

/** Runs one undo step and records it; see `compensate`. */
export type UndoStep = (
  action: string,
  resource: string,
  fn: () => Promise<unknown>,
  gone?: RegExp,
) => Promise<void>;

/** Another region a run may have copied its AMI to: that region's clients and stage key. */
export interface ImagePlace {
  region: string;
  ec2: EC2Client;
  kms: KMSClient;
  /** Only where parameters are put back (compensation); decommission leaves them alone. */
  ssm?: SSMClient;
  kmsKeyArn: string;
}

/** The stage's distribution regions, each with its clients (from STAGE_CONFIG, in the handlers). */
export const distributionPlaces = (
  regions: Record<string, { kmsKeyArn: string }>,
  clientsIn: (region: string) => Omit<ImagePlace, 'region' | 'kmsKeyArn'>,
): ImagePlace[] =>
  Object.entries(regions).map(([region, { kmsKeyArn }]) => ({ region, kmsKeyArn, ...clientsIn(region) }));

/** Which place a recorded resource is in: its `detail.region` when that is another region, else home. */
const inPlace = (elsewhere: readonly ImagePlace[], place: string | null) => (r: ResourceRecord) => {
  const region = typeof r.detail?.region === 'string' ? r.detail.region : undefined;
  const other = elsewhere.some((p) => p.region === region) ? (region as string) : null;
  return other === place;
};

/**
 * What a run baked and shared, removed, in the stage's region and in every distribution region:
 * its KMS grants revoked, its AMIs (found by the run tag and in the audit inventory) deregistered —
 * which ends their launch permissions — and their snapshots deleted. Every distribution region is
 * searched by tag, not only those the inventory names, so a copy whose worker died before recording
 * it is not missed. Used by compensation and by the decommission of a replaced release.
 */
export const removeRunImages = async (
  runId: string,
  deps: Pick<CompensateDeps, 'ec2' | 'kms' | 'audit' | 'kmsKeyArn' | 'elsewhere'>,
  attempt: UndoStep,
): Promise<void> => {
  const elsewhere = deps.elsewhere ?? [];
  const [grantRecords, amiRecords, snapshotRecords] = await Promise.all([
    deps.audit.resourcesOf(runId, 'KMS_GRANT'),
    deps.audit.resourcesOf(runId, 'AMI'),
    deps.audit.resourcesOf(runId, 'SNAPSHOT'),
  ]);
  const places = [
    { region: null, ec2: deps.ec2, kms: deps.kms, kmsKeyArn: deps.kmsKeyArn },
    ...elsewhere.map((p) => ({ ...p, region: p.region as string | null })),
  ];
  for (const place of places) {
    const here = inPlace(elsewhere, place.region);
    // The undo steps of another region name it, so the audit trail says where each copy was.
    const where = (id: string) => (place.region ? `${place.region}/${id}` : id);
    const grants = new Set(grantRecords.filter(here).map((g) => g.resourceId));
    // A worker that died between CreateGrant and recording it left a grant the inventory lacks; the
    // key's grants carry the run in their name. (ListGrants is eventually consistent: a grant made
    // seconds ago may not be listed yet.) A listing that fails is one failed step, recorded like any
    // other, not the end of the clean-up: `false` records nothing when it succeeds.
    const name = launchGrantName(runId);
    await attempt('LIST_GRANTS', place.kmsKeyArn, async () => {
      const pages = paginateListGrants({ client: place.kms, pageSize: 100 }, { KeyId: place.kmsKeyArn });
      for await (const page of pages) {
        for (const grant of page.Grants ?? [])
          if (grant.Name === name && grant.GrantId) grants.add(grant.GrantId);
      }
      return false;
    });
    for (const grantId of grants) {
      await attempt('REVOKE_GRANT', where(grantId), () =>
        place.kms.send(new RevokeGrantCommand({ KeyId: place.kmsKeyArn, GrantId: grantId })),
      );
    }

    const recordedAmis = amiRecords.filter(here).map((r) => r.resourceId);
    const { Images = [] } = await place.ec2.send(
      new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: RUN_TAG, Values: [runId] }] }),
    );
    const amis = new Set([...recordedAmis, ...Images.flatMap((i) => (i.ImageId ? [i.ImageId] : []))]);
    const snapshots = new Set<string>();
    for (const amiId of amis) {
      const { Images: found = [] } = await place.ec2
        .send(new DescribeImagesCommand({ ImageIds: [amiId] }))
        .catch((err: unknown) => (GONE.test(errorName(err)) ? { Images: [] } : Promise.reject(err)));
      for (const image of found) {
        // Only what this run made: a bake result naming another app's AMI must not get it removed
        // (Distribute refuses such an image; the inventory may still hold its id).
        if (madeByRun(image) !== runId) {
          logger.warn('not deregistering an image this run did not make', { runId, amiId });
          continue;
        }
        for (const snapshotId of snapshotsOf(image)) snapshots.add(snapshotId);
        await attempt('DEREGISTER_IMAGE', where(amiId), () =>
          place.ec2.send(new DeregisterImageCommand({ ImageId: amiId })),
        );
      }
    }

    for (const snapshot of snapshotRecords.filter(here)) snapshots.add(snapshot.resourceId);
    const { Snapshots = [] } = await place.ec2.send(
      new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: [{ Name: RUN_TAG, Values: [runId] }] }),
    );
    for (const s of Snapshots) if (s.SnapshotId) snapshots.add(s.SnapshotId);
    for (const snapshotId of snapshots) {
      await attempt('DELETE_SNAPSHOT', where(snapshotId), () =>
        place.ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId })),
      );
    }
  }
};

/**
 * Puts back what `/ami-pipeline/<stage>/<appId>/latest-ami` said before the run published its AMI
 * (or deletes a parameter the run created), in each region — unless it no longer names the run's
 * AMI, which means nothing was written or someone has published since.
 */
export const restoreLatestAmiParameters = async (
  runId: string,
  deps: Pick<CompensateDeps, 'ssm' | 'audit' | 'elsewhere'>,
  attempt: UndoStep,
): Promise<void> => {
  for (const record of await deps.audit.resourcesOf(runId, 'LATEST_AMI_PARAMETER')) {
    const detail = record.detail as unknown as LatestAmiDetail;
    // A distribution region's client, else the stage's region's. (A region since removed from the
    // stage config is then looked up at home, where the parameter does not name this AMI: nothing
    // is written.)
    const ssm = (deps.elsewhere ?? []).find((p) => p.region === detail.region)?.ssm ?? deps.ssm;
    await attempt('RESTORE_PARAMETER', record.resourceId, async () => {
      const { Parameter } = await ssm
        .send(new GetParameterCommand({ Name: detail.name }))
        .catch((err: unknown) =>
          errorName(err) === 'ParameterNotFound' ? { Parameter: undefined } : Promise.reject(err),
        );
      // As the run left it: its AMI, or (a region it withdrew from) no parameter at all. Or already
      // holding the previous value: an earlier attempt put it back but not, perhaps, its policy.
      // Anything else was written since, and stays.
      const asRunLeft = detail.amiId === null ? Parameter === undefined : Parameter?.Value === detail.amiId;
      const valueBack = detail.previous !== null && Parameter?.Value === detail.previous.value;
      if (!asRunLeft && !valueBack) return false;
      if (detail.previous) {
        if (!valueBack) {
          await ssm.send(
            new PutParameterCommand({
              Name: detail.name,
              Value: detail.previous.value,
              Type: 'String',
              DataType: 'aws:ec2:image',
              Tier: 'Advanced',
              Overwrite: true,
            }),
          );
        }
        // Who may read it goes back too (the run may have added or dropped accounts); idempotent.
        if (detail.arn) await setConsumersPolicy(ssm, detail.arn, detail.previousPolicy ?? null);
      } else {
        await ssm.send(new DeleteParameterCommand({ Name: detail.name }));
      }
      return true;
    });
  }
};
