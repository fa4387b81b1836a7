import {
  DescribeExecutionCommand,
  ExecutionDoesNotExist,
  InvalidToken,
  SendTaskHeartbeatCommand,
  TaskDoesNotExist,
  TaskTimedOut,
} from '@aws-sdk/client-sfn';
import { CancelCommandCommand, ListCommandsCommand } from '@aws-sdk/client-ssm';
import { logger } from '../logger';
import { completeCommand, TERMINAL_STATUSES, type CompletionDeps } from './complete';
import { NOT_ENDED_STATUSES } from './contract';
import { findUnrecordedCommands } from './unrecorded';
import type { CommandTask } from './tasks';

export type ReconcileAction = 'HEARTBEAT' | 'COMPLETED' | 'CANCELLED' | 'WAITING';

export interface ReconcileReport {
  pending: number;
  actions: { runId: string; step: string; commandId?: string | undefined; action: ReconcileAction }[];
}

/**
 * The scheduled safety net for token stages. For each pending task: a command that already ended
 * is completed from SSM's own record (its EventBridge event was lost); a command whose execution is
 * no longer running, or whose token Step Functions no longer accepts, is cancelled (a state timeout
 * does not stop an SSM command); otherwise the task gets a heartbeat.
 */
export const reconcile = async (deps: CompletionDeps): Promise<ReconcileReport> => {
  const pending = await deps.tasks.listPending();
  const report: ReconcileReport = { pending: pending.length, actions: [] };
  for (const task of pending) {
    try {
      const action = await reconcileTask(task, deps);
      report.actions.push({ runId: task.runId, step: task.step, commandId: task.commandId, action });
    } catch (err) {
      // One bad task must not starve the others; it is retried on the next schedule.
      logger.error('reconciling a task failed', { runId: task.runId, step: task.step, error: err as Error });
    }
  }
  logger.info('reconciled pending commands', {
    pending: report.pending,
    actions: report.actions.map((a) => a.action),
  });
  return report;
};

const reconcileTask = async (task: CommandTask, deps: CompletionDeps): Promise<ReconcileAction> => {
  if (!task.commandId) {
    // SendCommand not (yet) recorded: while the state waits, completion finds the command by its Comment.
    if (await executionRunning(task, deps)) return 'WAITING';
    return closeUnrecorded(task, deps);
  }
  const { Commands } = await deps.ssm.send(new ListCommandsCommand({ CommandId: task.commandId }));
  const status = Commands?.[0]?.Status ?? 'Unknown';
  if (TERMINAL_STATUSES.has(status)) {
    await completeCommand(task.commandId, status, deps);
    return 'COMPLETED';
  }
  if (!(await executionRunning(task, deps))) return cancel(task, deps, 'execution no longer running');
  try {
    await deps.sfn.send(new SendTaskHeartbeatCommand({ taskToken: task.taskToken }));
    return 'HEARTBEAT';
  } catch (err) {
    if (err instanceof TaskTimedOut || err instanceof TaskDoesNotExist || err instanceof InvalidToken) {
      return cancel(task, deps, 'task no longer accepted (state timed out)');
    }
    throw err;
  }
};

const executionRunning = async (task: CommandTask, deps: CompletionDeps): Promise<boolean> => {
  try {
    const execution = await deps.sfn.send(new DescribeExecutionCommand({ executionArn: task.executionArn }));
    return execution.status === 'RUNNING';
  } catch (err) {
    if (err instanceof ExecutionDoesNotExist) return false;
    throw err;
  }
};

/**
 * A task whose execution ended with no command id on record: a worker died after SendCommand, or
 * SendCommand's outcome was unknown (CommandOutcomeUnknownError). A command its Comment finds is
 * cancelled, and the task closed, so nothing runs on unknown to the pipeline.
 */
const closeUnrecorded = async (task: CommandTask, deps: CompletionDeps): Promise<ReconcileAction> => {
  const found = await findUnrecordedCommands(deps, task);
  if (!(await deps.tasks.complete(task, 'CANCELLED/execution ended, no command recorded'))) return 'WAITING';
  for (const command of found) {
    const commandId = command.CommandId as string;
    if (!NOT_ENDED_STATUSES.has(command.Status ?? '')) continue;
    await deps.ssm.send(new CancelCommandCommand({ CommandId: commandId }));
    await deps.audit.recordEvent({
      runId: task.runId,
      type: 'COMMAND_CANCELLED_BY_RECONCILER',
      stage: task.step,
      at: deps.now().toISOString(),
      id: commandId,
      detail: { commandId, reason: 'execution ended, command never recorded' },
    });
    logger.warn('cancelled an unrecorded command of an ended execution', { runId: task.runId, commandId });
  }
  return 'CANCELLED';
};

const cancel = async (task: CommandTask, deps: CompletionDeps, why: string): Promise<ReconcileAction> => {
  // The task first, conditionally on the token read: a retried state may have adopted the command
  // meanwhile (a new token on the task), and then the command is no longer orphaned and must run on.
  if (await deps.tasks.complete(task, `CANCELLED/${why}`)) {
    try {
      await deps.ssm.send(new CancelCommandCommand({ CommandId: task.commandId }));
    } catch (err) {
      // Pending again, so the next scheduled run tries once more.
      await deps.tasks.reopen(task, task.taskToken);
      throw err;
    }
    await deps.audit.recordEvent({
      runId: task.runId,
      type: 'COMMAND_CANCELLED_BY_RECONCILER',
      stage: task.step,
      at: deps.now().toISOString(),
      id: task.commandId ?? 'none',
      detail: { commandId: task.commandId, reason: why },
    });
    logger.warn('cancelled an orphaned command', {
      runId: task.runId,
      step: task.step,
      commandId: task.commandId,
      why,
    });
  }
  return 'CANCELLED';
};
