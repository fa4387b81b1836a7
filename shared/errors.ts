import { isServerError, isThrottlingError, isTransientError } from '@smithy/core/retry';

/**
 * Domain errors. Every class sets a *literal* `name` ending in `Error`: the state machine matches
 * `ErrorEquals` on it, and esbuild's minifier renames classes, so `this.constructor.name` would not do.
 */
export abstract class PipelineError extends Error {
  abstract override readonly name: string;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A required environment variable or configuration file is missing or invalid (fails at cold start). */
export class ConfigurationError extends PipelineError {
  override readonly name = 'ConfigurationError';
}

/** The app config does not parse, does not match its schema, or breaks platform rules. */
export class AppConfigInvalidError extends PipelineError {
  override readonly name = 'AppConfigInvalidError';

  constructor(
    readonly violations: readonly string[],
    options?: { cause?: unknown },
  ) {
    super(`app config rejected (${violations.length} violation(s)): ${violations.join('; ')}`, options);
  }
}

/** The app config named by the trigger message could not be read. */
export class AppConfigNotFoundError extends PipelineError {
  override readonly name = 'AppConfigNotFoundError';
}

/** The merged run config is larger than an advanced-tier SSM parameter can hold. */
export class RunConfigTooLargeError extends PipelineError {
  override readonly name = 'RunConfigTooLargeError';
}

/** Another execution holds the app+environment lock; the state machine retries, then gives up. */
export class LockHeldError extends PipelineError {
  override readonly name = 'LockHeldError';
}

/** Another delivery of the same build holds its claim and has not started the execution yet (Lambda retries). */
export class StartInProgressError extends PipelineError {
  override readonly name = 'StartInProgressError';
}

/**
 * A token stage sent its command but could not record it, and cancelled it. Never retried by the
 * state machine (a retry would start the command again over the cancelled one): the run compensates.
 */
export class CommandNotRecordedError extends PipelineError {
  override readonly name = 'CommandNotRecordedError';
}

/**
 * A token stage cannot tell whether its command was started (SendCommand timed out or failed with a
 * 5xx and no command was found; or an earlier attempt left one unrecorded). Never retried by the
 * state machine: the run compensates, which cancels the command if it exists.
 */
export class CommandOutcomeUnknownError extends PipelineError {
  override readonly name = 'CommandOutcomeUnknownError';
}

/** An audit write conflicts with what the table already holds (append-only guard). */
export class AuditConflictError extends PipelineError {
  override readonly name = 'AuditConflictError';
}

/** The handler's input does not match its contract (a state-machine wiring bug, not user input). */
export class InvalidTaskInputError extends PipelineError {
  override readonly name = 'InvalidTaskInputError';
}

/** Narrows an unknown thrown value to something with a name and message. */
export const errorName = (err: unknown): string =>
  err instanceof Error
    ? err.name
    : typeof err === 'object' && err && 'name' in err
      ? String(err.name)
      : 'Error';

export const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** The bake command failed, timed out, was cancelled, produced no AMI or an invalid result. */
export class BakeFailedError extends PipelineError {
  override readonly name = 'BakeFailedError';
}

/** The provision command (terraform) failed or produced an invalid result. */
export class ProvisionFailedError extends PipelineError {
  override readonly name = 'ProvisionFailedError';
}

/** The validate command (InSpec) failed, or failed controls exceeded the app's limit. */
export class ValidationFailedError extends PipelineError {
  override readonly name = 'ValidationFailedError';
}

/** Tagging, encrypting or sharing the AMI failed. */
export class DistributionFailedError extends PipelineError {
  override readonly name = 'DistributionFailedError';
}

/**
 * A cross-region copy is still pending when this attempt's wait ran out. The state retries a few
 * times (each retry finds the same copy by its client token and waits again), then fails the run.
 */
export class CopyPendingError extends PipelineError {
  override readonly name = 'CopyPendingError';
}

/** No builder instance is online for the stage's targets. */
export class NoBuilderAvailableError extends PipelineError {
  override readonly name = 'NoBuilderAvailableError';
}

/** A command event or lookup names no task the pipeline is waiting for. */
export class UnknownCommandError extends PipelineError {
  override readonly name = 'UnknownCommandError';
}

/** The green stack did not answer its health check through the ALB. */
export class SmokeTestFailedError extends PipelineError {
  override readonly name = 'SmokeTestFailedError';
}

/** Between traffic steps, green's targets were unhealthy or its 5xx rate exceeded the app's limit. */
export class CanaryCheckFailedError extends PipelineError {
  override readonly name = 'CanaryCheckFailedError';
}

/** An app log group could not be created, encrypted, retained or subscribed to the log delivery stream. */
export class LogExportFailedError extends PipelineError {
  override readonly name = 'LogExportFailedError';
}

/** The release went live (pointer moved) but recording it afterwards failed: never compensated. */
export class ReleaseLiveError extends PipelineError {
  override readonly name = 'ReleaseLiveError';
}

// ---- approval gate (shared/approval/): the first fails the AwaitApproval state, the others are
// answers to an approver's request (HTTP status in shared/approval/decide.ts) ---------------------

/** An approver rejected the release: sent with SendTaskFailure, so AwaitApproval fails and compensates. */
export class ApprovalRejectedError extends PipelineError {
  override readonly name = 'ApprovalRejectedError';
}

/** The decision request is malformed (body, method): HTTP 400. */
export class InvalidDecisionError extends PipelineError {
  override readonly name = 'InvalidDecisionError';
}

/** The caller is not a session of the stage's approver role: HTTP 403. */
export class NotAnApproverError extends PipelineError {
  override readonly name = 'NotAnApproverError';
}

/** No approval was ever requested for the run (or its item has expired away): HTTP 404. */
export class ApprovalNotFoundError extends PipelineError {
  override readonly name = 'ApprovalNotFoundError';
}

/** The run's approval was decided already: HTTP 409. */
export class ApprovalAlreadyDecidedError extends PipelineError {
  override readonly name = 'ApprovalAlreadyDecidedError';
}

/** The run no longer waits for a decision (its AwaitApproval timed out or the execution ended): HTTP 410. */
export class ApprovalExpiredError extends PipelineError {
  override readonly name = 'ApprovalExpiredError';
}

/**
 * AwaitApproval's token was answered with success, but the run's approval item does not show an
 * audited approval by a session of the approver role (VerifyApproval): someone else sent it.
 */
export class ApprovalNotVerifiedError extends PipelineError {
  override readonly name = 'ApprovalNotVerifiedError';
}

/**
 * An AWS call failed in a way worth trying again (a throttle, a 5xx, a timeout or a dropped
 * connection) after the SDK's own retries gave up. Workers throw this one name for every service, so
 * the state machine retries it with one `ErrorEquals` instead of each service's spelling
 * (RequestLimitExceeded, Throttling, SlowDown, KMSInternalException, …); the message keeps the
 * original name and the error keeps it as `cause`.
 */
export class AwsTransientError extends PipelineError {
  override readonly name = 'AwsTransientError';
}

/**
 * Names the SDK counts as throttling that mean a quota for the services this pipeline calls
 * (CloudWatch Logs: subscription filters per group; KMS: grants per key): waiting does not help.
 */
const QUOTA_ERRORS = new Set(['LimitExceededException']);

/**
 * Whether `err` is an AWS error the SDK classifies as throttling, transient or a server error
 * (`@smithy/core/retry`: the classification the SDK's own retry strategy uses). Domain errors
 * (PipelineError) never are: the domain chose their name and the state machine routes on it.
 */
export const isAwsTransient = (err: unknown): err is Error => {
  if (err instanceof PipelineError || !(err instanceof Error)) return false;
  if (QUOTA_ERRORS.has(err.name)) return false;
  // Only what an AWS call threw: the SDK's errors carry $metadata, a dropped connection a Node
  // `code`. A wrapper whose cause happens to be transient (the classifier follows `cause`) is not.
  const shape = err as { $metadata?: unknown; code?: unknown };
  if (shape.$metadata === undefined && typeof shape.code !== 'string') return false;
  const sdkError = err as Parameters<typeof isTransientError>[0];
  return isThrottlingError(sdkError) || isTransientError(sdkError) || isServerError(sdkError);
};

/** What a worker throws to the state machine: a transient AWS error as AwsTransientError, anything else as it is. */
export const forStateMachine = (err: unknown): unknown =>
  isAwsTransient(err) ? new AwsTransientError(`${err.name}: ${err.message}`, { cause: err }) : err;
