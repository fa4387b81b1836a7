import { provisionResultSchema, validateResultSchema } from '../../shared/commands/contract';

/** A provision result.json as the release layer's Terraform writes it, with `albDns` replaced. */
const provisionResult = (albDns: string, terraformStateVersion = 'Vx1.c3RhdGUtdmVyc2lvbg') => ({
  launchTemplateId: 'lt-0a1b2c3d4e5f60718',
  asgName: 'sample-app-dev-0123456789abcdef0123',
  targetGroupArn:
    'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/sample-app-green/0123456789abcdef',
  albDns,
  terraformStateVersion,
});

const ALB_DNS = 'sample-app-dev-1234567890.eu-west-1.elb.amazonaws.com';
const REPORT_KEY = 'dev/sample-app/a1b2c3d4e5f60718293a/validate/inspec-report.json';

/** The fields of `issues` that failed, as dotted paths. */
const failedFields = (parsed: { success: boolean; error?: { issues: { path: PropertyKey[] }[] } }) =>
  parsed.error?.issues.map((issue) => issue.path.join('.'));

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

describe('provision result terraformStateVersion', () => {
  it('accepts an S3 version id, as provision.sh reads it from head-object', () => {
    const parsed = provisionResultSchema.safeParse(
      provisionResult(ALB_DNS, 'Qx3sL4kqtJlcpXroDTDmJ.rmSpXd3dIb'),
    );

    expect(parsed.success).toBe(true);
  });

  it.each([
    ['a command substitution', '$(touch /tmp/x)'],
    ['a newline', 'v1\nv2'],
    ['a space', 'v1 v2'],
    ['an empty string', ''],
    ['1025 characters', 'v'.repeat(1025)],
  ])('rejects %s, naming the field', (_case, version) => {
    const parsed = provisionResultSchema.safeParse(provisionResult(ALB_DNS, version));

    expect(parsed.success).toBe(false);
    expect(failedFields(parsed)).toEqual(['terraformStateVersion']);
  });
});

describe('validate result reportKey', () => {
  const validateResult = (reportKey: string) => ({ passed: 117, failed: 0, skipped: 3, reportKey });

  it("accepts the key validate.sh writes under the run's result prefix", () => {
    expect(validateResultSchema.safeParse(validateResult(REPORT_KEY)).success).toBe(true);
  });

  it.each([
    ['a ".." segment into another app', 'dev/sample-app/x/validate/../../../other-app/inspec-report.json'],
    ['a "." segment', 'dev/./inspec-report.json'],
    ['a single quote', "dev/x/inspec-report.json'"],
    ['a command substitution', '$(id)/inspec-report.json'],
    ['a newline', 'dev/x\ninspec-report.json'],
    ['a leading slash', '/dev/x/inspec-report.json'],
    ['an empty segment', 'dev//inspec-report.json'],
    ['more than 1024 characters', `dev/${'k'.repeat(1030)}`],
  ])('rejects %s, naming the field', (_case, reportKey) => {
    const parsed = validateResultSchema.safeParse(validateResult(reportKey));

    expect(parsed.success).toBe(false);
    expect(new Set(failedFields(parsed))).toEqual(new Set(['reportKey']));
  });
});
