import { TEST_ENV } from './support/env';
import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  ProvisionedThroughputExceededException,
} from '@aws-sdk/client-dynamodb';
import {
  ExecutionAlreadyExists,
  SFNClient,
  SFNServiceException,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type GetCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { AuditRepository, auditKeys } from '../../shared/audit';
import { AuditConflictError, ReleaseLiveError } from '../../shared/errors';
import { recordRelease, type RecordReleaseDeps, type RecordReleaseInput } from '../../shared/release/live';
import type { RunConfig } from '../../shared/run-config';
import { inCallOrder } from './support/call-order';
import {
  ARTIFACTS_BUCKET,
  BUILD_ID,
  EXECUTION_ARN,
  EXECUTION_ARN_PREFIX,
  RUN_CONFIG_PARAMETER,
  RUN_ID,
  RUN_REF,
  runConfigFixture,
} from './support/fixtures';

const ssmMock = mockClient(SSMClient);
const dbMock = mockClient(DynamoDBDocumentClient);
const sfnMock = mockClient(SFNClient);

const NOW = '2025-03-04T11:12:00.000Z';
const STARTED_AT = '2025-03-04T10:00:02.000Z';
const AUDIT = TEST_ENV.AUDIT_TABLE;
const SECRET = 'planted-secret-d41d8cd98f00';
const AMI_ID = 'ami-0c0c0c0c0c0c0c0c0';
const ELB_ARN = 'arn:aws:elasticloadbalancing:eu-west-1:123456789012';
const LISTENER_ARN = `${ELB_ARN}:listener/app/sample-app-dev/50dc6c495c0c9188/f2f7dc8efc522ab2`;
const GREEN_TG = `${ELB_ARN}:targetgroup/sample-app-green/0123456789abcdef`;
const BLUE_TG = `${ELB_ARN}:targetgroup/sample-app-blue/73e2d6bc24d8a067`;
const PREVIOUS_RUN_ID = 'b'.repeat(20);
const LIVE_KEY = { pk: 'LIVE#dev', sk: 'APP#sample-app' };
const DECOMMISSION_ARN = 'arn:aws:states:eu-west-1:123456789012:stateMachine:ami-pipeline-dev-decommission';
const PREVIOUS_EXECUTION_ARN = `${EXECUTION_ARN_PREFIX}:sample-app-dev-${PREVIOUS_RUN_ID}`;
const PREVIOUS_AMI_ID = 'ami-0b0b0b0b0b0b0b0b0';

const deps: RecordReleaseDeps = {
  db: DynamoDBDocumentClient.from(new DynamoDBClient({})),
  sfn: new SFNClient({}),
  decommissionStateMachineArn: DECOMMISSION_ARN,
  stage: 'dev',
  tableName: AUDIT,
  audit: new AuditRepository(DynamoDBDocumentClient.from(new DynamoDBClient({})), AUDIT),
  ssm: new SSMClient({}),
  decommissionAfterSeconds: 3600,
  now: () => new Date(NOW),
};

const input: RecordReleaseInput = {
  run: { ...RUN_REF },
  runConfigParameter: RUN_CONFIG_PARAMETER,
  amiId: AMI_ID,
  provision: {
    launchTemplateId: 'lt-0a1b2c3d4e5f60718',
    asgName: `sample-app-dev-${RUN_ID}`,
    targetGroupArn: GREEN_TG,
    albDns: 'sample-app-dev-1234567890.eu-west-1.elb.amazonaws.com',
    terraformStateVersion: 'Vx1.c3RhdGUtdmVyc2lvbg',
  },
  plan: {
    listenerArn: LISTENER_ARN,
    loadBalancerArn: `${ELB_ARN}:loadbalancer/app/sample-app-dev/50dc6c495c0c9188`,
    greenTargetGroupArn: GREEN_TG,
    blueTargetGroupArn: BLUE_TG,
    steps: [10, 50, 100],
    soakSeconds: 300,
    max5xxRate: 0.01,
  },
  startedAt: STARTED_AT,
};

/** The LIVE item the previous release of sample-app in dev left. */
const PREVIOUS_LIVE = {
  ...LIVE_KEY,
  entity: 'LIVE',
  appId: 'sample-app',
  environment: 'dev',
  runId: PREVIOUS_RUN_ID,
  version: '1.4.1',
  buildId: 'sample-app-release#117',
  executionArn: PREVIOUS_EXECUTION_ARN,
  amiId: PREVIOUS_AMI_ID,
  asgName: `sample-app-dev-${PREVIOUS_RUN_ID}`,
  targetGroupArn: BLUE_TG,
  since: '2025-02-20T09:00:00.000Z',
  previousRunId: null,
};

/** An audit event of this run as eventsOf returns it. */
const event = (type: string, at: string, extra: Record<string, unknown> = {}) => ({
  pk: `RUN#${RUN_ID}`,
  sk: `EVENT#${at}#${type}`,
  entity: 'EVENT',
  runId: RUN_ID,
  type,
  at,
  ...extra,
});

const PRE_PROVISIONED = event('PRE_PROVISIONED', '2025-03-04T10:00:07.000Z', { stage: 'PreProvision' });
const BAKED = event('COMMAND_SUCCESS', '2025-03-04T10:40:07.000Z', { stage: 'bake', id: 'cmd-bake' });
const PROVISIONED = event('COMMAND_SUCCESS', '2025-03-04T10:52:37.000Z', {
  stage: 'provision',
  id: 'cmd-prov',
});
const VALIDATED = event('COMMAND_SUCCESS', '2025-03-04T11:00:00.000Z', {
  stage: 'validate',
  id: 'cmd-validate',
});
const shifted = (percent: number, at: string) =>
  event('TRAFFIC_SHIFTED', at, { stage: 'PostProvision', id: String(percent), detail: { percent } });
const SHIFTED_100 = shifted(100, '2025-03-04T11:11:00.000Z');

/** The events a run that got this far recorded, oldest first. */
const RUN_EVENTS = [
  PRE_PROVISIONED,
  BAKED,
  PROVISIONED,
  VALIDATED,
  shifted(10, '2025-03-04T11:01:00.000Z'),
  shifted(50, '2025-03-04T11:06:00.000Z'),
  SHIFTED_100,
];

let liveItem: Record<string, unknown> | undefined;

const givenRunConfig = (config: RunConfig = runConfigFixture()): void => {
  ssmMock.on(GetParameterCommand, { Name: RUN_CONFIG_PARAMETER }).resolves({
    Parameter: { Name: RUN_CONFIG_PARAMETER, Type: 'SecureString', Value: JSON.stringify(config) },
  });
};

const givenEvents = (events: Record<string, unknown>[]): void => {
  dbMock.on(QueryCommand).resolves({ Items: events });
};

const puts = () => dbMock.commandCalls(PutCommand).map((call) => call.args[0].input);
const liveWrite = () => puts().find((put) => put.Item?.entity === 'LIVE');
const eventsWritten = (type: string) =>
  puts()
    .map((put) => put.Item ?? {})
    .filter((item) => item.type === type);

/** Runs recordRelease and returns what it threw (the test fails if it did not throw). */
const failureOf = async (): Promise<unknown> => {
  try {
    await recordRelease(input, deps);
  } catch (err) {
    return err;
  }
  throw new Error('expected recordRelease to fail');
};

beforeEach(() => {
  liveItem = undefined;
  givenRunConfig();
  givenEvents(RUN_EVENTS);
  dbMock
    .on(GetCommand)
    .callsFake(async (req: GetCommandInput) =>
      req.Key?.pk === LIVE_KEY.pk && req.Key.sk === LIVE_KEY.sk ? { Item: liveItem } : {},
    );
  dbMock.on(PutCommand).resolves({});
  sfnMock.on(StartExecutionCommand).resolves({
    executionArn: `${DECOMMISSION_ARN.replace(':stateMachine:', ':execution:')}:decommission-${PREVIOUS_RUN_ID}`,
    startDate: new Date(NOW),
  });
});

afterEach(() => {
  ssmMock.reset();
  dbMock.reset();
  sfnMock.reset();
});

describe('record release', () => {
  it('keys the live release by environment and app', () => {
    expect(auditKeys.live('prod', 'billing-app')).toEqual({ pk: 'LIVE#prod', sk: 'APP#billing-app' });
  });

  it('reads the decrypted run config and the current live release with a consistent read', async () => {
    await recordRelease(input, deps);

    expect(ssmMock).toHaveReceivedCommandWith(GetParameterCommand, {
      Name: RUN_CONFIG_PARAMETER,
      WithDecryption: true,
    });
    expect(dbMock).toHaveReceivedCommandWith(GetCommand, {
      TableName: AUDIT,
      Key: LIVE_KEY,
      ConsistentRead: true,
    });
  });

  describe("an app's first release", () => {
    it('writes the LIVE item only if none exists, with no previous run', async () => {
      await recordRelease(input, deps);

      const config = runConfigFixture();
      expect(liveWrite()).toEqual({
        TableName: AUDIT,
        Item: {
          pk: 'LIVE#dev',
          sk: 'APP#sample-app',
          entity: 'LIVE',
          appId: 'sample-app',
          environment: 'dev',
          runId: RUN_ID,
          version: '1.4.2',
          buildId: BUILD_ID,
          executionArn: EXECUTION_ARN,
          amiId: AMI_ID,
          baseImage: config.app.baseImage,
          appConfigUri: `s3://${ARTIFACTS_BUCKET}/inputs/sample-app/118/app-config.yml`,
          artifact: config.release.artifact,
          targetGroupArn: GREEN_TG,
          asgName: `sample-app-dev-${RUN_ID}`,
          launchTemplateId: 'lt-0a1b2c3d4e5f60718',
          listenerArn: LISTENER_ARN,
          since: NOW,
          previousRunId: null,
          previousRelease: null,
        },
        ConditionExpression: 'attribute_not_exists(pk)',
      });
    });

    it('schedules nothing for decommission', async () => {
      const output = await recordRelease(input, deps);

      expect(eventsWritten('DECOMMISSION_SCHEDULED')).toEqual([]);
      expect(sfnMock).not.toHaveReceivedCommand(StartExecutionCommand);
      expect(output.previousRunId).toBeNull();
      expect(output.decommissionAt).toBeNull();
    });

    it('records RELEASE_LIVE in the run, after the LIVE item', async () => {
      await recordRelease(input, deps);

      expect(eventsWritten('RELEASE_LIVE')).toEqual([
        {
          pk: `RUN#${RUN_ID}`,
          sk: `EVENT#${NOW}#RELEASE_LIVE`,
          entity: 'EVENT',
          runId: RUN_ID,
          type: 'RELEASE_LIVE',
          stage: 'PostProvision',
          at: NOW,
          detail: { previousRunId: null, amiId: AMI_ID, targetGroupArn: GREEN_TG },
        },
      ]);
      const calls = dbMock.commandCalls(PutCommand);
      expect(
        inCallOrder(
          calls.find((call) => call.args[0].input.Item?.entity === 'LIVE'),
          calls.find((call) => call.args[0].input.Item?.type === 'RELEASE_LIVE'),
        ),
      ).toBe(true);
    });
  });

  describe('a release that replaces a live one', () => {
    beforeEach(() => {
      liveItem = { ...PREVIOUS_LIVE };
    });

    it('replaces the LIVE item only while it still names the previous run', async () => {
      await recordRelease(input, deps);

      expect(liveWrite()).toEqual(
        expect.objectContaining({
          Item: expect.objectContaining({ runId: RUN_ID, previousRunId: PREVIOUS_RUN_ID, since: NOW }),
          ConditionExpression: 'runId = :previous',
          ExpressionAttributeValues: { ':previous': PREVIOUS_RUN_ID },
        }),
      );
    });

    it('keeps a snapshot of the previous release, with its execution, in the new LIVE item', async () => {
      await recordRelease(input, deps);

      expect(liveWrite()?.Item?.previousRelease).toStrictEqual({
        asgName: `sample-app-dev-${PREVIOUS_RUN_ID}`,
        amiId: PREVIOUS_AMI_ID,
        version: '1.4.1',
        executionArn: PREVIOUS_EXECUTION_ARN,
      });
    });

    it('starts the decommission state machine for the previous run, named after it', async () => {
      await recordRelease(input, deps);

      expect(sfnMock).toHaveReceivedCommandTimes(StartExecutionCommand, 1);
      const started = sfnMock.commandCalls(StartExecutionCommand)[0]?.args[0].input;
      expect(started).toStrictEqual({
        stateMachineArn: DECOMMISSION_ARN,
        name: `decommission-${PREVIOUS_RUN_ID}`,
        input: expect.any(String),
      });
      expect(JSON.parse(started?.input ?? '')).toStrictEqual({
        run: {
          runId: PREVIOUS_RUN_ID,
          appId: 'sample-app',
          environment: 'dev',
          executionArn: PREVIOUS_EXECUTION_ARN,
        },
        runConfigParameter: `/ami-pipeline/dev/sample-app/${PREVIOUS_RUN_ID}`,
        amiId: PREVIOUS_AMI_ID,
        replacedBy: RUN_ID,
        decommissionAt: '2025-03-04T12:12:00.000Z',
      });
    });

    it('starts the decommission before recording DECOMMISSION_SCHEDULED', async () => {
      await recordRelease(input, deps);

      expect(
        inCallOrder(
          sfnMock.commandCalls(StartExecutionCommand)[0],
          dbMock
            .commandCalls(PutCommand)
            .find((call) => call.args[0].input.Item?.type === 'DECOMMISSION_SCHEDULED'),
        ),
      ).toBe(true);
    });

    it('treats an existing decommission execution as a retry and still records the schedule', async () => {
      sfnMock.on(StartExecutionCommand).rejects(
        new ExecutionAlreadyExists({
          message: `Execution Already Exists: 'decommission-${PREVIOUS_RUN_ID}'`,
          $metadata: {},
        }),
      );

      const output = await recordRelease(input, deps);

      expect(output.decommissionAt).toBe('2025-03-04T12:12:00.000Z');
      expect(eventsWritten('DECOMMISSION_SCHEDULED')).toHaveLength(1);
    });

    it('reports any other Step Functions error as ReleaseLiveError (live already: never compensated), without recording the schedule', async () => {
      const throttled = new SFNServiceException({
        name: 'ThrottlingException',
        $fault: 'client',
        $metadata: {},
        message: 'Rate exceeded',
      });
      sfnMock.on(StartExecutionCommand).rejects(throttled);

      const err = await recordRelease(input, deps).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ReleaseLiveError);
      expect(err).toHaveProperty('name', 'ReleaseLiveError');
      expect((err as Error).message).toContain(
        'is live, but recording it failed: ThrottlingException: Rate exceeded',
      );
      expect((err as Error).cause).toBe(throttled);
      expect(liveWrite()?.Item?.runId).toBe(RUN_ID); // the pointer had moved before the failure
      expect(eventsWritten('DECOMMISSION_SCHEDULED')).toEqual([]);
    });

    it.each<'amiId' | 'executionArn'>(['amiId', 'executionArn'])(
      'throws AuditConflictError and starts nothing when the live item lacks %s',
      async (attribute) => {
        const { [attribute]: _dropped, ...incomplete } = PREVIOUS_LIVE;
        liveItem = incomplete;

        const err = await failureOf();

        expect(err).toBeInstanceOf(AuditConflictError);
        expect(err).toHaveProperty(
          'message',
          "the live item of sample-app lacks the previous release's AMI or execution",
        );
        expect(sfnMock).not.toHaveReceivedCommand(StartExecutionCommand);
        expect(eventsWritten('DECOMMISSION_SCHEDULED')).toEqual([]);
      },
    );

    it("schedules the previous release's decommission in the previous run's partition", async () => {
      const output = await recordRelease(input, deps);

      const decommissionAt = '2025-03-04T12:12:00.000Z';
      expect(eventsWritten('DECOMMISSION_SCHEDULED')).toEqual([
        {
          pk: `RUN#${PREVIOUS_RUN_ID}`,
          sk: `EVENT#${NOW}#DECOMMISSION_SCHEDULED#${RUN_ID}`,
          entity: 'EVENT',
          id: RUN_ID,
          runId: PREVIOUS_RUN_ID,
          type: 'DECOMMISSION_SCHEDULED',
          stage: 'PostProvision',
          at: NOW,
          detail: {
            replacedBy: RUN_ID,
            decommissionAt,
            asgName: `sample-app-dev-${PREVIOUS_RUN_ID}`,
            amiId: PREVIOUS_AMI_ID,
          },
        },
      ]);
      expect(output).toMatchObject({ previousRunId: PREVIOUS_RUN_ID, decommissionAt });
    });

    it("waits the stage's decommission delay (a day in prod)", async () => {
      const output = await recordRelease(input, { ...deps, decommissionAfterSeconds: 86400 });

      expect(output.decommissionAt).toBe('2025-03-05T11:12:00.000Z');
    });

    it('schedules the decommission for now when the stage keeps no previous release', async () => {
      const output = await recordRelease(input, { ...deps, decommissionAfterSeconds: 0 });

      expect(output.decommissionAt).toBe(NOW);
    });

    it('names the previous run in the RELEASE_LIVE event', async () => {
      await recordRelease(input, deps);

      expect(eventsWritten('RELEASE_LIVE')[0]?.detail).toEqual({
        previousRunId: PREVIOUS_RUN_ID,
        amiId: AMI_ID,
        targetGroupArn: GREEN_TG,
      });
    });
  });

  describe('when the live release changed underneath', () => {
    /** DynamoDB refuses the LIVE write: its condition no longer holds. */
    const givenLiveWriteRefused = (): void => {
      dbMock.on(PutCommand).callsFake(async (req: { Item?: Record<string, unknown> }) => {
        if (req.Item?.entity === 'LIVE') {
          throw new ConditionalCheckFailedException({
            message: 'The conditional request failed',
            $metadata: {},
          });
        }
        return {};
      });
    };

    it('throws AuditConflictError naming the app and environment, and records no event', async () => {
      liveItem = { ...PREVIOUS_LIVE };
      givenLiveWriteRefused();

      const err = await failureOf();

      expect(err).toBeInstanceOf(AuditConflictError);
      expect(err).toHaveProperty('name', 'AuditConflictError');
      expect(err).toHaveProperty('message', 'the live release of sample-app in dev changed during this run');
      expect(err).toHaveProperty('cause', expect.any(ConditionalCheckFailedException));
      expect(dbMock).toHaveReceivedCommandTimes(PutCommand, 1);
      expect(eventsWritten('DECOMMISSION_SCHEDULED')).toEqual([]);
    });

    it('throws AuditConflictError when another first release got there first', async () => {
      givenLiveWriteRefused();

      await expect(recordRelease(input, deps)).rejects.toThrow(AuditConflictError);
      expect(dbMock).toHaveReceivedCommandWith(PutCommand, {
        ConditionExpression: 'attribute_not_exists(pk)',
      });
    });

    it('propagates other DynamoDB errors unchanged so the state machine retries them', async () => {
      const throttled = new ProvisionedThroughputExceededException({ message: 'throttled', $metadata: {} });
      dbMock.on(PutCommand).rejects(throttled);

      await expect(recordRelease(input, deps)).rejects.toBe(throttled);
    });
  });

  describe('stage timings', () => {
    it("reads every page of the run's events", async () => {
      dbMock
        .on(QueryCommand)
        .resolvesOnce({ Items: RUN_EVENTS.slice(0, 3), LastEvaluatedKey: { pk: `RUN#${RUN_ID}`, sk: 'x' } })
        .resolvesOnce({ Items: RUN_EVENTS.slice(3) });

      const output = await recordRelease(input, deps);

      expect(dbMock).toHaveReceivedCommandTimes(QueryCommand, 2);
      expect(dbMock).toHaveReceivedNthSpecificCommandWith(1, QueryCommand, {
        TableName: AUDIT,
        ExpressionAttributeValues: { ':pk': `RUN#${RUN_ID}`, ':prefix': 'EVENT#' },
      });
      expect(output.stageTimings).toHaveProperty('trafficShift', 660);
    });

    it('measures each stage in seconds from the end of the one before, starting when the run started', async () => {
      const output = await recordRelease(input, deps);

      expect(output.stageTimings).toEqual({
        preProvision: 5,
        bake: 2400,
        provision: 750,
        validate: 443,
        trafficShift: 660,
      });
    });

    it('records them as a STAGE_TIMINGS event of the run', async () => {
      await recordRelease(input, deps);

      expect(eventsWritten('STAGE_TIMINGS')).toEqual([
        {
          pk: `RUN#${RUN_ID}`,
          sk: `EVENT#${NOW}#STAGE_TIMINGS`,
          entity: 'EVENT',
          runId: RUN_ID,
          type: 'STAGE_TIMINGS',
          stage: 'PostProvision',
          at: NOW,
          detail: {
            seconds: { preProvision: 5, bake: 2400, provision: 750, validate: 443, trafficShift: 660 },
          },
        },
      ]);
    });

    it('ignores failed commands, undone steps and partial shifts', async () => {
      givenEvents([
        PRE_PROVISIONED,
        event('COMMAND_FAILED', '2025-03-04T10:20:00.000Z', { stage: 'bake', id: 'cmd-bake-1' }),
        BAKED,
        PROVISIONED,
        VALIDATED,
        shifted(10, '2025-03-04T11:01:00.000Z'),
        event('UNDONE', '2025-03-04T11:02:00.000Z', { stage: 'Compensate' }),
        shifted(100, '2025-03-04T11:04:00.000Z'),
      ]);

      const output = await recordRelease(input, deps);

      expect(output.stageTimings).toEqual({
        preProvision: 5,
        bake: 2400,
        provision: 750,
        validate: 443,
        trafficShift: 240,
      });
    });

    it('leaves out a stage with no event and measures the next from the last one found', async () => {
      givenEvents([PRE_PROVISIONED, BAKED, PROVISIONED, SHIFTED_100]);

      const output = await recordRelease(input, deps);

      expect(output.stageTimings).toEqual({
        preProvision: 5,
        bake: 2400,
        provision: 750,
        trafficShift: 1103,
      });
    });

    it('reports no timings when the run recorded none of the stage events', async () => {
      givenEvents([]);

      const output = await recordRelease(input, deps);

      expect(output.stageTimings).toEqual({});
      expect(eventsWritten('STAGE_TIMINGS')[0]?.detail).toEqual({ seconds: {} });
    });
  });

  it('returns the previous run, the decommission time and the timings', async () => {
    liveItem = { ...PREVIOUS_LIVE };

    const output = await recordRelease(input, deps);

    expect(output).toStrictEqual({
      previousRunId: PREVIOUS_RUN_ID,
      decommissionAt: '2025-03-04T12:12:00.000Z',
      stageTimings: { preProvision: 5, bake: 2400, provision: 750, validate: 443, trafficShift: 660 },
    });
  });

  describe('a retried RecordRelease that finds its own run live', () => {
    beforeEach(() => {
      liveItem = {
        ...PREVIOUS_LIVE,
        runId: RUN_ID,
        executionArn: EXECUTION_ARN,
        amiId: AMI_ID,
        previousRunId: PREVIOUS_RUN_ID,
        previousRelease: {
          asgName: `sample-app-dev-${PREVIOUS_RUN_ID}`,
          amiId: PREVIOUS_AMI_ID,
          version: '1.4.1',
          executionArn: PREVIOUS_EXECUTION_ARN,
        },
      };
    });

    it('does not write the LIVE item again', async () => {
      await recordRelease(input, deps);

      expect(liveWrite()).toBeUndefined();
    });

    it('starts the same decommission from the snapshot of the release it replaced', async () => {
      const output = await recordRelease(input, deps);

      expect(output.previousRunId).toBe(PREVIOUS_RUN_ID);
      expect(sfnMock).toHaveReceivedCommandWith(StartExecutionCommand, {
        name: `decommission-${PREVIOUS_RUN_ID}`,
      });
      const started = JSON.parse(sfnMock.commandCalls(StartExecutionCommand)[0]?.args[0].input.input ?? '');
      expect(started).toMatchObject({
        run: { runId: PREVIOUS_RUN_ID, executionArn: PREVIOUS_EXECUTION_ARN },
        amiId: PREVIOUS_AMI_ID,
        replacedBy: RUN_ID,
      });
    });
  });

  it('keeps a secret in the run config out of every DynamoDB write and the output', async () => {
    liveItem = { ...PREVIOUS_LIVE };
    const config = runConfigFixture();
    config.app.bake.chefAttributes = { sample_app: { db_password: SECRET } };
    givenRunConfig(config);

    const output = await recordRelease(input, deps);

    expect(dbMock).toHaveReceivedCommandTimes(PutCommand, 4);
    expect(JSON.stringify(dbMock.calls().map((call) => call.args[0].input))).not.toContain(SECRET);
    expect(JSON.stringify(output)).not.toContain(SECRET);
    expect(JSON.stringify(sfnMock.calls().map((call) => call.args[0].input))).not.toContain(SECRET);
  });
});
