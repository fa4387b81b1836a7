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
  type Action,
  type DescribeLoadBalancersCommandInput,
  type Listener,
  type LoadBalancer,
  type TargetHealthDescription,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { AuditRepository } from '../../shared/audit';
import { CanaryCheckFailedError } from '../../shared/errors';
import {
  checkCanary,
  prepareTraffic,
  restoreListener,
  shiftTraffic,
  type TrafficDeps,
  type TrafficInput,
  type TrafficPlan,
} from '../../shared/release/traffic';
import type { RunConfig } from '../../shared/run-config';
import { inCallOrder } from './support/call-order';
import {
  BUILD_ID,
  EXECUTION_ARN,
  RUN_CONFIG_PARAMETER,
  RUN_ID,
  RUN_REF,
  runConfigFixture,
} from './support/fixtures';

const elbMock = mockClient(ElasticLoadBalancingV2Client);
const cwMock = mockClient(CloudWatchClient);
const ssmMock = mockClient(SSMClient);
const dbMock = mockClient(DynamoDBDocumentClient);

const NOW = '2025-03-04T11:20:00.000Z';
const SHIFTED_AT = '2025-03-04T11:15:00.000Z';
const AUDIT = TEST_ENV.AUDIT_TABLE;
const SECRET = 'planted-secret-d41d8cd98f00';
const ELB_ARN = 'arn:aws:elasticloadbalancing:eu-west-1:123456789012';
const ALB_DNS = 'sample-app-dev-1234567890.eu-west-1.elb.amazonaws.com';
const LB_ARN = `${ELB_ARN}:loadbalancer/app/sample-app-dev/50dc6c495c0c9188`;
const HTTPS_LISTENER = `${ELB_ARN}:listener/app/sample-app-dev/50dc6c495c0c9188/f2f7dc8efc522ab2`;
const HTTP_LISTENER = `${ELB_ARN}:listener/app/sample-app-dev/50dc6c495c0c9188/0467ef3c8400ae65`;
const GREEN_TG = `${ELB_ARN}:targetgroup/sample-app-green/0123456789abcdef`;
const BLUE_TG = `${ELB_ARN}:targetgroup/sample-app-blue/73e2d6bc24d8a067`;
const OLDER_TG = `${ELB_ARN}:targetgroup/sample-app-older/9a8b7c6d5e4f3a2b`;

const deps: TrafficDeps = {
  elbv2: new ElasticLoadBalancingV2Client({}),
  cloudwatch: new CloudWatchClient({}),
  ssm: new SSMClient({}),
  audit: new AuditRepository(DynamoDBDocumentClient.from(new DynamoDBClient({})), AUDIT),
  now: () => new Date(NOW),
};

const prepareInput = (albDns = ALB_DNS): Extract<TrafficInput, { action: 'prepare' }> => ({
  action: 'prepare',
  run: { ...RUN_REF },
  runConfigParameter: RUN_CONFIG_PARAMETER,
  provision: {
    launchTemplateId: 'lt-0a1b2c3d4e5f60718',
    asgName: `sample-app-dev-${RUN_ID}`,
    targetGroupArn: GREEN_TG,
    albDns,
    terraformStateVersion: 'Vx1.c3RhdGUtdmVyc2lvbg',
  },
});

const plan = (overrides: Partial<TrafficPlan> = {}): TrafficPlan => ({
  listenerArn: HTTPS_LISTENER,
  loadBalancerArn: LB_ARN,
  greenTargetGroupArn: GREEN_TG,
  blueTargetGroupArn: BLUE_TG,
  steps: [10, 50, 100],
  soakSeconds: 300,
  max5xxRate: 0.01,
  ...overrides,
});

const shiftInput = (percent: number, trafficPlan = plan()): Extract<TrafficInput, { action: 'shift' }> => ({
  action: 'shift',
  run: { ...RUN_REF },
  plan: trafficPlan,
  percent,
});

const checkInput = (percent: number, trafficPlan = plan()): Extract<TrafficInput, { action: 'check' }> => ({
  action: 'check',
  run: { ...RUN_REF },
  plan: trafficPlan,
  percent,
  since: SHIFTED_AT,
});

/** A listener's default action forwarding to weighted target groups. */
const forwardTo = (...targetGroups: [string, number][]): Action[] => [
  {
    Type: 'forward',
    ForwardConfig: {
      TargetGroups: targetGroups.map(([TargetGroupArn, Weight]) => ({ TargetGroupArn, Weight })),
    },
  },
];

/** What Terraform's app layer leaves on the listener before any release: nothing to forward to. */
const FIXED_RESPONSE: Action[] = [
  {
    Type: 'fixed-response',
    FixedResponseConfig: { StatusCode: '503', ContentType: 'text/plain', MessageBody: 'no release yet' },
  },
];

const loadBalancer = (name: string, DNSName: string): LoadBalancer => ({
  LoadBalancerArn: `${ELB_ARN}:loadbalancer/app/${name}/0011223344556677`,
  LoadBalancerName: name,
  DNSName,
  Type: 'application',
});

const OURS: LoadBalancer = { ...loadBalancer('sample-app-dev', ALB_DNS), LoadBalancerArn: LB_ARN };

/** ELB's load balancers, in pages (NextMarker `page-<n>` leads to page n), and our ALB's listeners. */
/** The Marker of each DescribeLoadBalancers call, as sent (the SDK paginator reuses its input object). */
let markersSent: (string | undefined)[] = [];

const givenLoadBalancers = (...pages: LoadBalancer[][]): void => {
  markersSent = [];
  elbMock.on(DescribeLoadBalancersCommand).callsFake(async (req: DescribeLoadBalancersCommandInput) => {
    markersSent.push(req.Marker);
    const index = req.Marker ? Number(req.Marker.replace('page-', '')) : 0;
    return {
      LoadBalancers: pages[index] ?? [],
      ...(index + 1 < pages.length ? { NextMarker: `page-${index + 1}` } : {}),
    };
  });
};

const givenListeners = (...listeners: Listener[]): void => {
  elbMock.on(DescribeListenersCommand, { LoadBalancerArn: LB_ARN }).resolves({ Listeners: listeners });
};

const httpsListener = (DefaultActions: Action[]): Listener => ({
  ListenerArn: HTTPS_LISTENER,
  LoadBalancerArn: LB_ARN,
  Port: 443,
  Protocol: 'HTTPS',
  DefaultActions,
});

const httpListener = (DefaultActions: Action[]): Listener => ({
  ListenerArn: HTTP_LISTENER,
  LoadBalancerArn: LB_ARN,
  Port: 80,
  Protocol: 'HTTP',
  DefaultActions,
});

const givenRunConfig = (config: RunConfig = runConfigFixture()): void => {
  ssmMock.on(GetParameterCommand, { Name: RUN_CONFIG_PARAMETER }).resolves({
    Parameter: { Name: RUN_CONFIG_PARAMETER, Type: 'SecureString', Value: JSON.stringify(config) },
  });
};

const auditItems = (): Record<string, unknown>[] =>
  dbMock.commandCalls(PutCommand).map((call) => call.args[0].input.Item ?? {});

const target = (Id: string, State: string, Reason?: string): TargetHealthDescription => ({
  Target: { Id, Port: 8080 },
  TargetHealth: { State: State as 'healthy', ...(Reason ? { Reason: Reason as 'Target.Timeout' } : {}) },
});

const givenTargets = (...targets: TargetHealthDescription[]): void => {
  elbMock.on(DescribeTargetHealthCommand).resolves({ TargetHealthDescriptions: targets });
};

/** Green's ALB metrics since the shift: one Sum datapoint per minute, per metric. */
const givenMetrics = (errors: number[], requests: number[]): void => {
  const datapoints = (sums: number[]) =>
    sums.map((Sum, i) => ({
      Timestamp: new Date(Date.parse(SHIFTED_AT) + i * 60000),
      Sum,
      Unit: 'Count' as const,
    }));
  cwMock.on(GetMetricStatisticsCommand).callsFake(async (req: GetMetricStatisticsCommandInput) => ({
    Label: req.MetricName,
    Datapoints:
      req.MetricName === 'HTTPCode_Target_5XX_Count'
        ? datapoints(errors)
        : req.MetricName === 'RequestCount'
          ? datapoints(requests)
          : [],
  }));
};

/** Runs `fn` and returns what it threw (the test fails if it did not throw). */
const failureOf = async (fn: () => Promise<unknown>): Promise<unknown> => {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a failure');
};

beforeEach(() => {
  givenRunConfig();
  givenLoadBalancers([OURS]);
  givenListeners(httpsListener(forwardTo([BLUE_TG, 1])));
  elbMock.on(ModifyListenerCommand).resolves({});
  dbMock.on(PutCommand).resolves({});
});

afterEach(() => {
  elbMock.reset();
  cwMock.reset();
  ssmMock.reset();
  dbMock.reset();
});

describe('prepare traffic', () => {
  describe('finding the listener', () => {
    it("reads the decrypted run config and looks up the ALB's listeners", async () => {
      await prepareTraffic(prepareInput(), deps);

      expect(ssmMock).toHaveReceivedCommandWith(GetParameterCommand, {
        Name: RUN_CONFIG_PARAMETER,
        WithDecryption: true,
      });
      expect(elbMock).toHaveReceivedCommandWith(DescribeListenersCommand, { LoadBalancerArn: LB_ARN });
    });

    it('follows NextMarker through the pages of load balancers until the DNS name matches', async () => {
      givenLoadBalancers(
        [loadBalancer('billing-app-dev', 'billing-app-dev-1.eu-west-1.elb.amazonaws.com')],
        [loadBalancer('orders-dev', 'orders-dev-2.eu-west-1.elb.amazonaws.com')],
        [OURS],
        [loadBalancer('never-read', 'never-read-3.eu-west-1.elb.amazonaws.com')],
      );

      const output = await prepareTraffic(prepareInput(), deps);

      expect(output.loadBalancerArn).toBe(LB_ARN);
      expect(markersSent).toEqual([undefined, 'page-1', 'page-2']);
    });

    it('matches the DNS name whatever its case', async () => {
      givenLoadBalancers([{ ...OURS, DNSName: 'Sample-App-Dev-1234567890.eu-west-1.ELB.amazonaws.com' }]);

      const output = await prepareTraffic(prepareInput(), deps);

      expect(output.loadBalancerArn).toBe(LB_ARN);
    });

    it('prefers the HTTPS listener on 443 to the one on 80', async () => {
      givenListeners(httpListener(forwardTo([OLDER_TG, 1])), httpsListener(forwardTo([BLUE_TG, 1])));

      const output = await prepareTraffic(prepareInput(), deps);

      expect(output.listenerArn).toBe(HTTPS_LISTENER);
      expect(output.blueTargetGroupArn).toBe(BLUE_TG);
    });

    it('takes the only listener when none is on 443', async () => {
      givenListeners(httpListener(forwardTo([BLUE_TG, 1])));

      const output = await prepareTraffic(prepareInput(), deps);

      expect(output.listenerArn).toBe(HTTP_LISTENER);
    });

    it('throws CanaryCheckFailedError naming the DNS name when no load balancer answers to it, recording nothing', async () => {
      givenLoadBalancers(
        [loadBalancer('billing-app-dev', 'billing-app-dev-1.eu-west-1.elb.amazonaws.com')],
        [],
      );

      const err = await failureOf(() => prepareTraffic(prepareInput(), deps));

      expect(err).toBeInstanceOf(CanaryCheckFailedError);
      expect(err).toHaveProperty('name', 'CanaryCheckFailedError');
      expect(err).toHaveProperty('message', `no load balancer answers to ${ALB_DNS}`);
      expect(elbMock).toHaveReceivedCommandTimes(DescribeLoadBalancersCommand, 2);
      expect(elbMock).toHaveReceivedCommandTimes(DescribeListenersCommand, 0);
      expect(dbMock).toHaveReceivedCommandTimes(PutCommand, 0);
    });

    it('throws CanaryCheckFailedError naming the load balancer when it has no listener', async () => {
      givenListeners();

      const err = await failureOf(() => prepareTraffic(prepareInput(), deps));

      expect(err).toBeInstanceOf(CanaryCheckFailedError);
      expect(err).toHaveProperty('message', `load balancer ${LB_ARN} has no listener`);
      expect(dbMock).toHaveReceivedCommandTimes(PutCommand, 0);
    });
  });

  describe('choosing blue', () => {
    it.each<[string, Action[], string]>([
      ['the only target group the listener forwards to', forwardTo([BLUE_TG, 1]), BLUE_TG],
      ['the heaviest of several weighted target groups', forwardTo([OLDER_TG, 20], [BLUE_TG, 80]), BLUE_TG],
      [
        'a target group forwarded to without a ForwardConfig',
        [{ Type: 'forward', TargetGroupArn: BLUE_TG }],
        BLUE_TG,
      ],
      ['the heaviest target group other than green', forwardTo([GREEN_TG, 90], [BLUE_TG, 10]), BLUE_TG],
      ['a weighted target group, not one at weight 0', forwardTo([BLUE_TG, 0], [OLDER_TG, 5]), OLDER_TG],
    ])('takes %s as blue', async (_case, actions, blue) => {
      givenListeners(httpsListener(actions));

      const output = await prepareTraffic(prepareInput(), deps);

      expect(output.blueTargetGroupArn).toBe(blue);
    });

    it("plans the app's steps, soak time and 5xx limit when there is a blue to shift from", async () => {
      const config = runConfigFixture();
      config.app.traffic = { steps: [5, 25, 60, 100], soakSeconds: 120, max5xxRate: 0.05 };
      givenRunConfig(config);

      const output = await prepareTraffic(prepareInput(), deps);

      expect(output).toStrictEqual({
        listenerArn: HTTPS_LISTENER,
        loadBalancerArn: LB_ARN,
        greenTargetGroupArn: GREEN_TG,
        blueTargetGroupArn: BLUE_TG,
        steps: [5, 25, 60, 100],
        soakSeconds: 120,
        max5xxRate: 0.05,
      });
    });

    it.each<[string, Action[]]>([
      ['answers with a fixed response (the first release)', FIXED_RESPONSE],
      ['forwards only to green already', forwardTo([GREEN_TG, 1])],
      ['has no default action', []],
    ])('goes straight to 100 %% without a soak when the listener %s', async (_case, actions) => {
      givenListeners(httpsListener(actions));

      const output = await prepareTraffic(prepareInput(), deps);

      expect(output).toStrictEqual({
        listenerArn: HTTPS_LISTENER,
        loadBalancerArn: LB_ARN,
        greenTargetGroupArn: GREEN_TG,
        blueTargetGroupArn: null,
        steps: [100],
        soakSeconds: 0,
        max5xxRate: 0.01,
      });
    });
  });

  describe('remembering the listener', () => {
    it('records its current actions as a LISTENER_CHANGE resource of the run', async () => {
      const actions = forwardTo([OLDER_TG, 20], [BLUE_TG, 80]);
      givenListeners(httpsListener(actions));

      await prepareTraffic(prepareInput(), deps);

      expect(dbMock).toHaveReceivedCommandTimes(PutCommand, 1);
      expect(dbMock).toHaveReceivedCommandWith(PutCommand, {
        TableName: AUDIT,
        ConditionExpression: 'attribute_not_exists(pk)',
      });
      expect(auditItems()).toEqual([
        expect.objectContaining({
          pk: `RUN#${RUN_ID}`,
          sk: `RESOURCE#LISTENER_CHANGE#${HTTPS_LISTENER}#${RUN_ID}`,
          entity: 'RESOURCE',
          runId: RUN_ID,
          appId: 'sample-app',
          environment: 'dev',
          executionArn: EXECUTION_ARN,
          buildId: BUILD_ID,
          version: '1.4.2',
          resourceType: 'LISTENER_CHANGE',
          resourceId: `${HTTPS_LISTENER}#${RUN_ID}`,
          createdAt: NOW,
          detail: { listenerArn: HTTPS_LISTENER, previousActions: actions, blue: BLUE_TG, green: GREEN_TG },
        }),
      ]);
    });

    it("records a first release's fixed response with no blue", async () => {
      givenListeners(httpsListener(FIXED_RESPONSE));

      await prepareTraffic(prepareInput(), deps);

      expect(auditItems()[0]?.detail).toEqual({
        listenerArn: HTTPS_LISTENER,
        previousActions: FIXED_RESPONSE,
        blue: null,
        green: GREEN_TG,
      });
    });

    it('changes nothing on the listener itself', async () => {
      await prepareTraffic(prepareInput(), deps);

      expect(elbMock).toHaveReceivedCommandTimes(ModifyListenerCommand, 0);
    });

    it('keeps a secret in the run config out of the plan and the audit item', async () => {
      const config = runConfigFixture();
      config.app.bake.chefAttributes = { sample_app: { db_password: SECRET } };
      givenRunConfig(config);

      const output = await prepareTraffic(prepareInput(), deps);

      expect(JSON.stringify(output)).not.toContain(SECRET);
      expect(JSON.stringify(auditItems())).not.toContain(SECRET);
      expect(JSON.stringify(elbMock.calls().map((call) => call.args[0].input))).not.toContain(SECRET);
    });
  });
});

describe('shift traffic', () => {
  it('forwards the step to green and the rest to blue', async () => {
    await shiftTraffic(shiftInput(10), deps);

    expect(elbMock).toHaveReceivedCommandTimes(ModifyListenerCommand, 1);
    expect(elbMock.commandCalls(ModifyListenerCommand)[0]?.args[0].input).toEqual({
      ListenerArn: HTTPS_LISTENER,
      DefaultActions: forwardTo([GREEN_TG, 10], [BLUE_TG, 90]),
    });
  });

  it.each([50, 99])('weighs green %i and blue the rest', async (percent) => {
    await shiftTraffic(shiftInput(percent), deps);

    expect(elbMock).toHaveReceivedCommandWith(ModifyListenerCommand, {
      DefaultActions: forwardTo([GREEN_TG, percent], [BLUE_TG, 100 - percent]),
    });
  });

  it('forwards only to green at 100 %', async () => {
    await shiftTraffic(shiftInput(100), deps);

    expect(elbMock).toHaveReceivedCommandWith(ModifyListenerCommand, {
      ListenerArn: HTTPS_LISTENER,
      DefaultActions: forwardTo([GREEN_TG, 100]),
    });
  });

  it.each([100, 40])('forwards only to green at %i %% when there is no blue', async (percent) => {
    await shiftTraffic(shiftInput(percent, plan({ blueTargetGroupArn: null, steps: [100] })), deps);

    expect(elbMock).toHaveReceivedCommandWith(ModifyListenerCommand, {
      DefaultActions: forwardTo([GREEN_TG, percent]),
    });
  });

  it('records TRAFFIC_SHIFTED after the listener changed, keyed by the percent', async () => {
    await shiftTraffic(shiftInput(50), deps);

    expect(auditItems()).toEqual([
      {
        pk: `RUN#${RUN_ID}`,
        sk: `EVENT#${NOW}#TRAFFIC_SHIFTED#50`,
        entity: 'EVENT',
        runId: RUN_ID,
        type: 'TRAFFIC_SHIFTED',
        stage: 'PostProvision',
        at: NOW,
        id: '50',
        detail: { percent: 50, listenerArn: HTTPS_LISTENER, green: GREEN_TG, blue: BLUE_TG },
      },
    ]);
    expect(
      inCallOrder(elbMock.commandCalls(ModifyListenerCommand)[0], dbMock.commandCalls(PutCommand)[0]),
    ).toBe(true);
  });

  it('returns the percent and when it was shifted (the check measures from then)', async () => {
    await expect(shiftTraffic(shiftInput(10), deps)).resolves.toStrictEqual({ percent: 10, at: NOW });
  });

  it('records no shift when the listener could not be changed', async () => {
    elbMock.on(ModifyListenerCommand).rejects(new Error('listener is being modified'));

    await expect(shiftTraffic(shiftInput(10), deps)).rejects.toThrow('listener is being modified');

    expect(dbMock).toHaveReceivedCommandTimes(PutCommand, 0);
  });
});

describe('canary check', () => {
  beforeEach(() => {
    givenTargets(target('i-0a1b2c3d4e5f60718', 'healthy'), target('i-0b1c2d3e4f5a60819', 'healthy'));
    givenMetrics([0, 0, 1], [120, 140, 150]);
  });

  it("asks ELB for the health of green's targets", async () => {
    await checkCanary(checkInput(10), deps);

    expect(elbMock).toHaveReceivedCommandWith(DescribeTargetHealthCommand, { TargetGroupArn: GREEN_TG });
  });

  it("reads green's 5xx and request counts since the shift from the ALB metrics", async () => {
    await checkCanary(checkInput(10), deps);

    const query = (MetricName: string) => ({
      Namespace: 'AWS/ApplicationELB',
      MetricName,
      Dimensions: [
        { Name: 'TargetGroup', Value: 'targetgroup/sample-app-green/0123456789abcdef' },
        { Name: 'LoadBalancer', Value: 'app/sample-app-dev/50dc6c495c0c9188' },
      ],
      StartTime: new Date(SHIFTED_AT),
      EndTime: new Date(NOW),
      Period: 60,
      Statistics: ['Sum'],
    });
    expect(cwMock.commandCalls(GetMetricStatisticsCommand).map((call) => call.args[0].input)).toEqual([
      query('HTTPCode_Target_5XX_Count'),
      query('RequestCount'),
    ]);
  });

  it('passes with the summed counts when every target is healthy and the 5xx rate is within the limit', async () => {
    const output = await checkCanary(checkInput(10), deps);

    expect(output).toStrictEqual({ percent: 10, requests: 410, errors: 1 });
  });

  it('passes at exactly the limit', async () => {
    givenMetrics([1], [100]);

    await expect(checkCanary(checkInput(50), deps)).resolves.toStrictEqual({
      percent: 50,
      requests: 100,
      errors: 1,
    });
  });

  it('passes when green served no request since the shift', async () => {
    givenMetrics([], []);

    await expect(checkCanary(checkInput(10), deps)).resolves.toStrictEqual({
      percent: 10,
      requests: 0,
      errors: 0,
    });
  });

  it('passes when CloudWatch has no data for green yet', async () => {
    cwMock.on(GetMetricStatisticsCommand).resolves({});

    await expect(checkCanary(checkInput(10), deps)).resolves.toStrictEqual({
      percent: 10,
      requests: 0,
      errors: 0,
    });
  });

  it('throws CanaryCheckFailedError with the counts and percentages when the 5xx rate exceeds the limit', async () => {
    givenMetrics([3, 2], [100, 150]);

    const err = await failureOf(() => checkCanary(checkInput(50), deps));

    expect(err).toBeInstanceOf(CanaryCheckFailedError);
    expect(err).toHaveProperty('name', 'CanaryCheckFailedError');
    expect(err).toHaveProperty(
      'message',
      'at 50 %: green answered 5 of 250 requests with a 5xx (2.00 %, limit 1.00 %)',
    );
  });

  it("applies the plan's limit, so a 0 limit fails on one 5xx", async () => {
    givenMetrics([1], [1000]);

    const err = await failureOf(() => checkCanary(checkInput(10, plan({ max5xxRate: 0 })), deps));

    expect(err).toHaveProperty(
      'message',
      'at 10 %: green answered 1 of 1000 requests with a 5xx (0.10 %, limit 0.00 %)',
    );
  });

  it('throws CanaryCheckFailedError naming each unhealthy target and its state, without reading metrics', async () => {
    givenTargets(
      target('i-0a1b2c3d4e5f60718', 'healthy'),
      target('i-0b1c2d3e4f5a60819', 'unhealthy', 'Target.ResponseCodeMismatch'),
      target('i-0c1d2e3f4a5b60910', 'draining', 'Target.DeregistrationInProgress'),
    );

    const err = await failureOf(() => checkCanary(checkInput(10), deps));

    expect(err).toBeInstanceOf(CanaryCheckFailedError);
    expect(err).toHaveProperty(
      'message',
      'at 10 %: 2 of 3 green targets are not healthy (i-0b1c2d3e4f5a60819: unhealthy/Target.ResponseCodeMismatch, i-0c1d2e3f4a5b60910: draining/Target.DeregistrationInProgress)',
    );
    expect(cwMock).toHaveReceivedCommandTimes(GetMetricStatisticsCommand, 0);
  });

  it('counts a target still in its initial health check as not healthy', async () => {
    givenTargets(target('i-0a1b2c3d4e5f60718', 'initial', 'Elb.RegistrationInProgress'));

    const err = await failureOf(() => checkCanary(checkInput(10), deps));

    expect(err).toBeInstanceOf(CanaryCheckFailedError);
    expect(err).toHaveProperty(
      'message',
      expect.stringContaining('i-0a1b2c3d4e5f60718: initial/Elb.RegistrationInProgress'),
    );
  });

  it('throws CanaryCheckFailedError when green has no target at all', async () => {
    givenTargets();

    const err = await failureOf(() => checkCanary(checkInput(10), deps));

    expect(err).toBeInstanceOf(CanaryCheckFailedError);
    expect(err).toHaveProperty('message', expect.stringContaining('0 of 0 green targets'));
    expect(cwMock).toHaveReceivedCommandTimes(GetMetricStatisticsCommand, 0);
  });
});

describe('restore listener', () => {
  it('puts back exactly the actions it is given', async () => {
    const previous = forwardTo([OLDER_TG, 20], [BLUE_TG, 80]);

    await restoreListener(deps.elbv2, HTTPS_LISTENER, previous);

    expect(elbMock).toHaveReceivedCommandTimes(ModifyListenerCommand, 1);
    expect(elbMock.commandCalls(ModifyListenerCommand)[0]?.args[0].input).toEqual({
      ListenerArn: HTTPS_LISTENER,
      DefaultActions: previous,
    });
  });

  it('propagates an ELB failure so compensation can record it', async () => {
    elbMock.on(ModifyListenerCommand).rejects(new Error('listener is being modified'));

    await expect(restoreListener(deps.elbv2, HTTPS_LISTENER, FIXED_RESPONSE)).rejects.toThrow(
      'listener is being modified',
    );
  });
});
