import {
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { randomBytes } from 'node:crypto';
import {
  ExecutionAlreadyExists,
  ExecutionDoesNotExist,
  InvalidName,
  StateMachineDoesNotExist,
  TaskTimedOut,
  type SendTaskFailureCommandInput,
  type SendTaskHeartbeatCommandInput,
  type SendTaskSuccessCommandInput,
  type DescribeExecutionCommandInput,
  type DescribeExecutionCommandOutput,
  type StartExecutionCommandInput,
  type StartExecutionCommandOutput,
} from '@aws-sdk/client-sfn';
import { StateMachine, type RunOptions } from 'aws-local-stepfunctions';
import type { LambdaRuntime } from '../lambda';
import type { SnsSim } from './sns';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Definition = { States: Record<string, Record<string, Json>> } & Record<string, Json>;

export type ExecutionStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'ABORTED' | 'TIMED_OUT';

export interface ExecutionEvent {
  type: string;
  timestamp: number;
  state?: string | undefined;
  error?: string | undefined;
  cause?: string | undefined;
}

export interface ExecutionRecord {
  executionArn: string;
  name: string;
  input: string;
  status: ExecutionStatus;
  startDate: Date;
  stopDate?: Date;
  output?: string;
  error?: string;
  cause?: string;
  events: ExecutionEvent[];
  done: Promise<void>;
}

type TaskHandler = (input: Json, where: { executionArn: string; stateName: string }) => Promise<Json>;

/** Called before a Task state runs its resource; tests use it to hold a stage or inject a fault. */
export type TaskHook = (stateName: string, input: Json, execution: ExecutionRecord) => Promise<void> | void;

export interface StepFunctionsSimOptions {
  stateMachineArn: string;
  definition: Definition;
  lambda: LambdaRuntime;
  dynamodb: DynamoDBClient;
  sns: SnsSim;
  /** Milliseconds for every Retry pause (default 0: instant). Per-state values override it. */
  retryIntervalMs?: number;
  retryIntervalOverrides?: Record<string, number>;
  waitTimeOverrides?: Record<string, number>;
  beforeTask?: TaskHook;
  /** Sees every execution event as it happens (npm start prints progress with it). */
  onEvent?: (execution: ExecutionRecord, event: ExecutionEvent) => void;
  /**
   * Wraps each service-integration call a Task state makes (the fault injector's hook). `call`
   * throws what Step Functions would report (`DynamoDB.ConditionalCheckFailedException`, …).
   */
  intercept?: <T>(call: IntegrationCall, send: () => Promise<T>) => Promise<T>;
}

/** One service-integration call of a Task state. */
export interface IntegrationCall {
  state: string;
  service: 'Lambda' | 'DynamoDB' | 'SNS';
  operation: string;
  /** The function, or the table and item kind, or the topic. */
  target: string;
}

const DYNAMODB_COMMANDS = {
  putItem: PutItemCommand,
  updateItem: UpdateItemCommand,
  deleteItem: DeleteItemCommand,
  getItem: GetItemCommand,
} as const;

/** Step Functions' error naming for service integrations: `DynamoDB.ConditionalCheckFailedException`. */
class IntegrationError extends Error {
  constructor(service: string, err: unknown) {
    const name = err instanceof Error ? err.name : 'Error';
    super(err instanceof Error ? err.message : String(err));
    this.name = `${service}.${name}`;
  }
}

const stripMetadata = (output: object): Json => {
  const { $metadata: _ignored, ...rest } = output as Record<string, unknown>;
  return JSON.parse(JSON.stringify(rest)) as Json;
};

/**
 * Step Functions stand-in: StartExecution/DescribeExecution with the service's naming rules, each
 * execution run by aws-local-stepfunctions on the real definition. Every Task state is bound to a
 * local implementation of its resource: `lambda:invoke` runs the real handler, `dynamodb:*` calls
 * dynalite with the state's Parameters, `sns:publish` goes to the SNS stand-in. A Task whose
 * resource has no local implementation fails the harness at start, not silently at run time.
 */
/** A task token a `.waitForTaskToken` state is waiting on. */
interface PendingToken {
  executionArn: string;
  stateName: string;
  resolve: (output: Json) => void;
  reject: (error: Error) => void;
}

/** What SendTaskFailure reports, surfaced to Retry/Catch under its own error name. */
class TaskFailure extends Error {
  constructor(error: string, cause: string) {
    super(cause);
    this.name = error;
  }
}

export class StepFunctionsSim {
  private readonly executions = new Map<string, ExecutionRecord>();
  private readonly tokens = new Map<string, PendingToken>();
  /** Tokens whose worker has returned: the state now only waits for SendTask* (or its timeout). */
  private readonly waiting = new Set<string>();
  /** Heartbeats received per execution (tests and the cost report read it). */
  private readonly heartbeats = new Map<string, number>();
  private readonly machine: StateMachine;
  private readonly taskHandlers: Record<string, TaskHandler>;

  constructor(private readonly options: StepFunctionsSimOptions) {
    this.machine = new StateMachine(options.definition as never, {
      validationOptions: { checkArn: true, checkPaths: true },
    });
    this.taskHandlers = this.bindTasks(options.definition.States);
  }

  startExecution(input: StartExecutionCommandInput): StartExecutionCommandOutput {
    if (input.stateMachineArn !== this.options.stateMachineArn) {
      throw new StateMachineDoesNotExist({
        message: `state machine ${input.stateMachineArn} does not exist`,
        $metadata: {},
      });
    }
    const name = input.name ?? '';
    if (!/^[A-Za-z0-9_-]{1,80}$/.test(name)) {
      throw new InvalidName({ message: `invalid execution name ${name}`, $metadata: {} });
    }
    const executionArn = `${this.options.stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
    const existing = this.executions.get(executionArn);
    if (existing) {
      // The service's idempotency: same name and input while running returns the same execution.
      if (existing.status === 'RUNNING' && existing.input === (input.input ?? '{}')) {
        return { executionArn, startDate: existing.startDate, $metadata: {} };
      }
      throw new ExecutionAlreadyExists({ message: `execution ${name} already exists`, $metadata: {} });
    }
    const record = this.run(executionArn, name, input.input ?? '{}');
    return { executionArn, startDate: record.startDate, $metadata: {} };
  }

  describeExecution(input: DescribeExecutionCommandInput): DescribeExecutionCommandOutput {
    const record = this.executions.get(input.executionArn ?? '');
    if (!record)
      throw new ExecutionDoesNotExist({
        message: `execution ${input.executionArn} does not exist`,
        $metadata: {},
      });
    return {
      executionArn: record.executionArn,
      stateMachineArn: this.options.stateMachineArn,
      name: record.name,
      status: record.status,
      input: record.input,
      output: record.output,
      error: record.error,
      cause: record.cause,
      startDate: record.startDate,
      stopDate: record.stopDate,
      $metadata: {},
    };
  }

  sendTaskSuccess(input: SendTaskSuccessCommandInput) {
    const pending = this.token(input.taskToken);
    this.tokens.delete(input.taskToken as string);
    pending.resolve(JSON.parse(input.output ?? 'null') as Json);
    return { $metadata: {} };
  }

  sendTaskFailure(input: SendTaskFailureCommandInput) {
    const pending = this.token(input.taskToken);
    this.tokens.delete(input.taskToken as string);
    pending.reject(new TaskFailure(input.error ?? 'States.TaskFailed', input.cause ?? ''));
    return { $metadata: {} };
  }

  sendTaskHeartbeat(input: SendTaskHeartbeatCommandInput) {
    const { executionArn } = this.token(input.taskToken);
    this.heartbeats.set(executionArn, (this.heartbeats.get(executionArn) ?? 0) + 1);
    return { $metadata: {} };
  }

  heartbeatsOf(executionArn: string): number {
    return this.heartbeats.get(executionArn) ?? 0;
  }

  get stateMachineArn(): string {
    return this.options.stateMachineArn;
  }

  /** `arn:…:execution:<machine name>:` — every execution ARN of this machine starts with it. */
  get executionArnPrefix(): string {
    return `${this.options.stateMachineArn.replace(':stateMachine:', ':execution:')}:`;
  }

  holds(taskToken: string | undefined): boolean {
    return this.tokens.has(taskToken ?? '');
  }

  /** Whether an execution's running state is a token state whose worker has returned (nothing in flight). */
  waitingOnToken(executionArn: string): boolean {
    return [...this.waiting].some((token) => this.tokens.get(token)?.executionArn === executionArn);
  }

  /** Tokens still awaited (a test can check none is left dangling). */
  pendingTokens(): number {
    return this.tokens.size;
  }

  private token(taskToken: string | undefined): PendingToken {
    const pending = this.tokens.get(taskToken ?? '');
    // The service's answer for a token whose state has moved on (timed out, caught, execution ended).
    if (!pending) throw new TaskTimedOut({ message: 'Task Timed Out', $metadata: {} });
    return pending;
  }

  /** A token stops being accepted once its state is left, however that happened. */
  private expireTokens(executionArn: string, stateName?: string): void {
    for (const [token, pending] of this.tokens) {
      if (
        pending.executionArn === executionArn &&
        (stateName === undefined || pending.stateName === stateName)
      ) {
        this.tokens.delete(token);
        this.waiting.delete(token);
      }
    }
  }

  list(): ExecutionRecord[] {
    return [...this.executions.values()];
  }

  get(executionArn: string): ExecutionRecord {
    const record = this.executions.get(executionArn);
    if (!record) throw new Error(`no execution ${executionArn}`);
    return record;
  }

  /** Resolves when every execution started so far has ended. */
  async idle(): Promise<void> {
    while ([...this.executions.values()].some((e) => e.status === 'RUNNING')) {
      await Promise.all([...this.executions.values()].map((e) => e.done));
    }
  }

  private run(executionArn: string, name: string, input: string): ExecutionRecord {
    const startDate = new Date();
    const record: ExecutionRecord = {
      executionArn,
      name,
      input,
      status: 'RUNNING',
      startDate,
      events: [],
      done: Promise.resolve(),
    };
    this.executions.set(executionArn, record);
    const parsedInput = JSON.parse(input) as Json;
    const context = {
      Execution: {
        Id: executionArn,
        Name: name,
        Input: parsedInput,
        StartTime: startDate.toISOString(),
        RoleArn: 'local',
      },
      StateMachine: { Id: this.options.stateMachineArn, Name: this.options.stateMachineArn.split(':').pop() },
      // aws-local-stepfunctions has no per-state context; a getter gives the time the path is read,
      // which is when the state is entered.
      State: {
        get EnteredTime() {
          return new Date().toISOString();
        },
      },
      // No task tokens in the emulator: each read of $$.Task.Token issues a fresh one, which the
      // `.waitForTaskToken` override below registers and waits on.
      Task: {
        get Token() {
          return randomBytes(96).toString('base64url');
        },
      },
    };
    const retryIntervalOverrides: Record<string, number> = {};
    // Waits (a soak between traffic steps) take no real time here unless a test says otherwise.
    const waitTimeOverrides: Record<string, number> = {};
    for (const [stateName, state] of this.allStates(this.options.definition.States)) {
      retryIntervalOverrides[stateName] =
        this.options.retryIntervalOverrides?.[stateName] ?? this.options.retryIntervalMs ?? 0;
      if (state.Type === 'Wait')
        waitTimeOverrides[stateName] = this.options.waitTimeOverrides?.[stateName] ?? 0;
    }

    // In Step Functions a failed Map iteration fails the Map and no further iteration starts; the
    // emulator still runs the queued ones. A failed iteration therefore stops its Map's later tasks.
    const failedMaps = new Set<string>();
    const mapOf = new Map(
      this.allStates(this.options.definition.States).map(([name, , inMap]) => [name, inMap]),
    );
    // An error the state's Retry will retry does not end the iteration.
    const retried = new Map(
      this.allStates(this.options.definition.States).map(([name, state]) => [
        name,
        new Set(((state.Retry ?? []) as { ErrorEquals: string[] }[]).flatMap((r) => r.ErrorEquals)),
      ]),
    );
    const retries = (stateName: string, error: string) => {
      const names = retried.get(stateName);
      return !!names && (names.has(error) || names.has('States.ALL'));
    };
    const taskResourceLocalHandlers = Object.fromEntries(
      Object.entries(this.taskHandlers).map(([stateName, handler]) => [
        stateName,
        async (taskInput: Json) => {
          const inMap = mapOf.get(stateName);
          if (inMap && failedMaps.has(inMap))
            throw new TaskFailure('States.Runtime', `${inMap} has already failed`);
          await this.options.beforeTask?.(stateName, taskInput, record);
          try {
            return await handler(taskInput, { executionArn, stateName });
          } catch (err) {
            if (inMap && !retried.get(stateName)?.has((err as Error).name)) failedMaps.add(inMap);
            throw err;
          }
        },
      ]),
    );
    const options: RunOptions = {
      overrides: {
        taskResourceLocalHandlers: taskResourceLocalHandlers as never,
        retryIntervalOverrides,
        waitTimeOverrides,
      },
      context,
    };
    const execution = this.machine.run(parsedInput as never, options);
    const collect = (async () => {
      for await (const event of execution.eventLogs) {
        const e = event as unknown as {
          type: string;
          timestamp: number;
          state?: { name: string };
          Error?: string;
          Cause?: string;
        };
        const recorded: ExecutionEvent = {
          type: e.type,
          timestamp: e.timestamp,
          state: e.state?.name,
          error: e.Error,
          cause: e.Cause,
        };
        record.events.push(recorded);
        if (e.type === 'ExecutionFailed') {
          record.error = e.Error ?? 'States.Runtime';
          record.cause = e.Cause ?? '';
        }
        // Events arrive here after the fact: by the time an attempt's StateFailed is read, the Retry
        // may have started the next attempt, whose token must survive (the failed attempt dropped
        // its own token already).
        const retriedFailure = e.type === 'StateFailed' && retries(e.state?.name ?? '', e.Error ?? '');
        if (e.state && ['StateExited', 'StateFailed', 'StateCaught'].includes(e.type) && !retriedFailure)
          this.expireTokens(executionArn, e.state.name);
        this.options.onEvent?.(record, recorded);
      }
    })();
    record.done = (async () => {
      try {
        const output = await execution.result;
        record.output = JSON.stringify(output);
        record.status = 'SUCCEEDED';
      } catch (err) {
        record.status = 'FAILED';
        record.error ??=
          err instanceof Error && err.cause instanceof Error ? err.cause.name : 'States.Runtime';
      }
      await collect;
      this.expireTokens(executionArn);
      record.stopDate = new Date();
    })();
    return record;
  }

  /** Every state, Map and Parallel branches included (state names are unique machine-wide). */
  /** Every state with the Map state it runs in, if any (state names are unique machine-wide). */
  private allStates(
    states: Definition['States'],
    inMap?: string,
  ): [string, Record<string, Json>, string | undefined][] {
    return Object.entries(states).flatMap(([name, state]) => {
      const iterations = [
        ...(state.ItemProcessor ? [state.ItemProcessor] : []),
        ...(state.Iterator ? [state.Iterator] : []),
      ] as unknown as Definition[];
      const branches = ((state.Branches as Json[] | undefined) ?? []) as unknown as Definition[];
      return [
        [name, state, inMap] as [string, Record<string, Json>, string | undefined],
        ...iterations.flatMap((d) => this.allStates(d.States, name)),
        ...branches.flatMap((d) => this.allStates(d.States, inMap)),
      ];
    });
  }

  private bindTasks(states: Definition['States']): Record<string, TaskHandler> {
    const handlers: Record<string, TaskHandler> = {};
    for (const [stateName, state] of this.allStates(states)) {
      if (state.Type !== 'Task') continue;
      handlers[stateName] = this.taskHandler(stateName, String(state.Resource));
    }
    return handlers;
  }

  private taskHandler(stateName: string, resource: string): TaskHandler {
    const { lambda, dynamodb, sns } = this.options;
    const intercept = <T>(call: IntegrationCall, send: () => Promise<T>): Promise<T> =>
      this.options.intercept ? this.options.intercept(call, send) : send();
    if (resource === 'arn:aws:states:::lambda:invoke.waitForTaskToken') {
      return async (input, where) => {
        const params = input as {
          FunctionName: string;
          Payload: { taskToken?: string } & Record<string, Json>;
        };
        const token = params.Payload.taskToken;
        if (!token) throw new Error(`state ${stateName}: the payload carries no taskToken`);
        const answered = new Promise<Json>((resolve, reject) => {
          this.tokens.set(token, {
            executionArn: where.executionArn,
            stateName: where.stateName,
            resolve,
            reject,
          });
        });
        try {
          await intercept(
            {
              state: stateName,
              service: 'Lambda',
              operation: 'Invoke',
              target: lambda.definition(params.FunctionName).key,
            },
            () => lambda.invoke(params.FunctionName, params.Payload, { caller: stateName }),
          );
        } catch (err) {
          this.tokens.delete(token);
          throw err;
        }
        this.waiting.add(token);
        try {
          return await answered;
        } finally {
          this.waiting.delete(token);
        }
      };
    }
    if (resource === 'arn:aws:states:::lambda:invoke') {
      return async (input) => {
        const params = input as { FunctionName: string; Payload: Json };
        const payload = await intercept(
          {
            state: stateName,
            service: 'Lambda',
            operation: 'Invoke',
            target: lambda.definition(params.FunctionName).key,
          },
          () => lambda.invoke(params.FunctionName, params.Payload, { caller: stateName }),
        );
        return { Payload: payload as Json, StatusCode: 200, ExecutedVersion: '$LATEST' };
      };
    }
    const dynamo = /^arn:aws:states:::dynamodb:(putItem|updateItem|deleteItem|getItem)$/.exec(resource);
    if (dynamo?.[1]) {
      const Command = DYNAMODB_COMMANDS[dynamo[1] as keyof typeof DYNAMODB_COMMANDS] as new (
        input: never,
      ) => PutItemCommand;
      return async (input) => {
        const params = input as { TableName?: string; Key?: Record<string, { S?: string }> };
        const target = [
          String(params.TableName ?? '').replace(/^ami-pipeline-[a-z0-9]+-/, ''),
          ...['pk', 'sk'].map((k) => params.Key?.[k]?.S?.split('#')[0]).flatMap((p) => (p ? [`${p}#`] : [])),
        ].join(' ');
        return intercept(
          { state: stateName, service: 'DynamoDB', operation: dynamo[1] as string, target },
          async () => {
            try {
              return stripMetadata(await dynamodb.send(new Command(input as never)));
            } catch (err) {
              throw new IntegrationError('DynamoDB', err);
            }
          },
        );
      };
    }
    if (resource === 'arn:aws:states:::sns:publish') {
      return async (input) => {
        // Step Functions serializes an object `Message` to JSON. (The emulator's States.JsonToString
        // strips backslashes from its result, so the definition relies on this instead.)
        const params = input as { Message?: Json };
        const Message = typeof params.Message === 'string' ? params.Message : JSON.stringify(params.Message);
        const topic =
          String((input as { TopicArn?: string }).TopicArn ?? '')
            .split(':')
            .pop() ?? '';
        return intercept(
          {
            state: stateName,
            service: 'SNS',
            operation: 'publish',
            target: topic.replace(/^ami-pipeline-[a-z0-9]+-/, ''),
          },
          async () => {
            try {
              return sns.publish({ ...(input as object), Message } as never) as unknown as Json;
            } catch (err) {
              throw new IntegrationError('SNS', err);
            }
          },
        );
      };
    }
    throw new Error(`state ${stateName}: resource ${resource} has no local implementation in the harness`);
  }
}
