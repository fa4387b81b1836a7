import type { Context } from 'aws-lambda';
import * as z from 'zod';
import { dynamodb } from '../../shared/clients/dynamodb';
import { requireEnv, requirePositiveIntEnv } from '../../shared/env';
import { acquireLock, type LockDeps } from '../../shared/lock';
import { withLogContext } from '../../shared/logger';
import { parseTaskInput } from '../../shared/task-input';
import { APP_ID_PATTERN } from '../../shared/trigger/message';

const inputSchema = z.object({
  appId: z.string().regex(APP_ID_PATTERN),
  environment: z.string().min(1),
  runId: z.string().min(1),
  executionArn: z.string().startsWith('arn:'),
});

const defaultDeps: LockDeps = {
  db: dynamodb,
  tableName: requireEnv('COORDINATION_TABLE'),
  ttlSeconds: requirePositiveIntEnv('LOCK_TTL_SECONDS'),
  now: () => new Date(),
};

export const run = async (event: unknown, deps: LockDeps = defaultDeps) =>
  acquireLock(parseTaskInput(inputSchema, event), deps);

export const handler = async (event: unknown, context: Context) => {
  const input = parseTaskInput(inputSchema, event);
  return withLogContext(context, input, () => acquireLock(input, defaultDeps));
};
