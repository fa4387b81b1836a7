import * as z from 'zod';

/**
 * The outcome topic's messages (statemachines/ami-pipeline.asl.yml BuildSuccessNotification,
 * BuildFailureNotification, NotifyLiveButNotRecorded, NotifySuccessNotRecorded; decommission.asl.yml
 * NotifyDecommissionFailed; the approval worker's APPROVAL_REQUESTED). Documented in docs/notifications.md; the pipeline tests check every
 * message the state machines publish against these schemas. Consumers: match `status`, ignore
 * fields they do not know (new optional fields are not a new schemaVersion).
 *
 * Every message carries the SNS message attributes `status`, `appId`, `environment` (and, for runs,
 * `buildId`; for failures `compensation`), so a subscription's filter policy can select its own.
 */
const common = {
  schemaVersion: z.literal(1),
  runId: z.string().regex(/^[a-f0-9]{20}$/),
  appId: z.string().min(1),
  environment: z.string().min(1),
};

const run = {
  ...common,
  version: z.string().min(1),
  buildId: z.string().min(1),
  requestedBy: z.string().min(1),
  executionArn: z.string().startsWith('arn:'),
  startedAt: z.iso.datetime({ offset: true }),
  finishedAt: z.iso.datetime({ offset: true }),
};

const AMI_ID = z.string().regex(/^ami-[a-f0-9]{8,17}$/);

/** The release is live: traffic is on the new stack. */
export const succeededSchema = z.object({
  ...run,
  status: z.literal('SUCCEEDED'),
  amiId: AMI_ID,
  albDns: z.string().min(1),
  runConfigParameter: z.string().startsWith('/ami-pipeline/'),
});

/** The run failed and what it made was undone (`compensation.status` says how completely). */
export const failedSchema = z.object({
  ...run,
  status: z.literal('FAILED'),
  failedStage: z.string().min(1),
  error: z.string().min(1),
  cause: z.string(),
  compensation: z.looseObject({ status: z.enum(['COMPLETE', 'INCOMPLETE', 'FAILED']) }),
  /** null; or why the run item could not be marked FAILED (the audit table still shows it RUNNING). */
  auditFailure: z.object({ Error: z.string(), Cause: z.string() }).nullable(),
});

/**
 * The release is live (traffic is on it, nothing was undone) but recording it failed afterwards:
 * treat as deployed, and have the platform team look at the run (the execution fails loudly too).
 */
export const liveWithErrorsSchema = z.object({
  ...run,
  status: z.literal('LIVE_WITH_ERRORS'),
  amiId: AMI_ID,
  albDns: z.string().min(1),
  failedStage: z.enum(['RecordRelease', 'RecordSuccess']),
  error: z.string().min(1),
  cause: z.string(),
});

/** A replaced release could not be decommissioned (its stack or AMI may still exist). */
export const decommissionFailedSchema = z.object({
  ...common,
  status: z.literal('DECOMMISSION_FAILED'),
  replacedBy: z.string().regex(/^[a-f0-9]{20}$/),
  error: z.string().min(1),
  cause: z.string(),
});

/**
 * A run waits for approval (shared/approval/request.ts, published by the approval worker, not the
 * state machine): what an approver needs to decide, and the exact commands to answer with. The
 * task token is never part of it.
 */
export const approvalRequestedSchema = z.strictObject({
  ...common,
  status: z.literal('APPROVAL_REQUESTED'),
  version: z.string().min(1),
  buildId: z.string().min(1),
  requestedBy: z.string().min(1),
  executionArn: z.string().startsWith('arn:'),
  amiId: AMI_ID,
  inspec: z.strictObject({
    passed: z.number().int().min(0),
    failed: z.number().int().min(0),
    skipped: z.number().int().min(0),
  }),
  /** The InSpec report, `s3://<reports bucket>/<key>`. */
  report: z.string().startsWith('s3://'),
  requestedAt: z.iso.datetime({ offset: true }),
  /** When the run stops waiting (AwaitApproval's timeout) and fails with States.Timeout. */
  expiresAt: z.iso.datetime({ offset: true }),
  approveCommand: z.string().min(1),
  rejectCommand: z.string().min(1),
});

export const outcomeNotificationSchema = z.discriminatedUnion('status', [
  succeededSchema,
  failedSchema,
  liveWithErrorsSchema,
  decommissionFailedSchema,
  approvalRequestedSchema,
]);

export type OutcomeNotification = z.infer<typeof outcomeNotificationSchema>;
