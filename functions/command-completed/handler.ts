import type { Context, EventBridgeEvent } from 'aws-lambda';
import * as z from 'zod';
import { completeCommand, type CompletionDeps } from '../../shared/commands/complete';
import { completionDeps } from '../../shared/commands/completion-deps';
import { withLogContext } from '../../shared/logger';
import { parseTaskInput } from '../../shared/task-input';

const defaultDeps = completionDeps();

/** "EC2 Command Status-change Notification" (the EventBridge rule admits terminal statuses only). */
const eventSchema = z.object({
  'detail-type': z.literal('EC2 Command Status-change Notification'),
  detail: z.object({
    'command-id': z.string().min(1),
    status: z.string().min(1),
    'document-name': z.string(),
  }),
});

export const run = async (event: unknown, deps: CompletionDeps = defaultDeps) => {
  const { detail } = parseTaskInput(eventSchema, event);
  return completeCommand(detail['command-id'], detail.status, deps);
};

export const handler = async (event: EventBridgeEvent<string, unknown>, context: Context) =>
  withLogContext(context, {}, () => run(event));
