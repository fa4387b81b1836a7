import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { appConfigSchema, type AppConfig } from '../../shared/config/app';
import { checkRules, loadRules, type Rules } from '../../shared/config/rules';
import { AppConfigInvalidError } from '../../shared/errors';
import { validateAppConfig } from '../../shared/pre-provision';
import { CONFIG_DIR, sampleAppConfig } from './support/fixtures';

const rules: Rules = loadRules(CONFIG_DIR);

/** sample-app.yml through the schema, with `change` applied to the parsed config. */
const sampleApp = (change: (app: AppConfig) => void = () => undefined): AppConfig => {
  const app = appConfigSchema.parse(sampleAppConfig());
  change(app);
  return app;
};

describe('platform rules', () => {
  it('load from config/rules.yml with an entry per environment', () => {
    expect(Object.keys(rules.environments)).toEqual(['dev', 'test', 'prod']);
    expect(rules.minLogRetentionDays).toBe(30);
    expect(rules.logGroupNamePrefix).toBe('/app/{appId}/');
  });

  it('allow sample-app in dev', () => {
    expect(checkRules(sampleApp(), rules, 'dev')).toEqual([]);
  });

  it('list every prod rule sample-app breaks', () => {
    expect(checkRules(sampleApp(), rules, 'prod')).toEqual([
      'runtime.instanceType: t3.small is not allowed in prod (allowed: m5.large, m5.xlarge, m6i.large, m6i.xlarge, c5.large)',
      'runtime.minSize: 1 is below the prod minimum of 2',
      'inspec.allowedFailedControls: 2 exceeds the prod limit of 0',
    ]);
  });

  it('name an environment that has no rules instead of allowing everything', () => {
    expect(checkRules(sampleApp(), rules, 'staging')).toEqual([
      'environment: "staging" has no rules in config/rules.yml (known: dev, test, prod)',
    ]);
  });

  it.each<[string, (app: AppConfig) => void, string]>([
    [
      'a bake instance type outside the platform list',
      (app) => (app.bake.instanceType = 'c5.large'),
      'bake.instanceType: c5.large is not allowed (allowed: t3.medium, t3.large, m5.large, m6i.large)',
    ],
    [
      'a runtime instance type outside the environment list',
      (app) => (app.runtime.instanceType = 'm5.large'),
      'runtime.instanceType: m5.large is not allowed in dev (allowed: t3.micro, t3.small, t3.medium)',
    ],
    [
      'a minimum size below the environment minimum',
      (app) => (app.runtime.minSize = 0),
      'runtime.minSize: 0 is below the dev minimum of 1',
    ],
    [
      'a maximum size above the environment maximum',
      (app) => (app.runtime.maxSize = 5),
      'runtime.maxSize: 5 is above the dev maximum of 4',
    ],
    [
      'a service the platform does not allow',
      (app) => (app.services = ['s3', 'ec2']),
      'services[1]: ec2 is not an allowed AWS service (allowed: s3, dynamodb, sqs, sns, kms, ssm, secretsmanager, cloudwatch, logs, xray)',
    ],
    [
      'a missing required tag',
      (app) => delete app.tags['cost-centre'],
      'tags.cost-centre: is required by platform rules',
    ],
    [
      'a tag value outside its allowed list',
      (app) => (app.tags['data-classification'] = 'secret'),
      'tags.data-classification: "secret" is not allowed (allowed: public, internal, confidential, restricted)',
    ],
    [
      'more allowed failed controls than the environment permits',
      (app) => (app.inspec.allowedFailedControls = 11),
      'inspec.allowedFailedControls: 11 exceeds the dev limit of 10',
    ],
    [
      'a log retention below the platform minimum',
      (app) =>
        (app.logGroups = [
          { name: '/app/sample-app/a', retentionDays: 90 },
          { name: '/app/sample-app/b', retentionDays: 14 },
        ]),
      'logGroups[1].retentionDays: 14 is below the platform minimum of 30',
    ],
    [
      "a log group outside the app's own /app/<appId>/ prefix",
      (app) => (app.logGroups = [{ name: '/aws/lambda/ami-pipeline-dev-trigger' }]),
      'logGroups[0].name: /aws/lambda/ami-pipeline-dev-trigger must start with /app/sample-app/ (platform rule logGroupNamePrefix: /app/{appId}/)',
    ],
    [
      "a log group under another app's prefix",
      (app) => (app.logGroups = [{ name: '/app/sample-app-2/application' }]),
      'logGroups[0].name: /app/sample-app-2/application must start with /app/sample-app/ (platform rule logGroupNamePrefix: /app/{appId}/)',
    ],
    [
      'a log group named as the prefix alone',
      (app) => (app.logGroups = [{ name: '/app/sample-app/' }]),
      'logGroups[0].name: /app/sample-app/ must start with /app/sample-app/ (platform rule logGroupNamePrefix: /app/{appId}/)',
    ],
  ])('report %s, naming the field and the rule', (_case, change, violation) => {
    const violations = checkRules(sampleApp(change), rules, 'dev');

    expect(violations).toEqual([violation]);
  });

  it('report each disallowed service separately', () => {
    const violations = checkRules(
      sampleApp((app) => (app.services = ['ec2', 'iam'])),
      rules,
      'dev',
    );

    expect(violations.map((v) => v.split(':')[0])).toEqual(['services[0]', 'services[1]']);
  });

  it('accept the boundaries of each limit', () => {
    const app = sampleApp((a) => {
      a.runtime.minSize = 1;
      a.runtime.maxSize = 4;
      a.inspec.allowedFailedControls = 10;
      a.logGroups = [{ name: '/app/sample-app/a', retentionDays: 30 }, { name: '/app/sample-app/b' }];
    });

    expect(checkRules(app, rules, 'dev')).toEqual([]);
  });

  it('list every violation at once rather than stopping at the first', () => {
    const app = sampleApp((a) => {
      a.bake.instanceType = 'c5.large';
      a.runtime.maxSize = 10;
      a.tags = {};
    });

    expect(checkRules(app, rules, 'dev')).toHaveLength(4);
  });

  describe('loadRules', () => {
    let dir: string;

    beforeEach(() => {
      dir = mkdtempSync(path.join(tmpdir(), 'ami-pipeline-rules-'));
    });

    afterEach(() => {
      rmSync(dir, { recursive: true, force: true });
    });

    it('refuses a rules file that breaks its schema, naming the field', () => {
      writeFileSync(
        path.join(dir, 'rules.yml'),
        'bakeInstanceTypes: []\nallowedServices: [s3]\nenvironments: {}\n',
      );

      expect(() => loadRules(dir)).toThrow(/bakeInstanceTypes: Too small/);
    });

    it('refuses a log group name prefix without {appId}: apps would share one namespace', () => {
      writeFileSync(
        path.join(dir, 'rules.yml'),
        'bakeInstanceTypes: [t3.medium]\nallowedServices: [s3]\nlogGroupNamePrefix: /app/\nenvironments: {}\n',
      );

      expect(() => loadRules(dir)).toThrow(
        /logGroupNamePrefix: must be a log group name prefix holding \{appId\}/,
      );
    });
  });
});

describe('app config validation', () => {
  it('returns sample-app parsed for a dev run', () => {
    const app = validateAppConfig(sampleAppConfig(), rules, 'sample-app', 'dev');

    expect(app).toEqual(sampleAppConfig());
  });

  it('refuses sample-app for a prod run with every violation prefixed appConfig.', () => {
    const validate = () => validateAppConfig(sampleAppConfig(), rules, 'sample-app', 'prod');

    expect(validate).toThrow(AppConfigInvalidError);
    expect(validate).toThrow(
      'app config rejected (3 violation(s)): appConfig.runtime.instanceType: t3.small is not allowed in prod',
    );
  });

  it('checks the schema before the rules, so a malformed config reports schema errors only', () => {
    const config = { ...sampleAppConfig(), bake: { instanceType: 'huge' } };

    const validate = () => validateAppConfig(config, rules, 'sample-app', 'dev');

    expect(validate).toThrow(
      expect.objectContaining({
        violations: [
          'appConfig.bake.instanceType: must be an EC2 instance type such as t3.medium',
          'appConfig.bake.chefRunList: is required (array)',
        ],
      }),
    );
  });

  it('puts the appId mismatch first, ahead of the rule violations', () => {
    const config = { ...sampleAppConfig(), appId: 'billing-app' };

    const validate = () => validateAppConfig(config, rules, 'sample-app', 'prod');

    expect(validate).toThrow(
      expect.objectContaining({
        violations: [
          'appConfig.appId: "billing-app" does not match the trigger\'s appId "sample-app"',
          'appConfig.runtime.instanceType: t3.small is not allowed in prod (allowed: m5.large, m5.xlarge, m6i.large, m6i.xlarge, c5.large)',
          'appConfig.runtime.minSize: 1 is below the prod minimum of 2',
          'appConfig.inspec.allowedFailedControls: 2 exceeds the prod limit of 0',
          // Checked against the config's own appId: its groups are still named for sample-app.
          'appConfig.logGroups[0].name: /app/sample-app/application must start with /app/billing-app/ (platform rule logGroupNamePrefix: /app/{appId}/)',
        ],
      }),
    );
  });
});
