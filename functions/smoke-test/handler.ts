import type { Context } from 'aws-lambda';
import { ssm } from '../../shared/clients/ssm';
import { stageConfigFromEnv } from '../../shared/config/stage';
import { withLogContext } from '../../shared/logger';
import { smokeInputSchema, smokeTest, type SmokeDeps } from '../../shared/release/smoke';
import { parseTaskInput } from '../../shared/task-input';

const { release } = stageConfigFromEnv();

const defaultDeps: SmokeDeps = {
  ssm,
  fetch: globalThis.fetch,
  attempts: release.smokeTestAttempts,
  baseDelayMs: release.smokeTestFirstDelayMs,
  timeoutMs: 5000,
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export const run = async (event: unknown, deps: SmokeDeps = defaultDeps) =>
  smokeTest(parseTaskInput(smokeInputSchema, event), deps);

export const handler = async (event: unknown, context: Context) => {
  const input = parseTaskInput(smokeInputSchema, event);
  return withLogContext(context, input.run, () => smokeTest(input, defaultDeps));
};
