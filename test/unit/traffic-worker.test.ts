// First import: the handler module reads its environment (requireEnv) when it is loaded.
import { TEST_ENV } from './support/env';
import {
  CloudWatchClient,
  GetMetricStatisticsCommand,
  type GetMetricStatisticsCommandInput,
} from '@aws-sdk/client-cloudwatch';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DescribeListenersCommand,
  DescribeLoadBalancersCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  ModifyListenerCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { run } from '../../functions/traffic/handler';
import { AuditRepository } from '../../shared/audit';
import { InvalidTaskInputError } from '../../shared/errors';
import type { TrafficDeps } from '../../shared/release/traffic';
import { RUN_CONFIG_PARAMETER, RUN_ID, RUN_REF, runConfigFixture } from './support/fixtures';

const elbMock = mockClient(ElasticLoadBalancingV2Client);
const cwMock = mockClient(CloudWatchClient);
const ssmMock = mockClient(SSMClient);
const dbMock = mockClient(DynamoDBDocumentClient);

const NOW = '2025-03-04T11:20:00.000Z';
const ELB_ARN = 'arn:aws:elasticloadbalancing:eu-west-1:123456789012';
const ALB_DNS = 'sample-app-dev-1234567890.eu-west-1.elb.amazonaws.com';
const LB_ARN = `${ELB_ARN}:loadbalancer/app/sample-app-dev/50dc6c495c0c9188`;
const LISTENER_ARN = `${ELB_ARN}:listener/app/sample-app-dev/50dc6c495c0c9188/f2f7dc8efc522ab2`;
const GREEN_TG = `${ELB_ARN}:targetgroup/sample-app-green/0123456789abcdef`;
const BLUE_TG = `${ELB_ARN}:targetgroup/sample-app-blue/73e2d6bc24d8a067`;

const deps: TrafficDeps = {
  elbv2: new ElasticLoadBalancingV2Client({}),
  cloudwatch: new CloudWatchClient({}),
  ssm: new SSMClient({}),
  audit: new AuditRepository(DynamoDBDocumentClient.from(new DynamoDBClient({})), TEST_ENV.AUDIT_TABLE),
  now: () => new Date(NOW),
};

const PLAN = {
  listenerArn: LISTENER_ARN,
  loadBalancerArn: LB_ARN,
  greenTargetGroupArn: GREEN_TG,
  blueTargetGroupArn: BLUE_TG,
  steps: [10, 50, 100],
  soakSeconds: 300,
  max5xxRate: 0.01,
};

/** The three payloads the state machine sends the traffic function. */
const prepareEvent = () => ({
  action: 'prepare',
  run: { ...RUN_REF },
  runConfigParameter: RUN_CONFIG_PARAMETER,
  provision: {
    launchTemplateId: 'lt-0a1b2c3d4e5f60718',
    asgName: `sample-app-dev-${RUN_ID}`,
    targetGroupArn: GREEN_TG,
    albDns: ALB_DNS,
    terraformStateVersion: 'Vx1.c3RhdGUtdmVyc2lvbg',
  },
});
const shiftEvent = (plan: Record<string, unknown> = PLAN) => ({
  action: 'shift',
  run: { ...RUN_REF },
  plan,
  percent: 10,
});
const checkEvent = (plan: Record<string, unknown> = PLAN) => ({
  action: 'check',
  run: { ...RUN_REF },
  plan,
  percent: 10,
  since: '2025-03-04T11:15:00.000Z',
});

/** Runs the worker and returns what it threw (the test fails if it did not throw). */
const failureOf = async (event: unknown): Promise<unknown> => {
  try {
    await run(event, deps);
  } catch (err) {
    return err;
  }
  throw new Error('expected the traffic worker to fail');
};

const expectNothingSent = (): void => {
  expect(elbMock.calls()).toHaveLength(0);
  expect(cwMock.calls()).toHaveLength(0);
  expect(ssmMock.calls()).toHaveLength(0);
  expect(dbMock.calls()).toHaveLength(0);
};

beforeEach(() => {
  ssmMock
    .on(GetParameterCommand)
    .resolves({ Parameter: { Name: RUN_CONFIG_PARAMETER, Value: JSON.stringify(runConfigFixture()) } });
  elbMock
    .on(DescribeLoadBalancersCommand)
    .resolves({ LoadBalancers: [{ LoadBalancerArn: LB_ARN, DNSName: ALB_DNS }] });
  elbMock.on(DescribeListenersCommand).resolves({
    Listeners: [
      {
        ListenerArn: LISTENER_ARN,
        Port: 443,
        DefaultActions: [{ Type: 'forward', TargetGroupArn: BLUE_TG }],
      },
    ],
  });
  elbMock.on(ModifyListenerCommand).resolves({});
  elbMock.on(DescribeTargetHealthCommand).resolves({
    TargetHealthDescriptions: [{ Target: { Id: 'i-0a1b2c3d4e5f60718' }, TargetHealth: { State: 'healthy' } }],
  });
  cwMock.on(GetMetricStatisticsCommand).callsFake(async (req: GetMetricStatisticsCommandInput) => ({
    Datapoints: [{ Sum: req.MetricName === 'RequestCount' ? 42 : 0 }],
  }));
  dbMock.on(PutCommand).resolves({});
});

afterEach(() => {
  elbMock.reset();
  cwMock.reset();
  ssmMock.reset();
  dbMock.reset();
});

describe('traffic worker', () => {
  describe('dispatching on the action', () => {
    it('prepares: finds the listener and returns the plan, changing no traffic', async () => {
      const output = await run(prepareEvent(), deps);

      expect(output).toStrictEqual(PLAN);
      expect(elbMock).toHaveReceivedCommandTimes(ModifyListenerCommand, 0);
      expect(elbMock).toHaveReceivedCommandTimes(DescribeTargetHealthCommand, 0);
    });

    it('shifts: changes the listener weights and returns when', async () => {
      const output = await run(shiftEvent(), deps);

      expect(output).toStrictEqual({ percent: 10, at: NOW });
      expect(elbMock).toHaveReceivedCommandWith(ModifyListenerCommand, { ListenerArn: LISTENER_ARN });
      expect(elbMock).toHaveReceivedCommandTimes(DescribeLoadBalancersCommand, 0);
      expect(cwMock).toHaveReceivedCommandTimes(GetMetricStatisticsCommand, 0);
    });

    it("checks: reads green's health and metrics and returns the counts", async () => {
      const output = await run(checkEvent(), deps);

      expect(output).toStrictEqual({ percent: 10, requests: 42, errors: 0 });
      expect(elbMock).toHaveReceivedCommandWith(DescribeTargetHealthCommand, { TargetGroupArn: GREEN_TG });
      expect(elbMock).toHaveReceivedCommandTimes(ModifyListenerCommand, 0);
    });
  });

  describe('with a task input that breaks its contract', () => {
    it.each<[string, Record<string, unknown>]>([
      ['an unknown action', { ...shiftEvent(), action: 'rollback' }],
      ['no action at all', { run: { ...RUN_REF }, plan: PLAN, percent: 10 }],
    ])('throws InvalidTaskInputError naming the action for %s, and touches nothing', async (_case, event) => {
      const err = await failureOf(event);

      expect(err).toBeInstanceOf(InvalidTaskInputError);
      expect(err).toHaveProperty('name', 'InvalidTaskInputError');
      expect(err).toHaveProperty('message', expect.stringContaining('action:'));
      expect(err).toHaveProperty('message', expect.stringContaining("'prepare' | 'shift' | 'check'"));
      expectNothingSent();
    });

    it.each<[string, () => unknown, string]>([
      ['a plan with no steps', () => shiftEvent({ ...PLAN, steps: [] }), 'plan.steps:'],
      ['a plan whose 5xx limit is above 1', () => checkEvent({ ...PLAN, max5xxRate: 2 }), 'plan.max5xxRate:'],
      [
        'a plan without a listener',
        () => shiftEvent({ ...PLAN, listenerArn: undefined }),
        'plan.listenerArn:',
      ],
      [
        'a green target group that is not an ARN',
        () => shiftEvent({ ...PLAN, greenTargetGroupArn: 'sample-app-green' }),
        'plan.greenTargetGroupArn:',
      ],
      ['a shift without a plan', () => ({ ...shiftEvent(), plan: undefined }), 'plan: is required'],
      ['a percent over 100', () => ({ ...shiftEvent(), percent: 150 }), 'percent:'],
      ['a check without its start time', () => ({ ...checkEvent(), since: 'five minutes ago' }), 'since:'],
      [
        'a prepare without the provision result',
        () => ({ ...prepareEvent(), provision: undefined }),
        'provision: is required',
      ],
    ])(
      'throws InvalidTaskInputError naming the field for %s, and touches nothing',
      async (_case, event, field) => {
        const err = await failureOf(event());

        expect(err).toBeInstanceOf(InvalidTaskInputError);
        expect(err).toHaveProperty('message', expect.stringContaining(field));
        expectNothingSent();
      },
    );
  });
});
