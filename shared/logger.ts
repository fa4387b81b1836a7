import { Logger } from '@aws-lambda-powertools/logger';
import type { Context } from 'aws-lambda';
import { forStateMachine } from './errors';

/** One logger for every worker; POWERTOOLS_LOG_LEVEL and POWERTOOLS_SERVICE_NAME come from the function's env. */
export const logger = new Logger({ serviceName: 'ami-pipeline' });

/** Identifiers every log line of a run carries, so one run can be followed across workers. */
export interface RunLogKeys {
  runId?: string | undefined;
  appId?: string | undefined;
  executionArn?: string | undefined;
}

/**
 * Every worker's entry point. Runs `fn` with the Lambda context and the run's identifiers on every
 * log line, and clears them afterwards so a warm container never leaks one run's keys into the next
 * invocation. A throttle, 5xx or timeout the SDK gave up on leaves as AwsTransientError, the one
 * name the state machine's Retry lists for every service (see `forStateMachine`).
 */
export const withLogContext = async <T>(
  context: Context | undefined,
  keys: RunLogKeys,
  fn: () => Promise<T>,
): Promise<T> => {
  if (context) logger.addContext(context);
  logger.appendKeys({ ...keys });
  try {
    return await fn();
  } catch (err) {
    throw forStateMachine(err);
  } finally {
    logger.resetKeys();
  }
};
