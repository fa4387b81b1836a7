import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Context } from 'aws-lambda';
import { REPO_ROOT, type FunctionDefinition } from './template';

type Handler = (event: unknown, context: Context) => Promise<unknown>;

/**
 * How Step Functions and Lambda surface a function error: the error name is the thrown error's
 * `name` (errorType) and the cause is the JSON Lambda reports.
 */
export class LambdaFunctionError extends Error {
  constructor(errorType: string, errorMessage: string, stack: string | undefined) {
    super(
      JSON.stringify({
        errorType,
        errorMessage,
        stackTrace: (stack ?? '')
          .split('\n')
          .slice(1, 6)
          .map((l) => l.trim()),
      }),
    );
    this.name = errorType;
  }
}

/**
 * What runs inside one invocation: who invoked the function (a state name, an event source), and
 * a way to kill it. The fault injector reads it to name the calls a handler makes and to crash a
 * handler at a chosen call.
 */
export interface InvocationScope {
  functionKey: string;
  /** The Task state that invoked it, or the event source (`commandCompleted:bake`); default the key. */
  caller: string;
  /** Ends the invocation now with `error`, as a crash would: nothing after this point runs. */
  kill: (error: LambdaFunctionError) => void;
}

export const invocationScope = new AsyncLocalStorage<InvocationScope>();

export interface Invocation {
  functionKey: string;
  payload: unknown;
  startedAt: number;
  durationMs: number;
  error?: string;
}

/** Runs the real handlers the way Lambda would: JSON in, JSON out, a context, a timeout. */
export class LambdaRuntime {
  private readonly handlers = new Map<string, { def: FunctionDefinition; handler: Handler }>();
  readonly invocations: Invocation[] = [];
  /** Invocations running now (crashed ones end when they are killed). */
  inFlight = 0;

  /** Imports every handler module; call after the environment is set (handlers read it at load). */
  async load(functions: FunctionDefinition[], arnOf: (key: string) => string): Promise<void> {
    for (const def of functions) {
      // `require`, not `import()`: handlers must share the harness's CommonJS SDK classes (whose
      // prototypes the client mocks patch) under jest, tsx and the CLI's tsx/cjs hook alike.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const mod = require(path.join(REPO_ROOT, def.modulePath)) as Record<string, unknown>;
      const handler = mod[def.exportName];
      if (typeof handler !== 'function')
        throw new Error(`${def.modulePath} does not export ${def.exportName}`);
      const entry = { def, handler: handler as Handler };
      this.handlers.set(def.key, entry);
      this.handlers.set(arnOf(def.key), entry);
    }
  }

  definition(keyOrArn: string): FunctionDefinition {
    return this.entry(keyOrArn).def;
  }

  /**
   * `requestId`: Lambda keeps an async invocation's request id across its retries; pass the first
   * attempt's to a retry (omitted: a new invocation).
   */
  async invoke(
    keyOrArn: string,
    payload: unknown,
    options: { caller?: string; requestId?: string } = {},
  ): Promise<unknown> {
    const { def, handler } = this.entry(keyOrArn);
    const event: unknown = JSON.parse(JSON.stringify(payload ?? null));
    const startedAt = Date.now();
    const requestId = options.requestId ?? randomUUID();
    const deadline = startedAt + def.timeoutSeconds * 1000;
    const context = {
      functionName: def.key,
      functionVersion: '$LATEST',
      invokedFunctionArn: keyOrArn,
      memoryLimitInMB: '256',
      awsRequestId: requestId,
      logGroupName: `/aws/lambda/${def.key}`,
      logStreamName: 'local',
      callbackWaitsForEmptyEventLoop: true,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
      done: () => undefined,
      fail: () => undefined,
      succeed: () => undefined,
    } satisfies Context;
    let timer: NodeJS.Timeout | undefined;
    let kill!: (error: LambdaFunctionError) => void;
    const killed = new Promise<never>((_, reject) => (kill = reject));
    const scope: InvocationScope = { functionKey: def.key, caller: options.caller ?? def.key, kill };
    this.inFlight++;
    try {
      const result = await Promise.race([
        invocationScope.run(scope, () => handler(event, context)),
        killed,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new LambdaFunctionError(
                  'Sandbox.Timedout',
                  `Task timed out after ${def.timeoutSeconds} seconds`,
                  undefined,
                ),
              ),
            def.timeoutSeconds * 1000,
          );
        }),
      ]);
      this.invocations.push({
        functionKey: def.key,
        payload: event,
        startedAt,
        durationMs: Date.now() - startedAt,
      });
      return JSON.parse(JSON.stringify(result ?? null)) as unknown;
    } catch (err) {
      const error =
        err instanceof LambdaFunctionError
          ? err
          : err instanceof Error
            ? new LambdaFunctionError(err.name, err.message, err.stack)
            : new LambdaFunctionError('Error', String(err), undefined);
      this.invocations.push({
        functionKey: def.key,
        payload: event,
        startedAt,
        durationMs: Date.now() - startedAt,
        error: error.name,
      });
      throw error;
    } finally {
      this.inFlight--;
      clearTimeout(timer);
    }
  }

  private entry(keyOrArn: string) {
    const entry = this.handlers.get(keyOrArn);
    if (!entry) throw new Error(`no local function for ${keyOrArn}`);
    return entry;
  }
}
