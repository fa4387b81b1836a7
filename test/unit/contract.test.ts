import { provisionResultSchema } from '../../shared/commands/contract';

/** A provision result.json as the release layer's Terraform writes it, with `albDns` replaced. */
const provisionResult = (albDns: string) => ({
  launchTemplateId: 'lt-0a1b2c3d4e5f60718',
  asgName: 'sample-app-dev-0123456789abcdef0123',
  targetGroupArn:
    'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/sample-app-green/0123456789abcdef',
  albDns,
  terraformStateVersion: 'Vx1.c3RhdGUtdmVyc2lvbg',
});

describe('provision result contract', () => {
  it.each([
    ['an ALB DNS name', 'sample-app-dev-1234567890.eu-west-1.elb.amazonaws.com'],
    ['a DNS name with a port', 'sample-app-dev-1234567890.eu-west-1.elb.amazonaws.com:8443'],
    ['an address with a port (the local ALB stand-in)', '127.0.0.1:49152'],
  ])('accepts %s as albDns', (_case, albDns) => {
    expect(provisionResultSchema.safeParse(provisionResult(albDns)).success).toBe(true);
  });

  it.each([
    ['a URL with a scheme', 'http://sample-app.elb.amazonaws.com'],
    ['a host with a path', 'sample-app.elb.amazonaws.com/health'],
    ['an empty port', 'sample-app.elb.amazonaws.com:'],
    ['a port of six digits', 'sample-app.elb.amazonaws.com:123456'],
    ['a port that is not a number', 'sample-app.elb.amazonaws.com:https'],
    ['two ports', 'sample-app.elb.amazonaws.com:80:443'],
    ['an empty name', ''],
    ['shell text', 'alb.example.com;curl evil'],
  ])('rejects %s as albDns, naming the field', (_case, albDns) => {
    const parsed = provisionResultSchema.safeParse(provisionResult(albDns));

    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues.map((issue) => issue.path.join('.'))).toEqual(['albDns']);
  });
});
