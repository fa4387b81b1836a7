import { ApprovalRejectedError } from '../errors';

/** A person's decision on a run's approval. */
export interface Decision {
  /** The caller's ARN as AWS authenticated it (an assumed-role session of the approver role). */
  principal: string;
  at: string;
  reason?: string;
}

/** What AwaitApproval's SendTaskSuccess carries on (`$.stages.approval`). */
export const successOutput = (decision: Decision) => ({
  approvedBy: decision.principal,
  approvedAt: decision.at,
  reason: decision.reason ?? null,
});

/** The error name AwaitApproval fails with when the release is rejected. */
export const APPROVAL_REJECTED = new ApprovalRejectedError('').name;

/** SendTaskFailure's cause: who rejected the release and why (the run's errorCause in the audit table). */
export const rejectionCause = (decision: Decision): string =>
  `rejected by ${decision.principal}: ${decision.reason ?? '(no reason given)'}`;
