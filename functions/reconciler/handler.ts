import type { Context } from 'aws-lambda';
import type { CompletionDeps } from '../../shared/commands/complete';
import { reconcile } from '../../shared/commands/reconcile';
import { withLogContext } from '../../shared/logger';
import { completionDeps } from '../../shared/commands/completion-deps';

const defaultDeps = completionDeps();

/** Scheduled: heartbeats for running commands, completion of lost events, cancellation of orphans. */
export const run = async (_event: unknown, deps: CompletionDeps = defaultDeps) => reconcile(deps);

export const handler = async (event: unknown, context: Context) =>
  withLogContext(context, {}, () => run(event));
