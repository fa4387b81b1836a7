import * as z from 'zod';
import { provisionResultSchema } from '../commands/contract';
import { SmokeTestFailedError } from '../errors';
import { logger } from '../logger';
import { loadRunConfig } from '../run-config';
import { runRefSchema } from '../run-ref';
import type { SSMClient } from '@aws-sdk/client-ssm';

export const smokeInputSchema = z.object({
  run: runRefSchema,
  runConfigParameter: z.string().startsWith('/ami-pipeline/'),
  provision: provisionResultSchema,
});

export type SmokeInput = z.infer<typeof smokeInputSchema>;

/** The header the release layer's listener rule routes to the green target group (config/terraform). */
export const GREEN_HEADER = 'X-Ami-Pipeline-Run';

export interface SmokeDeps {
  ssm: SSMClient;
  fetch: typeof fetch;
  attempts: number;
  /** First pause between attempts; it doubles each time. */
  baseDelayMs: number;
  timeoutMs: number;
  sleep: (ms: number) => Promise<void>;
}

export interface SmokeOutput {
  url: string;
  status: number;
  attempts: number;
}

/**
 * Smoke test: the app's health check through the ALB, against green only (the release's listener
 * rule matches the run header), expecting the app's status. Bounded attempts with exponential
 * backoff: new instances may still be registering; a green that never answers fails the release.
 */
export const smokeTest = async (input: SmokeInput, deps: SmokeDeps): Promise<SmokeOutput> => {
  const config = await loadRunConfig(deps.ssm, input.runConfigParameter);
  const { healthCheckPath, healthCheckExpectedStatus } = config.app.runtime;
  const url = `http://${input.provision.albDns}${healthCheckPath}`;
  let last = 'no attempt made';
  for (let attempt = 1; attempt <= deps.attempts; attempt++) {
    try {
      const response = await deps.fetch(url, {
        headers: { [GREEN_HEADER]: input.run.runId },
        redirect: 'manual',
        signal: AbortSignal.timeout(deps.timeoutMs),
      });
      await response.body?.cancel();
      if (response.status === healthCheckExpectedStatus) {
        logger.info('smoke test passed', { url, status: response.status, attempt });
        return { url, status: response.status, attempts: attempt };
      }
      last = `HTTP ${response.status}`;
    } catch (err) {
      last = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    }
    logger.warn('smoke test attempt failed', { url, attempt, last });
    if (attempt < deps.attempts) await deps.sleep(deps.baseDelayMs * 2 ** (attempt - 1));
  }
  throw new SmokeTestFailedError(
    `GET ${url} (green, ${GREEN_HEADER}: ${input.run.runId}) did not return ${healthCheckExpectedStatus} in ${deps.attempts} attempts; last: ${last}`,
  );
};
