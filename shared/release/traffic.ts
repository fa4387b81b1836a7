import { GetMetricStatisticsCommand, type CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import {
  DescribeListenersCommand,
  paginateDescribeLoadBalancers,
  DescribeTargetHealthCommand,
  ModifyListenerCommand,
  type Action,
  type ElasticLoadBalancingV2Client,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import * as z from 'zod';
import type { AuditRepository } from '../audit';
import { provisionResultSchema } from '../commands/contract';
import { CanaryCheckFailedError } from '../errors';
import { logger } from '../logger';
import { loadRunConfig } from '../run-config';
import { runRefSchema } from '../run-ref';

/** What PrepareTraffic hands to each shift step (via the state machine). */
export const trafficPlanSchema = z.object({
  listenerArn: z.string().startsWith('arn:'),
  loadBalancerArn: z.string().startsWith('arn:'),
  greenTargetGroupArn: z.string().startsWith('arn:'),
  blueTargetGroupArn: z.string().startsWith('arn:').nullable(),
  steps: z.array(z.number().int().min(1).max(100)).min(1),
  soakSeconds: z.number().int().min(0),
  max5xxRate: z.number().min(0).max(1),
});

export type TrafficPlan = z.infer<typeof trafficPlanSchema>;

export const trafficInputSchema = z.discriminatedUnion('action', [
  z.object({
    action: z.literal('prepare'),
    run: runRefSchema,
    runConfigParameter: z.string().startsWith('/ami-pipeline/'),
    provision: provisionResultSchema,
  }),
  z.object({
    action: z.literal('shift'),
    run: runRefSchema,
    plan: trafficPlanSchema,
    percent: z.number().int().min(1).max(100),
  }),
  z.object({
    action: z.literal('check'),
    run: runRefSchema,
    plan: trafficPlanSchema,
    percent: z.number().int().min(1).max(100),
    since: z.iso.datetime({ offset: true }),
  }),
]);

export type TrafficInput = z.infer<typeof trafficInputSchema>;

export interface TrafficDeps {
  elbv2: ElasticLoadBalancingV2Client;
  cloudwatch: CloudWatchClient;
  ssm: SSMClient;
  audit: AuditRepository;
  now: () => Date;
}

/** CloudWatch's ALB dimensions: `app/<name>/<id>` for the load balancer, `targetgroup/<name>/<id>` for a target group. */
const loadBalancerDimension = (arn: string): string =>
  arn.slice(arn.indexOf('loadbalancer/') + 'loadbalancer/'.length);
const targetGroupDimension = (arn: string): string => arn.slice(arn.indexOf('targetgroup/'));

const forwardTargets = (actions: Action[] | undefined) =>
  (actions ?? [])
    .filter((a) => a.Type === 'forward')
    .flatMap((a) =>
      a.ForwardConfig?.TargetGroups?.length
        ? a.ForwardConfig.TargetGroups.map((t) => ({ arn: t.TargetGroupArn ?? '', weight: t.Weight ?? 1 }))
        : a.TargetGroupArn
          ? [{ arn: a.TargetGroupArn, weight: 1 }]
          : [],
    );

/**
 * Finds the app's listener from the ALB's DNS name, takes the target group it forwards to today as
 * blue (none on an app's first release), and records the listener's current actions so a failure
 * can put them back exactly.
 */
export const prepareTraffic = async (
  input: Extract<TrafficInput, { action: 'prepare' }>,
  deps: TrafficDeps,
): Promise<TrafficPlan> => {
  const config = await loadRunConfig(deps.ssm, input.runConfigParameter);
  const loadBalancer = await findLoadBalancer(deps.elbv2, input.provision.albDns);
  const { Listeners = [] } = await deps.elbv2.send(
    new DescribeListenersCommand({ LoadBalancerArn: loadBalancer }),
  );
  const listener = [...Listeners].sort((a, b) => Number(b.Port === 443) - Number(a.Port === 443))[0];
  if (!listener?.ListenerArn)
    throw new CanaryCheckFailedError(`load balancer ${loadBalancer} has no listener`);
  const green = input.provision.targetGroupArn;
  const blue = forwardTargets(listener.DefaultActions)
    .filter((t) => t.arn !== green && t.weight > 0)
    .sort((a, b) => b.weight - a.weight)[0]?.arn;
  await deps.audit.recordResource({
    runId: input.run.runId,
    appId: input.run.appId,
    environment: input.run.environment,
    executionArn: input.run.executionArn,
    buildId: config.release.buildId,
    version: config.release.version,
    resourceType: 'LISTENER_CHANGE',
    resourceId: `${listener.ListenerArn}#${input.run.runId}`,
    createdAt: deps.now().toISOString(),
    detail: {
      listenerArn: listener.ListenerArn,
      previousActions: listener.DefaultActions ?? [],
      blue: blue ?? null,
      green,
    },
  });
  const { steps, soakSeconds, max5xxRate } = config.app.traffic;
  return {
    listenerArn: listener.ListenerArn,
    loadBalancerArn: loadBalancer,
    greenTargetGroupArn: green,
    blueTargetGroupArn: blue ?? null,
    // The first release has nothing to shift from: straight to 100 % after the smoke test.
    steps: blue ? steps : [100],
    soakSeconds: blue ? soakSeconds : 0,
    max5xxRate,
  };
};

/** Weighted forwarding: `percent` to green, the rest to blue. */
export const shiftTraffic = async (
  input: Extract<TrafficInput, { action: 'shift' }>,
  deps: TrafficDeps,
): Promise<{ percent: number; at: string }> => {
  const { plan, percent } = input;
  const targetGroups = [
    { TargetGroupArn: plan.greenTargetGroupArn, Weight: percent },
    ...(plan.blueTargetGroupArn && percent < 100
      ? [{ TargetGroupArn: plan.blueTargetGroupArn, Weight: 100 - percent }]
      : []),
  ];
  await deps.elbv2.send(
    new ModifyListenerCommand({
      ListenerArn: plan.listenerArn,
      DefaultActions: [{ Type: 'forward', ForwardConfig: { TargetGroups: targetGroups } }],
    }),
  );
  const at = deps.now().toISOString();
  await deps.audit.recordEvent({
    runId: input.run.runId,
    type: 'TRAFFIC_SHIFTED',
    stage: 'PostProvision',
    at,
    id: String(percent),
    detail: {
      percent,
      listenerArn: plan.listenerArn,
      green: plan.greenTargetGroupArn,
      blue: plan.blueTargetGroupArn,
    },
  });
  logger.info('traffic shifted', { percent });
  return { percent, at };
};

/**
 * The check between steps: every green target healthy, and green's 5xx share since the shift
 * within the app's limit (ALB metrics from CloudWatch). Throws CanaryCheckFailedError otherwise.
 */
export const checkCanary = async (
  input: Extract<TrafficInput, { action: 'check' }>,
  deps: TrafficDeps,
): Promise<{ percent: number; requests: number; errors: number }> => {
  const { plan } = input;
  const { TargetHealthDescriptions = [] } = await deps.elbv2.send(
    new DescribeTargetHealthCommand({ TargetGroupArn: plan.greenTargetGroupArn }),
  );
  const unhealthy = TargetHealthDescriptions.filter((t) => t.TargetHealth?.State !== 'healthy');
  if (TargetHealthDescriptions.length === 0 || unhealthy.length > 0) {
    throw new CanaryCheckFailedError(
      `at ${input.percent} %: ${unhealthy.length} of ${TargetHealthDescriptions.length} green targets are not healthy (${unhealthy
        .map((t) => `${t.Target?.Id}: ${t.TargetHealth?.State}/${t.TargetHealth?.Reason ?? ''}`)
        .join(', ')})`,
    );
  }
  const dimensions = [
    { Name: 'TargetGroup', Value: targetGroupDimension(plan.greenTargetGroupArn) },
    { Name: 'LoadBalancer', Value: loadBalancerDimension(plan.loadBalancerArn) },
  ];
  // GetMetricStatistics (no resource type in IAM) rather than GetMetricData, whose IAM action also
  // covers other CloudWatch data: the role can then be allowed exactly this read.
  const sum = async (MetricName: string): Promise<number> => {
    const { Datapoints = [] } = await deps.cloudwatch.send(
      new GetMetricStatisticsCommand({
        Namespace: 'AWS/ApplicationELB',
        MetricName,
        Dimensions: dimensions,
        StartTime: new Date(input.since),
        EndTime: deps.now(),
        Period: 60,
        Statistics: ['Sum'],
      }),
    );
    return Datapoints.reduce((total, point) => total + (point.Sum ?? 0), 0);
  };
  const errors = await sum('HTTPCode_Target_5XX_Count');
  const requests = await sum('RequestCount');
  if (requests > 0 && errors / requests > plan.max5xxRate) {
    throw new CanaryCheckFailedError(
      `at ${input.percent} %: green answered ${errors} of ${requests} requests with a 5xx (${((100 * errors) / requests).toFixed(2)} %, limit ${(100 * plan.max5xxRate).toFixed(2)} %)`,
    );
  }
  return { percent: input.percent, requests, errors };
};

const findLoadBalancer = async (elbv2: ElasticLoadBalancingV2Client, dnsName: string): Promise<string> => {
  for await (const page of paginateDescribeLoadBalancers({ client: elbv2 }, {})) {
    const found = page.LoadBalancers?.find((lb) => lb.DNSName?.toLowerCase() === dnsName.toLowerCase());
    if (found?.LoadBalancerArn) return found.LoadBalancerArn;
  }
  throw new CanaryCheckFailedError(`no load balancer answers to ${dnsName}`);
};

/** Puts a listener's actions back as PrepareTraffic found them (compensation). */
export const restoreListener = async (
  elbv2: ElasticLoadBalancingV2Client,
  listenerArn: string,
  previousActions: Action[],
): Promise<void> => {
  await elbv2.send(new ModifyListenerCommand({ ListenerArn: listenerArn, DefaultActions: previousActions }));
};
