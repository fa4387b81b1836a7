import { appConfigSchema } from '../../shared/config/app';
import { loadRules } from '../../shared/config/rules';
import { AppConfigInvalidError } from '../../shared/errors';
import { validateAppConfig } from '../../shared/pre-provision';
import { describeIssues } from '../../shared/validation';
import { CONFIG_DIR, sampleAppConfig } from './support/fixtures';

/** sample-app.yml with its traffic block replaced (or removed, for `undefined`). */
const withTraffic = (traffic: unknown): Record<string, unknown> => {
  const config = sampleAppConfig();
  if (traffic === undefined) delete config.traffic;
  else config.traffic = traffic;
  return config;
};

/** The schema's issues for `config`, as `field: rule` lines (empty when it parses). */
const issuesOf = (config: unknown): string[] => {
  const parsed = appConfigSchema.safeParse(config);
  return parsed.success ? [] : describeIssues(parsed.error);
};

describe('app config traffic block', () => {
  it('reads the steps, soak time and 5xx limit sample-app sets', () => {
    const app = appConfigSchema.parse(sampleAppConfig());

    expect(app.traffic).toEqual({ steps: [10, 50, 100], soakSeconds: 300, max5xxRate: 0.01 });
  });

  it('shifts 10, 50, 100 % with a 5 minute soak and a 1 % 5xx limit when the app leaves it out', () => {
    const app = appConfigSchema.parse(withTraffic(undefined));

    expect(app.traffic).toEqual({ steps: [10, 50, 100], soakSeconds: 300, max5xxRate: 0.01 });
  });

  it.each<[string, Record<string, unknown>]>([
    ['a single step straight to 100 %', { steps: [100], soakSeconds: 0, max5xxRate: 0 }],
    [
      'ten steps and an hour of soak',
      { steps: [1, 2, 5, 10, 20, 30, 50, 70, 90, 100], soakSeconds: 3600, max5xxRate: 1 },
    ],
  ])('accepts %s', (_case, traffic) => {
    expect(issuesOf(withTraffic(traffic))).toEqual([]);
  });

  it.each<[string, Record<string, unknown>, string[]]>([
    [
      'steps that stop short of 100 %',
      { steps: [10, 50], soakSeconds: 300, max5xxRate: 0.01 },
      ['traffic.steps: the last step must be 100'],
    ],
    [
      'steps that go back down',
      { steps: [50, 10, 100], soakSeconds: 300, max5xxRate: 0.01 },
      ['traffic.steps: steps must increase'],
    ],
    [
      'a step repeated',
      { steps: [50, 50, 100], soakSeconds: 300, max5xxRate: 0.01 },
      ['traffic.steps: steps must increase'],
    ],
    [
      'no step at all',
      { steps: [], soakSeconds: 300, max5xxRate: 0.01 },
      [
        'traffic.steps: Too small: expected array to have >=1 items',
        'traffic.steps: the last step must be 100',
      ],
    ],
    [
      'more than ten steps',
      { steps: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 100], soakSeconds: 300, max5xxRate: 0.01 },
      ['traffic.steps: Too big: expected array to have <=10 items'],
    ],
    [
      'a step of 0 %',
      { steps: [0, 100], soakSeconds: 300, max5xxRate: 0.01 },
      ['traffic.steps.0: Too small: expected number to be >=1'],
    ],
    [
      'a fractional step',
      { steps: [12.5, 100], soakSeconds: 300, max5xxRate: 0.01 },
      ['traffic.steps.0: Invalid input: expected int, received number'],
    ],
    [
      'a soak over an hour',
      { steps: [10, 100], soakSeconds: 3601, max5xxRate: 0.01 },
      ['traffic.soakSeconds: Too big: expected number to be <=3600'],
    ],
    [
      'a 5xx limit above 1',
      { steps: [10, 100], soakSeconds: 300, max5xxRate: 1.5 },
      ['traffic.max5xxRate: Too big: expected number to be <=1'],
    ],
    [
      'a negative 5xx limit',
      { steps: [10, 100], soakSeconds: 300, max5xxRate: -0.1 },
      ['traffic.max5xxRate: Too small: expected number to be >=0'],
    ],
    [
      'a block without its soak time',
      { steps: [10, 100], max5xxRate: 0.01 },
      ['traffic.soakSeconds: is required (number)'],
    ],
    [
      'an unknown traffic setting',
      { steps: [10, 100], soakSeconds: 300, max5xxRate: 0.01, rollback: 'auto' },
      ['traffic: unknown field(s) "rollback" (not in schemaVersion 1)'],
    ],
  ])('rejects %s, naming the field and the rule', (_case, traffic, issues) => {
    expect(issuesOf(withTraffic(traffic))).toEqual(issues);
  });

  it('reports a bad traffic block in the AppConfigInvalidError pre-provision raises, prefixed appConfig.', () => {
    const config = withTraffic({ steps: [10, 50], soakSeconds: 300, max5xxRate: 0.01 });

    const validate = () => validateAppConfig(config, loadRules(CONFIG_DIR), 'sample-app', 'dev');

    expect(validate).toThrow(AppConfigInvalidError);
    expect(validate).toThrow(
      expect.objectContaining({ violations: ['appConfig.traffic.steps: the last step must be 100'] }),
    );
  });
});

describe('app config log groups', () => {
  const withLogGroups = (logGroups: unknown): Record<string, unknown> => ({
    ...sampleAppConfig(),
    logGroups,
  });

  it('accepts the retention periods CloudWatch Logs offers', () => {
    expect(
      issuesOf(
        withLogGroups([
          { name: '/app/sample-app/a', retentionDays: 30 },
          { name: '/app/sample-app/b', retentionDays: 3653 },
          { name: '/app/sample-app/c' },
        ]),
      ),
    ).toEqual([]);
  });

  it('rejects a retention CloudWatch Logs would refuse, before anything is built', () => {
    const issues = issuesOf(withLogGroups([{ name: '/app/sample-app/a', retentionDays: 45 }]));

    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatch(
      /^logGroups\.0\.retentionDays: must be a retention CloudWatch Logs accepts \(1, 3, 5, /,
    );
  });
});

describe('app config InSpec profiles', () => {
  const withProfiles = (profiles: unknown): Record<string, unknown> => {
    const config = sampleAppConfig();
    config.inspec = { profiles, allowedFailedControls: 0 };
    return config;
  };

  it('accepts profile names and relative paths below the profile folders', () => {
    expect(issuesOf(withProfiles(['baseline', 'vendor/cis-level1', 'sample_app.baseline-2']))).toEqual([]);
  });

  it.each([
    ['a ".." segment', '../../../../tmp/evil-profile', 'must not contain "." or ".." path segments'],
    ['a ".." segment in the middle', 'vendor/../../etc', 'must not contain "." or ".." path segments'],
    ['a "." segment', './baseline', 'must not contain "." or ".." path segments'],
    ['an absolute path', '/etc/evil-profile', 'must be a profile name or relative path'],
    ['an empty segment', 'vendor//baseline', 'must be a profile name or relative path'],
    ['a trailing slash', 'baseline/', 'must be a profile name or relative path'],
  ])('rejects %s, as validate.sh would only once the stack is built', (_case, profile, rule) => {
    const issues = issuesOf(withProfiles([profile]));

    expect(issues).toHaveLength(1);
    expect(issues[0]).toContain(`inspec.profiles.0: ${rule}`);
  });
});

describe('app config health check path', () => {
  const withPath = (healthCheckPath: string): Record<string, unknown> => {
    const config = sampleAppConfig();
    config.runtime = { ...(config.runtime as object), healthCheckPath };
    return config;
  };

  it('accepts "/" and paths of up to 256 characters, the provision script’s limit', () => {
    expect(issuesOf(withPath('/'))).toEqual([]);
    expect(issuesOf(withPath(`/${'a'.repeat(255)}`))).toEqual([]);
  });

  it.each([
    ['257 characters', `/${'a'.repeat(256)}`],
    ['a command substitution', '/health$(id)'],
    ['a relative path', 'health'],
  ])('rejects %s, naming the field', (_case, healthCheckPath) => {
    expect(issuesOf(withPath(healthCheckPath))).toEqual([
      'runtime.healthCheckPath: must be an absolute URL path of at most 256 characters [A-Za-z0-9._~/-]',
    ]);
  });
});
