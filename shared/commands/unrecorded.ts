import { paginateListCommands, type Command, type SSMClient } from '@aws-sdk/client-ssm';
import type { CommandStep } from './contract';
import type { TaskStore } from './tasks';

/** The Comment every command of a run's step carries (completion finds a task by it after a crash). */
export const commandComment = (runId: string, step: CommandStep, mode: string): string =>
  `ami-pipeline ${runId} ${step} ${mode}`;

/** How far SSM's clock may run behind the worker's when it looks for a command it may have started. */
const CLOCK_SKEW_MS = 5_000;

/**
 * Commands of a run's step (by their Comment), requested since its task was written, that no
 * coordination item records: what a SendCommand whose answer was lost (a timeout: SendCommand has
 * no idempotency token, so a retry would start a second build), or a worker that died between
 * SendCommand and recording the command id, left running unknown to the pipeline.
 */
export const findUnrecordedCommands = async (
  deps: { ssm: SSMClient; tasks: TaskStore },
  task: { runId: string; step: CommandStep; mode: string; createdAt: string },
): Promise<Command[]> => {
  const since = new Date(Date.parse(task.createdAt) - CLOCK_SKEW_MS).toISOString();
  const comment = commandComment(task.runId, task.step, task.mode);
  const found: Command[] = [];
  const pages = paginateListCommands(
    { client: deps.ssm },
    { Filters: [{ key: 'InvokedAfter', value: since }] },
  );
  for await (const page of pages) {
    for (const command of page?.Commands ?? []) {
      if (command.Comment !== comment || !command.CommandId) continue;
      if (await deps.tasks.isRecorded(command.CommandId)) continue;
      found.push(command);
    }
  }
  return found;
};
