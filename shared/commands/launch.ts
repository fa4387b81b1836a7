import { randomInt } from 'node:crypto';
import {
  CancelCommandCommand,
  paginateDescribeInstanceInformation,
  ListCommandsCommand,
  SendCommandCommand,
  type Command,
  type SendCommandCommandInput,
  type SendCommandCommandOutput,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import type { FinalizeRequestMiddleware } from '@smithy/types';
import type { StageConfig } from '../config/stage';
import {
  CommandNotRecordedError,
  CommandOutcomeUnknownError,
  errorMessage,
  errorName,
  InvalidTaskInputError,
  NoBuilderAvailableError,
} from '../errors';
import { logger } from '../logger';
import {
  documentName,
  DOCUMENT_PARAMETERS,
  PARAMETER_PATTERNS,
  resultPrefix,
  type CommandStep,
  RUNNING_STATUSES,
} from './contract';
import type { TaskStore } from './tasks';
import { commandComment, findUnrecordedCommands } from './unrecorded';

export interface LaunchRequest {
  step: CommandStep;
  mode: string;
  /** Goes to the coordination table only — never to SSM, logs or outputs. */
  taskToken: string;
  run: { runId: string; appId: string; environment: string; executionArn: string };
  /** Document parameters other than the ones the launcher sets itself (resultPrefix, executionTimeout). */
  parameters: Record<string, string>;
  /** The state's TimeoutSeconds; the command gets less, so it ends and reports first. */
  stateTimeoutSeconds: number;
}

export interface LaunchDeps {
  ssm: SSMClient;
  tasks: TaskStore;
  stage: Pick<StageConfig, 'stage' | 'builder'>;
  artifactsBucket: string;
  commandLogGroup: string;
  /** How long coordination items outlive the command (DynamoDB TTL). */
  retentionSeconds: number;
  now: () => Date;
}

/** A command must end this long before its state times out (at most 10 minutes, at least 1 s). */
export const executionTimeoutFor = (stateTimeoutSeconds: number): number =>
  Math.max(1, stateTimeoutSeconds - Math.max(1, Math.min(600, Math.floor(stateTimeoutSeconds / 10))));

/**
 * The callback half of a token stage: store the token, start the stage's SSM document on a builder,
 * return. Completion arrives later through the command-completed worker (or the reconciler).
 * A retried state whose earlier attempt's command is still running adopts that command instead of
 * starting a second build.
 */
export const launchCommand = async (
  req: LaunchRequest,
  deps: LaunchDeps,
): Promise<{ commandId: string; instanceId: string; adopted: boolean }> => {
  const { run, step } = req;
  const executionTimeout = executionTimeoutFor(req.stateTimeoutSeconds);
  const parameters: Record<string, string> = {
    ...req.parameters,
    resultPrefix: resultPrefix(deps.stage.stage, run.appId, run.runId, step),
    executionTimeout: String(executionTimeout),
  };
  checkParameters(step, parameters);

  const existing = await deps.tasks.get(run.runId, step);
  if (existing?.commandId && existing.instanceId && existing.mode === req.mode) {
    const { Commands } = await deps.ssm.send(new ListCommandsCommand({ CommandId: existing.commandId }));
    const status = Commands?.[0]?.Status ?? '';
    if (
      existing.status === 'PENDING' &&
      RUNNING_STATUSES.has(status) &&
      (await deps.tasks.adopt(run.runId, step, existing.commandId, req.taskToken))
    ) {
      logger.info('adopted the running command of an earlier attempt', {
        step,
        commandId: existing.commandId,
      });
      return { commandId: existing.commandId, instanceId: existing.instanceId, adopted: true };
    }
    // The earlier attempt's command already succeeded, but its answer went to a token Step
    // Functions had given up on (that attempt failed after SendCommand). Its result stands: the
    // task waits again, for this token, and the reconciler's next run completes it from the
    // command's result.json instead of a second build (a second AMI).
    if (status === 'Success' && (await deps.tasks.reopen(existing, req.taskToken))) {
      logger.info('reusing the succeeded command of an earlier attempt', {
        step,
        commandId: existing.commandId,
      });
      return { commandId: existing.commandId, instanceId: existing.instanceId, adopted: true };
    }
  }
  // An earlier attempt that stopped between SendCommand and recording the command id (or whose
  // SendCommand outcome was unknown) may have left a command running unrecorded: never start a
  // second one beside it. The stage fails instead, and compensation cancels what it finds.
  if (existing && !existing.commandId && existing.status === 'PENDING' && existing.mode === req.mode) {
    const [earlier] = await findUnrecordedCommands(deps, existing);
    if (earlier) {
      throw new CommandOutcomeUnknownError(
        `${step}: an earlier attempt started command ${String(earlier.CommandId)} (${String(earlier.Status)}) that no record holds; not starting another`,
      );
    }
  }

  const instanceId = await pickBuilder(deps);
  const now = deps.now();
  const task = {
    runId: run.runId,
    appId: run.appId,
    environment: run.environment,
    step,
    mode: req.mode,
    executionArn: run.executionArn,
    taskToken: req.taskToken,
    createdAt: now.toISOString(),
    expiresAt: Math.floor(now.getTime() / 1000) + req.stateTimeoutSeconds + deps.retentionSeconds,
  };
  await deps.tasks.putPending(task);

  const prefix = parameters.resultPrefix;
  const sent = await sendOnce(
    new SendCommandCommand({
      DocumentName: documentName(deps.stage.stage, step),
      InstanceIds: [instanceId],
      Parameters: Object.fromEntries(Object.entries(parameters).map(([k, v]) => [k, [v]])),
      // Identifies the command without the coordination table (e.g. after a crash right here).
      Comment: commandComment(run.runId, step, req.mode),
      TimeoutSeconds: 600, // delivery: a builder that is not reachable within 10 minutes fails the command
      MaxConcurrency: '1',
      MaxErrors: '0',
      OutputS3BucketName: deps.artifactsBucket,
      OutputS3KeyPrefix: `${prefix}/ssm-output`,
      CloudWatchOutputConfig: {
        CloudWatchLogGroupName: deps.commandLogGroup,
        CloudWatchOutputEnabled: true,
      },
    }),
    task,
    deps,
  ).catch(async (err: unknown) => {
    if (refusedBySsm(err)) {
      // Refused (throttled, invalid, denied): nothing was sent. Close the task so the reconciler
      // stops waiting for a command that never was; the state may retry.
      await deps.tasks.complete({ ...task, status: 'PENDING' }, 'NOT_SENT');
      throw err;
    }
    // A timeout, a 5xx or a dropped connection, and no command found by its Comment: SSM may still
    // have started one (ListCommands can lag). The task stays PENDING, so compensation looks for the
    // command by its Comment and cancels it; a retry could start a second build beside it.
    throw new CommandOutcomeUnknownError(
      `${step}: SendCommand failed (${errorName(err)}: ${errorMessage(err)}) and may have started the command; not retried`,
      { cause: err },
    );
  });
  const commandId = sent.Command?.CommandId;
  if (!commandId) throw new Error(`SendCommand for ${step} returned no command id`);
  try {
    await deps.tasks.setCommand({ ...task, status: 'PENDING' }, commandId, instanceId);
  } catch (err) {
    // Unrecorded, the command could outlive the state's compensation and leave an orphan: stop it.
    await deps.ssm.send(new CancelCommandCommand({ CommandId: commandId })).catch((cancelErr: unknown) => {
      logger.error('could not cancel an unrecorded command', { commandId, error: cancelErr as Error });
    });
    // Not a transient error for the state machine, however transient the cause: a retry would send
    // the command again over the one just cancelled mid-run (a half-applied stack, a held state lock).
    throw new CommandNotRecordedError(
      `${step} command ${commandId} was sent but could not be recorded, so it was cancelled: ${errorName(err)}: ${errorMessage(err)}`,
      { cause: err },
    );
  }
  logger.info('command started', { step, mode: req.mode, commandId, instanceId, executionTimeout });
  return { commandId, instanceId, adopted: false };
};

/**
 * SendCommand, at most one command per attempt of the stage. SendCommand has no idempotency token:
 * when an answer is lost (a timeout, a connection reset after the request arrived) the SDK's retry
 * would start a second build. So before each retry, and once more when the SDK gives up, the
 * command this attempt may already have started is looked for by its Comment and taken instead.
 */
const sendOnce = async (
  command: SendCommandCommand,
  task: { runId: string; step: CommandStep; mode: string; createdAt: string },
  deps: LaunchDeps,
): Promise<{ Command?: Command | undefined }> => {
  let attempts = 0;
  const adoptLost: FinalizeRequestMiddleware<SendCommandCommandInput, SendCommandCommandOutput> =
    (next) => async (args) => {
      attempts += 1;
      if (attempts > 1) {
        const [started] = await findUnrecordedCommands(deps, task);
        if (started) {
          logger.warn('SendCommand answer was lost; taking the command it started', {
            commandId: started.CommandId,
          });
          return { output: { Command: started, $metadata: {} }, response: undefined };
        }
      }
      return next(args);
    };
  command.middlewareStack.add(adoptLost, {
    step: 'finalizeRequest',
    priority: 'low',
    name: 'adoptLostSendCommand',
  });
  try {
    return await deps.ssm.send(command);
  } catch (err) {
    const [started] = await findUnrecordedCommands(deps, task).catch(() => []);
    if (!started) throw err;
    logger.warn('SendCommand failed but started a command; taking it', {
      commandId: started.CommandId,
      error: errorName(err),
    });
    return { Command: started };
  }
};

/**
 * SendCommand answered with a 4xx (throttled, invalid, access denied): SSM refused the request, so
 * no command exists. A timeout, a 5xx or a network error leaves that unknown.
 */
const refusedBySsm = (err: unknown): boolean => {
  const status = (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
  return status !== undefined && status >= 400 && status < 500;
};

const checkParameters = (step: CommandStep, parameters: Record<string, string>): void => {
  const problems: string[] = [];
  for (const name of DOCUMENT_PARAMETERS[step]) {
    const value = parameters[name];
    if (value === undefined) problems.push(`${name}: is required`);
    else if (!new RegExp(PARAMETER_PATTERNS[name]).test(value))
      problems.push(`${name}: must match ${PARAMETER_PATTERNS[name]}`);
  }
  for (const name of Object.keys(parameters)) {
    if (!(DOCUMENT_PARAMETERS[step] as readonly string[]).includes(name))
      problems.push(`${name}: is not a parameter of the ${step} document`);
  }
  if (problems.length > 0)
    throw new InvalidTaskInputError(`${step} command parameters rejected: ${problems.join('; ')}`);
};

/** One online builder: a configured instance id, or a random online instance carrying the tag. */
const pickBuilder = async (deps: LaunchDeps): Promise<string> => {
  const { targets } = deps.stage.builder;
  const filters =
    'instanceIds' in targets
      ? [{ Key: 'InstanceIds', Values: targets.instanceIds }]
      : [{ Key: `tag:${targets.tag.key}`, Values: [targets.tag.value] }];
  const online: string[] = [];
  for await (const page of paginateDescribeInstanceInformation({ client: deps.ssm }, { Filters: filters })) {
    for (const info of page.InstanceInformationList ?? []) {
      if (info.PingStatus === 'Online' && info.InstanceId) online.push(info.InstanceId);
    }
  }
  if (online.length === 0) {
    throw new NoBuilderAvailableError(
      `no online builder for ${JSON.stringify(targets)}; check the SSM agent on the builder hosts`,
    );
  }
  return online[randomInt(online.length)] as string;
};
