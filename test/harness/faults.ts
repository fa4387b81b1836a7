import { StandardRetryStrategy } from '@smithy/core/retry';
import type {
  FinalizeRequestMiddleware,
  HandlerExecutionContext,
  RetryStrategyV2,
  StandardRetryBackoffStrategy,
} from '@smithy/types';
import { invocationScope, LambdaFunctionError } from './lambda';

/**
 * Fault injection for every AWS call the pipeline makes, at the layer that makes it:
 *
 * - `sdk`: a call a handler makes through one of the shared SDK clients (shared/clients/*), one
 *   attempt at a time: the fault sits below the SDK's retry middleware, so the SDK's own retry
 *   strategy (backoff with jitter) sees it exactly as it would see a throttled or failed request;
 * - `states`: a Task state's service integration run by the Step Functions stand-in
 *   (`lambda:invoke`, `dynamodb:*`, `sns:publish`), with the error names Step Functions reports;
 * - `event`: an EventBridge delivery to an event-driven worker (lost or duplicated).
 *
 * Every call is recorded under a site key (`caller → Service:Operation target`, e.g.
 * `Bake → SSM:SendCommand`, `commandCompleted:bake → DynamoDB:GetItem coordination COMMAND#`), so
 * a test can record what a clean run calls and then fault each of those calls in turn.
 */

/**
 * throttle, server (5xx) and timeout are AWS answers; crash kills the calling handler; hold makes
 * the call wait (then go through) until the plan's `until` settles, to force an interleaving;
 * drop/duplicate apply to event deliveries.
 */
export type FaultKind = 'throttle' | 'server' | 'timeout' | 'crash' | 'hold' | 'drop' | 'duplicate';

export type CallLayer = 'sdk' | 'states' | 'event';

export interface CallSite {
  layer: CallLayer;
  /** The Task state that invoked the handler (or made the integration call), or the event source. */
  caller: string;
  service: string;
  operation: string;
  /** Which table/item kind, bucket or function (empty when the operation says it all). */
  target: string;
}

export interface CallRecord extends CallSite {
  site: string;
  /** The fault injected into this attempt, if any. */
  fault?: FaultKind | undefined;
}

export interface FaultPlan {
  /** A site key as recorded (`siteKey`). */
  site: string;
  /**
   * One kind: every attempt fails (persistent) unless `attempts` bounds it. A list: the first
   * attempts fail with these kinds in order (transient), later attempts go through.
   */
  kind: FaultKind | readonly FaultKind[];
  /** With a single kind: how many attempts fail (omitted: every attempt). */
  attempts?: number;
  /**
   * `after`: the request reaches the service and is applied, then the answer is lost; `before`:
   * it never arrives. Defaults: timeout and crash `after` (the hard case for retries), throttle and
   * server `before`.
   */
  phase?: 'before' | 'after';
  /** For `hold`: what the call waits for. */
  until?: () => Promise<unknown>;
}

export const siteKey = (call: CallSite): string =>
  `${call.caller} → ${call.service}:${call.operation}${call.target ? ` ${call.target}` : ''}`;

interface ErrorShape {
  name: string;
  status: number;
  message: string;
  throttling?: boolean;
}

/** What each service answers when it throttles and when it fails (names the SDK deserializes). */
const SDK_ERRORS: Record<string, { throttle: ErrorShape; server: ErrorShape }> = {
  DynamoDB: {
    throttle: {
      name: 'ProvisionedThroughputExceededException',
      status: 400,
      message: 'The level of configured provisioned throughput for the table was exceeded.',
    },
    server: { name: 'InternalServerError', status: 500, message: 'Internal server error' },
  },
  S3: {
    throttle: {
      name: 'SlowDown',
      status: 503,
      message: 'Please reduce your request rate.',
      throttling: true,
    },
    server: {
      name: 'InternalError',
      status: 500,
      message: 'We encountered an internal error. Please try again.',
    },
  },
  EC2: {
    throttle: { name: 'RequestLimitExceeded', status: 503, message: 'Request limit exceeded.' },
    server: {
      name: 'Unavailable',
      status: 503,
      message: "The server is overloaded and can't handle the request.",
    },
  },
  KMS: {
    throttle: { name: 'ThrottlingException', status: 400, message: 'Rate exceeded' },
    server: { name: 'KMSInternalException', status: 500, message: 'An internal error occurred.' },
  },
  ElasticLoadBalancingV2: {
    throttle: { name: 'Throttling', status: 400, message: 'Rate exceeded' },
    server: { name: 'ServiceUnavailable', status: 503, message: 'Service Unavailable' },
  },
  CloudWatch: {
    throttle: { name: 'Throttling', status: 400, message: 'Rate exceeded' },
    server: { name: 'InternalServiceFault', status: 500, message: 'Internal service error' },
  },
  CloudWatchLogs: {
    throttle: { name: 'ThrottlingException', status: 400, message: 'Rate exceeded' },
    server: { name: 'ServiceUnavailableException', status: 500, message: 'Service unavailable' },
  },
  SNS: {
    throttle: { name: 'ThrottledException', status: 400, message: 'Rate exceeded' },
    server: { name: 'InternalErrorException', status: 500, message: 'Internal error' },
  },
};
const DEFAULT_SDK_ERRORS: { throttle: ErrorShape; server: ErrorShape } = {
  throttle: { name: 'ThrottlingException', status: 400, message: 'Rate exceeded' },
  server: { name: 'InternalServerError', status: 500, message: 'Internal server error' },
};

/**
 * Step Functions' names for integration errors (`Lambda.`, `DynamoDB.`, `SNS.` + the service's
 * exception). AWS documents the Lambda ones (Lambda.SdkClientException: the client gave up on an
 * invocation, which may have run); `DynamoDB.SdkClientException` and `SNS.SdkClientException` for a
 * timeout are by analogy, and the suite does not rely on them.
 */
const STATES_ERRORS: Record<string, Record<'throttle' | 'server' | 'timeout', string>> = {
  Lambda: {
    throttle: 'Lambda.TooManyRequestsException',
    server: 'Lambda.ServiceException',
    timeout: 'Lambda.SdkClientException',
  },
  DynamoDB: {
    throttle: 'DynamoDB.ProvisionedThroughputExceededException',
    server: 'DynamoDB.InternalServerErrorException',
    timeout: 'DynamoDB.SdkClientException',
  },
  SNS: {
    throttle: 'SNS.ThrottledException',
    server: 'SNS.InternalErrorException',
    timeout: 'SNS.SdkClientException',
  },
};

/** The SDK's retry delays (50 ms base, 1 s when throttled, up to 20 s) scaled down: same shape, no waiting. */
const RETRY_DELAY_SCALE = 1 / 1000;

const fastBackoff = (): StandardRetryBackoffStrategy => {
  let base = 50;
  return {
    setDelayBase: (delay) => {
      base = delay;
    },
    // The SDK's own formula (full jitter on an exponential base, capped at 20 s), scaled.
    computeNextBackoffDelay: (attempt) =>
      Math.floor(Math.random() * Math.min(base * 2 ** attempt, 20_000) * RETRY_DELAY_SCALE),
  };
};

/** A client the harness instruments: its middleware stack and resolved config. */
export interface InstrumentableClient {
  middlewareStack: { add: (middleware: never, options: never) => void; remove: (name: string) => boolean };
  config: { retryStrategy: () => Promise<unknown>; maxAttempts: () => Promise<number> };
}

export class FaultInjector {
  /** Every attempt of every call, in order. */
  readonly calls: CallRecord[] = [];
  /** Attempts failed on purpose, since the injector was made. */
  injected = 0;
  private plans: (FaultPlan & { hits: number })[] = [];
  private readonly strategies = new Map<InstrumentableClient, RetryStrategyV2>();

  /** Arms faults (one per site); whatever was armed before is disarmed. */
  arm(...plans: FaultPlan[]): void {
    this.plans = plans.map((plan) => ({ ...plan, hits: 0 }));
  }

  disarm(): void {
    this.plans = [];
  }

  /** How many attempts the armed faults have failed so far. */
  get hits(): number {
    return this.plans.reduce((sum, plan) => sum + plan.hits, 0);
  }

  /** The kind the armed fault for `site` injects into the next attempt, if any (and counts it). */
  private next(
    site: string,
    delivery: boolean,
  ): { kind: FaultKind; phase?: 'before' | 'after'; n: number; until?: () => Promise<unknown> } | undefined {
    const plan = this.plans.find((p) => p.site === site);
    if (!plan) return undefined;
    const kinds = typeof plan.kind === 'string' ? undefined : plan.kind;
    const limit = kinds ? kinds.length : (plan.attempts ?? Infinity);
    if (plan.hits >= limit) return undefined;
    const kind = kinds ? (kinds[plan.hits] as FaultKind) : (plan.kind as FaultKind);
    if ((kind === 'drop' || kind === 'duplicate') !== delivery) return undefined;
    plan.hits++;
    this.injected++;
    return {
      kind,
      n: plan.hits,
      ...(plan.phase ? { phase: plan.phase } : {}),
      ...(plan.until ? { until: plan.until } : {}),
    };
  }

  /** A position in the call log, to read the calls made after it. */
  mark(): number {
    return this.calls.length;
  }

  callsSince(mark: number): CallRecord[] {
    return this.calls.slice(mark);
  }

  /**
   * Gives every instrumented client a fresh retry strategy, as a new Lambda container would have:
   * the SDK's retry quota drains under failures, and one run's faults must not starve the next.
   */
  resetRetryState(): void {
    this.strategies.clear();
  }

  /**
   * Instruments a shared SDK client: faults below its retry middleware (one decision per attempt),
   * and the SDK's standard retry strategy with its delays scaled down (production settings untouched:
   * the strategy keeps the client's own maxAttempts and the SDK's backoff with full jitter).
   */
  instrument(client: InstrumentableClient, service: string): () => void {
    const middleware: FinalizeRequestMiddleware<object, object> =
      (next, context: HandlerExecutionContext) => async (args) =>
        this.around(
          {
            layer: 'sdk',
            caller: invocationScope.getStore()?.caller ?? 'harness',
            service,
            operation: (context.commandName ?? 'Unknown').replace(/Command$/, ''),
            target: targetOf(service, args.input as Record<string, unknown>),
          },
          () => next(args),
        );
    const options = {
      step: 'finalizeRequest',
      priority: 'low',
      name: 'harnessFaultInjection',
    } as const;
    client.middlewareStack.add(middleware as never, options as never);
    const config = client.config;
    const ownRetryStrategy = config.retryStrategy;
    config.retryStrategy = async () => {
      let strategy = this.strategies.get(client);
      if (!strategy) {
        strategy = new StandardRetryStrategy({
          maxAttempts: await config.maxAttempts(),
          backoff: fastBackoff(),
        });
        this.strategies.set(client, strategy);
      }
      return strategy;
    };
    return () => {
      config.retryStrategy = ownRetryStrategy;
      client.middlewareStack.remove('harnessFaultInjection');
    };
  }

  /** Runs one attempt of a call, failing it when an armed fault says so. */
  async around<T>(call: CallSite, send: () => Promise<T>): Promise<T> {
    const site = siteKey(call);
    const record: CallRecord = { ...call, site };
    this.calls.push(record);
    const fault = this.next(site, false);
    if (!fault) return send();
    record.fault = fault.kind;
    if (fault.kind === 'hold') {
      await fault.until?.();
      return send();
    }
    const phase = fault.phase ?? (fault.kind === 'timeout' || fault.kind === 'crash' ? 'after' : 'before');
    if (phase === 'after') await send();
    if (fault.kind === 'crash') {
      const scope = invocationScope.getStore();
      if (!scope) throw new Error(`cannot crash ${site}: it does not run inside a Lambda invocation`);
      scope.kill(
        new LambdaFunctionError(
          'Lambda.Unknown',
          `RequestId: local Error: Runtime exited with error: signal: killed (crashed at ${site})`,
          undefined,
        ),
      );
      // The handler never resumes: a crashed process runs nothing after this point.
      return new Promise<never>(() => undefined);
    }
    throw this.error(call, fault.kind as 'throttle' | 'server' | 'timeout', site, fault.n);
  }

  /** For an event delivery: whether an armed fault drops or duplicates it. */
  delivery(call: CallSite): 'drop' | 'duplicate' | undefined {
    const site = siteKey(call);
    const record: CallRecord = { ...call, site };
    this.calls.push(record);
    const fault = this.next(site, true);
    if (!fault) return undefined;
    record.fault = fault.kind;
    return fault.kind as 'drop' | 'duplicate';
  }

  private error(call: CallSite, kind: 'throttle' | 'server' | 'timeout', site: string, n: number): Error {
    const marker = `[fault injected: ${site} #${n}]`;
    if (call.layer !== 'sdk') {
      const name = STATES_ERRORS[call.service]?.[kind] ?? `${call.service}.SdkClientException`;
      return Object.assign(new Error(`${name} ${marker}`), { name });
    }
    if (kind === 'timeout') {
      // What node-http-handler throws: a request timeout, or the socket dropped under the request.
      return n % 2 === 1
        ? Object.assign(new Error(`Connection timed out after 3000 ms ${marker}`), { name: 'TimeoutError' })
        : Object.assign(new Error(`socket hang up ${marker}`), { code: 'ECONNRESET' });
    }
    // A distribution region's client is logged as `<service>@<region>`: the service's own errors.
    const shape = (SDK_ERRORS[call.service.split('@')[0] ?? ''] ?? DEFAULT_SDK_ERRORS)[kind];
    return Object.assign(new Error(`${shape.message} ${marker}`), {
      name: shape.name,
      $fault: shape.status >= 500 ? 'server' : 'client',
      $metadata: { httpStatusCode: shape.status, requestId: 'fault-injected' },
      ...(shape.throttling ? { $retryable: { throttling: true } } : {}),
    });
  }
}

const shortName = (name: unknown): string =>
  String(name ?? '')
    .replace(/^ami-pipeline-[a-z0-9]+-/, '')
    .replace(/-\d{12}-[a-z0-9-]+$/, '');

/** `APP#sample-app` → `APP#`: the kind of item, not which one. */
const keyKind = (value: unknown): string | undefined => {
  const text = (value as { S?: string } | undefined)?.S;
  return text?.includes('#') ? `${text.split('#')[0]}#` : undefined;
};

/** Which table and item kind (DynamoDB) or bucket (S3) a call touches; empty for other services. */
const targetOf = (service: string, input: Record<string, unknown> | undefined): string => {
  if (!input) return '';
  if (service === 'DynamoDB') {
    const item = (input.Item ?? input.Key) as Record<string, unknown> | undefined;
    const values = input.ExpressionAttributeValues as Record<string, unknown> | undefined;
    return [
      shortName(input.TableName),
      input.IndexName,
      keyKind(item?.pk) ?? keyKind(values?.[':pk']) ?? keyKind(values?.[':p']),
      keyKind(item?.sk) ?? keyKind(values?.[':prefix']) ?? keyKind(values?.[':sk']),
    ]
      .filter(Boolean)
      .join(' ');
  }
  if (service === 'S3') return shortName(input.Bucket);
  return '';
};
