import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type {
  Action,
  DescribeListenersCommandInput,
  DescribeTargetHealthCommandInput,
  ModifyListenerCommandInput,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import type { GetMetricStatisticsCommandInput } from '@aws-sdk/client-cloudwatch';

const hex = (n: number) => randomBytes(n).toString('hex').slice(0, n);

/** How an app's green release behaves behind the ALB. */
export interface ReleaseScenario {
  /** The health check through the ALB answers this status (default: the app's expected status). */
  smokeStatus?: number;
  /** From this traffic step on, green answers 5xx to this share of its requests. */
  errorsFromPercent?: number;
  errorRate?: number;
  /** From this traffic step on, green's targets turn unhealthy. */
  unhealthyFromPercent?: number;
}

interface SimLoadBalancer {
  appId: string;
  arn: string;
  dnsName: string;
  server: Server;
  listener: { arn: string; port: number; defaultActions: Action[] };
}

interface SimTargetGroup {
  arn: string;
  appId: string;
  runId: string;
  healthCheckPath: string;
  healthyStatus: number;
}

/**
 * Elastic Load Balancing and the ALB metrics in CloudWatch, for the blue-green stage. Each app's
 * ALB is a real HTTP server on 127.0.0.1 (its "DNS name" is host:port), so the smoke test makes a
 * real request; the header the release's listener rule matches routes it to that release's target
 * group. Listener weights, target health and 5xx counts are state the tests can read.
 */
export class ElbSim {
  readonly loadBalancers = new Map<string, SimLoadBalancer>();
  readonly targetGroups = new Map<string, SimTargetGroup>();
  private readonly scenarios = new Map<string, ReleaseScenario>();

  constructor(
    private readonly region: string,
    private readonly accountId: string,
  ) {}

  setScenario(appId: string, scenario: ReleaseScenario): void {
    this.scenarios.set(appId, scenario);
  }

  /** What Terraform's app layer makes once per app: an ALB with a listener that forwards nowhere yet. */
  async ensureLoadBalancer(appId: string): Promise<SimLoadBalancer> {
    const existing = this.loadBalancers.get(appId);
    if (existing) return existing;
    const server = createServer((req, res) => {
      const runId = String(req.headers['x-ami-pipeline-run'] ?? '');
      const tg = [...this.targetGroups.values()].find((t) => t.appId === appId && t.runId === runId);
      const status = !tg
        ? 404
        : req.url !== tg.healthCheckPath
          ? 404
          : (this.scenarios.get(appId)?.smokeStatus ?? tg.healthyStatus);
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(status < 400 ? 'ok' : 'unavailable');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const id = hex(16);
    const name = `${appId}`.slice(0, 24);
    const lb: SimLoadBalancer = {
      appId,
      arn: `arn:aws:elasticloadbalancing:${this.region}:${this.accountId}:loadbalancer/app/${name}/${id}`,
      dnsName: `127.0.0.1:${(server.address() as AddressInfo).port}`,
      server,
      listener: {
        arn: `arn:aws:elasticloadbalancing:${this.region}:${this.accountId}:listener/app/${name}/${id}/${hex(16)}`,
        port: 80,
        defaultActions: [{ Type: 'fixed-response', FixedResponseConfig: { StatusCode: '503' } }],
      },
    };
    this.loadBalancers.set(appId, lb);
    return lb;
  }

  /** The release layer's target group, its targets healthy once registered. */
  createTargetGroup(appId: string, runId: string, healthCheckPath: string, healthyStatus: number): string {
    const arn = `arn:aws:elasticloadbalancing:${this.region}:${this.accountId}:targetgroup/${appId.slice(0, 20)}-${runId.slice(0, 8)}/${hex(16)}`;
    this.targetGroups.set(arn, { arn, appId, runId, healthCheckPath, healthyStatus });
    return arn;
  }

  deleteTargetGroup(arn: string): void {
    const inUse = [...this.loadBalancers.values()].some((lb) => this.weights(lb.appId)[arn] !== undefined);
    if (inUse)
      throw Object.assign(new Error(`target group ${arn} is in use by a listener`), {
        name: 'ResourceInUse',
      });
    this.targetGroups.delete(arn);
  }

  /** Target group ARN → weight, as the app's listener forwards now. */
  weights(appId: string): Record<string, number> {
    const lb = this.loadBalancers.get(appId);
    const forward = lb?.listener.defaultActions.find((a) => a.Type === 'forward');
    return Object.fromEntries(
      (forward?.ForwardConfig?.TargetGroups ?? []).map((t) => [t.TargetGroupArn ?? '', t.Weight ?? 0]),
    );
  }

  describeLoadBalancers() {
    return {
      LoadBalancers: [...this.loadBalancers.values()].map((lb) => ({
        LoadBalancerArn: lb.arn,
        DNSName: lb.dnsName,
        Type: 'application' as const,
      })),
      $metadata: {},
    };
  }

  describeListeners(input: DescribeListenersCommandInput) {
    const lb = [...this.loadBalancers.values()].find((l) => l.arn === input.LoadBalancerArn);
    if (!lb) throw Object.assign(new Error('load balancer not found'), { name: 'LoadBalancerNotFound' });
    return {
      Listeners: [
        {
          ListenerArn: lb.listener.arn,
          LoadBalancerArn: lb.arn,
          Port: lb.listener.port,
          Protocol: 'HTTP' as const,
          DefaultActions: structuredClone(lb.listener.defaultActions),
        },
      ],
      $metadata: {},
    };
  }

  modifyListener(input: ModifyListenerCommandInput) {
    const lb = [...this.loadBalancers.values()].find((l) => l.listener.arn === input.ListenerArn);
    if (!lb) throw Object.assign(new Error('listener not found'), { name: 'ListenerNotFound' });
    for (const action of input.DefaultActions ?? []) {
      for (const t of action.ForwardConfig?.TargetGroups ?? []) {
        if (!this.targetGroups.has(t.TargetGroupArn ?? '')) {
          throw Object.assign(new Error(`target group ${t.TargetGroupArn} not found`), {
            name: 'TargetGroupNotFound',
          });
        }
      }
    }
    lb.listener.defaultActions = structuredClone(input.DefaultActions ?? []);
    return { Listeners: [], $metadata: {} };
  }

  describeTargetHealth(input: DescribeTargetHealthCommandInput) {
    const tg = this.targetGroups.get(input.TargetGroupArn ?? '');
    if (!tg) throw Object.assign(new Error('target group not found'), { name: 'TargetGroupNotFound' });
    const scenario = this.scenarios.get(tg.appId);
    const weight = this.weights(tg.appId)[tg.arn] ?? 0;
    const unhealthy = scenario?.unhealthyFromPercent !== undefined && weight >= scenario.unhealthyFromPercent;
    return {
      TargetHealthDescriptions: ['i-0aa1', 'i-0bb2'].map((id) => ({
        Target: { Id: `${id}${tg.runId.slice(0, 8)}`, Port: 8080 },
        TargetHealth: unhealthy
          ? { State: 'unhealthy' as const, Reason: 'Target.FailedHealthChecks' as const }
          : { State: 'healthy' as const },
      })),
      $metadata: {},
    };
  }

  /** ALB metrics for a target group: 10 requests per percent of traffic, 5xx as the scenario says. */
  getMetricStatistics(input: GetMetricStatisticsCommandInput) {
    const tgDimension = input.Dimensions?.find((d) => d.Name === 'TargetGroup')?.Value ?? '';
    const tg = [...this.targetGroups.values()].find((t) => t.arn.endsWith(tgDimension));
    const scenario = tg ? this.scenarios.get(tg.appId) : undefined;
    const weight = tg ? (this.weights(tg.appId)[tg.arn] ?? 0) : 0;
    const requests = 10 * weight;
    const failing = scenario?.errorsFromPercent !== undefined && weight >= scenario.errorsFromPercent;
    const errors = failing ? Math.round(requests * (scenario?.errorRate ?? 0.2)) : 0;
    const value = input.MetricName === 'RequestCount' ? requests : errors;
    return {
      Label: input.MetricName,
      Datapoints: [{ Timestamp: new Date(), Sum: value, Unit: 'Count' as const }],
      $metadata: {},
    };
  }

  async stop(): Promise<void> {
    await Promise.all(
      [...this.loadBalancers.values()].map(
        (lb) => new Promise<void>((resolve) => lb.server.close(() => resolve())),
      ),
    );
  }
}
