import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { ConfigurationError } from '../../shared/errors';
import {
  checkedStageConfigSchema,
  longestRunSeconds,
  stageConfigFromEnv,
  stageConfigSchema,
} from '../../shared/config/stage';
import { loadStageConfig } from '../../shared/config/stage-file';
import { CONFIG_DIR } from './support/fixtures';

/** A complete, valid stage file for `stage`, with `overrides` merged on top. */
const stageFile = (stage: string, overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  stage,
  region: 'eu-west-1',
  logLevel: 'INFO',
  logRetentionDays: 30,
  kms: { pendingWindowDays: 30 },
  trigger: { maxMessageBytes: 65536 },
  lock: { ttlSeconds: 86400 },
  stateMachine: { logLevel: 'ERROR' },
  builder: { targets: { instanceIds: ['i-0123456789abcdef0'] } },
  commands: {
    bake: { timeoutSeconds: 10800 },
    provision: { timeoutSeconds: 7200 },
    validate: { timeoutSeconds: 3600 },
    heartbeatSeconds: 1200,
  },
  audit: { deletionProtection: true },
  ...overrides,
});

let dir: string;

const writeStage = (name: string, content: Record<string, unknown> | string): void => {
  writeFileSync(path.join(dir, `${name}.yml`), typeof content === 'string' ? content : stringify(content));
};

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'ami-pipeline-stage-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('stage config', () => {
  it('loads config/dev.yml and validates it', () => {
    const dev = loadStageConfig('dev', CONFIG_DIR);

    expect(dev).toEqual({
      stage: 'dev',
      region: 'eu-west-1',
      logLevel: 'DEBUG',
      logRetentionDays: 30,
      kms: { pendingWindowDays: 7 },
      trigger: { maxMessageBytes: 65536 },
      lock: { ttlSeconds: 86400 },
      stateMachine: { logLevel: 'ALL' },
      builder: { targets: { tag: { key: 'ami-pipeline:builder', value: 'dev' } } },
      commands: {
        bake: { timeoutSeconds: 10800 },
        provision: { timeoutSeconds: 7200 },
        validate: { timeoutSeconds: 3600 },
        heartbeatSeconds: 1200,
      },
      release: { decommissionAfterSeconds: 3600, smokeTestAttempts: 6, smokeTestFirstDelayMs: 2000 },
      audit: { deletionProtection: true },
      approval: { required: false, timeoutSeconds: 3600 },
      distribution: { maxConcurrentCopies: 5, copyWaitSeconds: 780, copyRetries: 2, regions: {} },
    });
  });

  it('loads config/prod.yml and validates it', () => {
    const prod = loadStageConfig('prod', CONFIG_DIR);

    expect(prod).toEqual({
      stage: 'prod',
      region: 'eu-west-1',
      logLevel: 'INFO',
      logRetentionDays: 400,
      kms: { pendingWindowDays: 30 },
      trigger: { maxMessageBytes: 65536 },
      lock: { ttlSeconds: 172800 },
      stateMachine: { logLevel: 'ERROR' },
      builder: { targets: { tag: { key: 'ami-pipeline:builder', value: 'prod' } } },
      commands: {
        bake: { timeoutSeconds: 21600 },
        provision: { timeoutSeconds: 7200 },
        validate: { timeoutSeconds: 3600 },
        heartbeatSeconds: 1200,
      },
      release: { decommissionAfterSeconds: 86400, smokeTestAttempts: 6, smokeTestFirstDelayMs: 2000 },
      audit: { deletionProtection: true },
      approval: { required: true, timeoutSeconds: 86400 },
      distribution: { maxConcurrentCopies: 5, copyWaitSeconds: 780, copyRetries: 2, regions: {} },
    });
  });

  it('refuses a stage file whose stage differs from its name', () => {
    writeStage('staging', stageFile('dev'));

    expect(() => loadStageConfig('staging', dir)).toThrow(ConfigurationError);
    expect(() => loadStageConfig('staging', dir)).toThrow(
      'config/staging.yml declares stage "dev"; it must be "staging"',
    );
  });

  it('fills the defaults of settings a stage leaves out', () => {
    writeStage(
      'qa',
      stageFile('qa', { logLevel: undefined, kms: {}, trigger: {}, lock: {}, stateMachine: {}, audit: {} }),
    );

    const qa = loadStageConfig('qa', dir);

    expect(qa).toMatchObject({
      logLevel: 'INFO',
      kms: { pendingWindowDays: 30 },
      trigger: { maxMessageBytes: 65536 },
      lock: { ttlSeconds: 86400 },
      stateMachine: { logLevel: 'ERROR' },
      audit: { deletionProtection: true },
    });
  });

  it('keeps the previous release a day and smoke-tests 6 times from 2 s when a stage has no release block', () => {
    writeStage('qa', stageFile('qa'));

    expect(loadStageConfig('qa', dir).release).toEqual({
      decommissionAfterSeconds: 86400,
      smokeTestAttempts: 6,
      smokeTestFirstDelayMs: 2000,
    });
  });

  it('accepts decommissioning the previous release at once', () => {
    writeStage(
      'qa',
      stageFile('qa', {
        release: { decommissionAfterSeconds: 0, smokeTestAttempts: 1, smokeTestFirstDelayMs: 0 },
      }),
    );

    expect(loadStageConfig('qa', dir).release).toEqual({
      decommissionAfterSeconds: 0,
      smokeTestAttempts: 1,
      smokeTestFirstDelayMs: 0,
    });
  });

  it('accepts builders chosen by tag as well as by instance id', () => {
    writeStage(
      'qa',
      stageFile('qa', { builder: { targets: { tag: { key: 'ami-pipeline:builder', value: 'qa' } } } }),
    );

    expect(loadStageConfig('qa', dir).builder).toEqual({
      targets: { tag: { key: 'ami-pipeline:builder', value: 'qa' } },
    });
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['a stage name that breaks the pattern', { stage: 'Dev_1' }, 'stage: must match ^[a-z][a-z0-9]{1,9}$'],
    [
      'a region that is not an AWS region',
      { region: 'ireland' },
      'region: must be an AWS region such as eu-west-1',
    ],
    ['a log level Powertools does not know', { logLevel: 'TRACE' }, 'logLevel: Invalid option'],
    [
      'a retention CloudWatch Logs does not accept',
      { logRetentionDays: 42 },
      'logRetentionDays: Invalid input',
    ],
    [
      'a KMS pending window under 7 days',
      { kms: { pendingWindowDays: 3 } },
      'kms.pendingWindowDays: Too small',
    ],
    [
      'a message limit over 256 KiB',
      { trigger: { maxMessageBytes: 300000 } },
      'trigger.maxMessageBytes: Too big',
    ],
    ['a lock TTL under 10 minutes', { lock: { ttlSeconds: 60 } }, 'lock.ttlSeconds: Too small'],
    [
      'a fractional lock TTL',
      { lock: { ttlSeconds: 3600.5 } },
      'lock.ttlSeconds: Invalid input: expected int',
    ],
    [
      'a state machine log level other than ERROR or ALL',
      { stateMachine: { logLevel: 'INFO' } },
      'stateMachine.logLevel',
    ],
    [
      'deletion protection that is not a boolean',
      { audit: { deletionProtection: 'yes' } },
      'audit.deletionProtection',
    ],
    ['a missing section', { kms: undefined }, 'kms: is required (object)'],
    [
      'a builder instance id that is not one',
      { builder: { targets: { instanceIds: ['i-XYZ'] } } },
      'builder.targets.instanceIds.0: must be an EC2 instance id',
    ],
    [
      'an empty builder instance list',
      { builder: { targets: { instanceIds: [] } } },
      'builder.targets.instanceIds: Too small',
    ],
    [
      'a builder tag key with characters a tag cannot hold',
      { builder: { targets: { tag: { key: 'role;reboot', value: 'dev' } } } },
      'builder.targets.tag.key',
    ],
    ['a missing builder block', { builder: undefined }, 'builder: is required (object)'],
    [
      'a command timeout of 1 second',
      {
        commands: {
          bake: { timeoutSeconds: 1 },
          provision: { timeoutSeconds: 7200 },
          validate: { timeoutSeconds: 3600 },
          heartbeatSeconds: 1200,
        },
      },
      'commands.bake.timeoutSeconds: Too small',
    ],
    [
      'a missing heartbeat',
      {
        commands: {
          bake: { timeoutSeconds: 10800 },
          provision: { timeoutSeconds: 7200 },
          validate: { timeoutSeconds: 3600 },
        },
      },
      'commands.heartbeatSeconds: is required (number)',
    ],
    ['a missing commands block', { commands: undefined }, 'commands: is required (object)'],
    [
      'a negative decommission delay',
      { release: { decommissionAfterSeconds: -1, smokeTestAttempts: 6, smokeTestFirstDelayMs: 2000 } },
      'release.decommissionAfterSeconds: Too small',
    ],
    [
      'a decommission delay over 30 days',
      {
        release: {
          decommissionAfterSeconds: 30 * 86400 + 1,
          smokeTestAttempts: 6,
          smokeTestFirstDelayMs: 2000,
        },
      },
      'release.decommissionAfterSeconds: Too big',
    ],
    [
      'no smoke test attempt at all',
      { release: { decommissionAfterSeconds: 3600, smokeTestAttempts: 0, smokeTestFirstDelayMs: 2000 } },
      'release.smokeTestAttempts: Too small',
    ],
    [
      'more than 20 smoke test attempts',
      { release: { decommissionAfterSeconds: 3600, smokeTestAttempts: 21, smokeTestFirstDelayMs: 2000 } },
      'release.smokeTestAttempts: Too big',
    ],
    [
      'a first smoke test pause over a minute',
      { release: { decommissionAfterSeconds: 3600, smokeTestAttempts: 6, smokeTestFirstDelayMs: 60001 } },
      'release.smokeTestFirstDelayMs: Too big',
    ],
    [
      'a fractional first smoke test pause',
      { release: { decommissionAfterSeconds: 3600, smokeTestAttempts: 6, smokeTestFirstDelayMs: 1.5 } },
      'release.smokeTestFirstDelayMs: Invalid input: expected int',
    ],
    [
      'a release block without its decommission delay',
      { release: { smokeTestAttempts: 6, smokeTestFirstDelayMs: 2000 } },
      'release.decommissionAfterSeconds: is required (number)',
    ],
    [
      'an unknown release setting',
      {
        release: {
          decommissionAfterSeconds: 3600,
          smokeTestAttempts: 6,
          smokeTestFirstDelayMs: 2000,
          canary: true,
        },
      },
      'release: unknown field(s) "canary"',
    ],
    ['an unknown setting', { vpcId: 'vpc-1' }, 'unknown field(s) "vpcId"'],
    [
      'an unknown nested setting',
      { lock: { ttlSeconds: 3600, retries: 3 } },
      'lock: unknown field(s) "retries"',
    ],
  ])('rejects %s with a ConfigurationError naming the field', (_case, overrides, issue) => {
    const name = typeof overrides.stage === 'string' ? overrides.stage : 'qa';
    writeStage(name, JSON.parse(JSON.stringify(stageFile('qa', overrides))));

    const load = () => loadStageConfig(name, dir);

    expect(load).toThrow(ConfigurationError);
    expect(load).toThrow(issue);
  });

  it('names the file and the cause when it does not exist', () => {
    expect(() => loadStageConfig('nowhere', dir)).toThrow(ConfigurationError);
    expect(() => loadStageConfig('nowhere', dir)).toThrow(`cannot read ${path.join(dir, 'nowhere.yml')}`);
  });

  it('refuses a duplicated key instead of keeping the last value', () => {
    writeStage('qa', `${stringify(stageFile('qa'))}region: us-east-1\n`);

    expect(() => loadStageConfig('qa', dir)).toThrow(ConfigurationError);
  });

  it('exposes the same schema for packaging and tests', () => {
    expect(stageConfigSchema.safeParse(stageFile('qa')).success).toBe(true);
  });
});

describe('stage config: the smoke test in the VPC', () => {
  const release = { decommissionAfterSeconds: 3600, smokeTestAttempts: 6, smokeTestFirstDelayMs: 2000 };
  const withVpc = (vpc: unknown) => ({ ...stageFile('qa'), release: { ...release, vpc } });

  it('accepts subnets and security groups for internal ALBs', () => {
    const parsed = stageConfigSchema.parse(
      withVpc({ subnetIds: ['subnet-0123456789abcdef0'], securityGroupIds: ['sg-0123456789abcdef0'] }),
    );

    expect(parsed.release.vpc).toEqual({
      subnetIds: ['subnet-0123456789abcdef0'],
      securityGroupIds: ['sg-0123456789abcdef0'],
    });
  });

  it.each([
    [
      'a subnet id that is not one',
      { subnetIds: ['subnet-xyz'], securityGroupIds: ['sg-0123456789abcdef0'] },
      'release.vpc.subnetIds.0',
    ],
    [
      'no security group',
      { subnetIds: ['subnet-0123456789abcdef0'], securityGroupIds: [] },
      'release.vpc.securityGroupIds',
    ],
  ])('rejects %s, naming the field', (_case, vpc, field) => {
    const parsed = stageConfigSchema.safeParse(withVpc(vpc));

    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues.map((i) => i.path.join('.'))).toEqual([field]);
  });
});

describe('stage config: who may assume the auditor role', () => {
  const withPrincipals = (auditorPrincipals: unknown) => ({
    ...stageFile('qa'),
    audit: { deletionProtection: true, auditorPrincipals },
  });

  it('leaves the principals unset when a stage names none, so the role trusts the stage account root', () => {
    writeStage('qa', stageFile('qa'));

    expect(loadStageConfig('qa', dir).audit.auditorPrincipals).toBeUndefined();
  });

  it('accepts account roots, roles with and without a path, and users, in any AWS partition', () => {
    const principals = [
      'arn:aws:iam::123456789012:root',
      'arn:aws:iam::123456789012:role/auditor',
      'arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Auditor_0123456789abcdef',
      'arn:aws:iam::210987654321:user/jane.auditor',
      'arn:aws-us-gov:iam::123456789012:role/auditor',
    ];
    writeStage('qa', withPrincipals(principals));

    expect(loadStageConfig('qa', dir).audit.auditorPrincipals).toEqual(principals);
  });

  it.each<[string, unknown, string]>([
    [
      'an IAM group (not a principal)',
      ['arn:aws:iam::123456789012:group/auditors'],
      'audit.auditorPrincipals.0: must be the ARN of an account root, IAM role or IAM user',
    ],
    [
      'an assumed-role session',
      ['arn:aws:iam::123456789012:root', 'arn:aws:sts::123456789012:assumed-role/auditor/jane'],
      'audit.auditorPrincipals.1: must be the ARN of an account root, IAM role or IAM user',
    ],
    [
      'a bare account id',
      ['123456789012'],
      'audit.auditorPrincipals.0: must be the ARN of an account root, IAM role or IAM user',
    ],
    [
      'an account id of 11 digits',
      ['arn:aws:iam::12345678901:root'],
      'audit.auditorPrincipals.0: must be the ARN of an account root, IAM role or IAM user',
    ],
    [
      'a wildcard',
      ['*'],
      'audit.auditorPrincipals.0: must be the ARN of an account root, IAM role or IAM user',
    ],
    ['an empty list', [], 'audit.auditorPrincipals: Too small'],
    ['a single ARN instead of a list', 'arn:aws:iam::123456789012:root', 'audit.auditorPrincipals:'],
  ])('rejects %s with a ConfigurationError naming the field', (_case, principals, issue) => {
    writeStage('qa', withPrincipals(principals));

    const load = () => loadStageConfig('qa', dir);

    expect(load).toThrow(ConfigurationError);
    expect(load).toThrow(issue);
  });
});

describe('stage config: the lock outlives a run', () => {
  it('rejects a lock TTL shorter than the longest run (timeouts, the longest traffic shift, a destroy, an hour), naming the field', () => {
    const parsed = checkedStageConfigSchema.safeParse({ ...stageFile('qa'), lock: { ttlSeconds: 600 } });

    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual([
      expect.stringMatching(
        /^lock\.ttlSeconds: must be at least \d+ \(the longest run: bake, the copies to other regions, provision and validate timeouts, 10 traffic steps of 3600 s, a stack destroy, plus 7200 s\)$/,
      ),
    ]);
  });

  it('counts the copies to other regions: every region, maxConcurrentCopies at a time, each waited for 1 + copyRetries times', () => {
    const key = (region: string) =>
      `arn:aws:kms:${region}:123456789012:key/mrk-0123456789abcdef0123456789abcdef`;
    const base = longestRunSeconds(stageConfigSchema.parse(stageFile('qa')));
    const withRegions = stageConfigSchema.parse(
      stageFile('qa', {
        distribution: {
          maxConcurrentCopies: 2,
          copyWaitSeconds: 780,
          copyRetries: 2,
          regions: Object.fromEntries(
            ['eu-central-1', 'us-east-1', 'ap-southeast-2'].map((r) => [r, { kmsKeyArn: key(r) }]),
          ),
        },
      }),
    );

    // Three regions two at a time: two rounds, each up to three attempts of the 960 s task timeout.
    expect(longestRunSeconds(withRegions) - base).toBe(2 * 3 * 960);
  });

  it('counts the wait for approval where the stage requires it: the run holds its lock meanwhile', () => {
    // 10800 + 7200 + 3600 + 36000 + 7200 + 7200 = 72000 without approval.
    const withApproval = (required: boolean, ttlSeconds: number) =>
      checkedStageConfigSchema.safeParse({
        ...stageFile('qa'),
        lock: { ttlSeconds },
        approval: { required, timeoutSeconds: 86400 },
      });

    expect(longestRunSeconds(stageConfigSchema.parse(stageFile('qa')))).toBe(72000);
    expect(withApproval(false, 86400).success).toBe(true);
    expect(withApproval(true, 86400).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual([
      expect.stringMatching(/^lock\.ttlSeconds: must be at least 158400 \(.*the approval timeout, /),
    ]);
    expect(withApproval(true, 158400).success).toBe(true);
  });
});

describe('stage config: the approval gate', () => {
  it('defaults to no approval when a stage has no approval block', () => {
    expect(stageConfigSchema.parse(stageFile('qa')).approval).toEqual({
      required: false,
      timeoutSeconds: 86400,
    });
  });

  it.each<[string, unknown, string]>([
    ['a timeout over 7 days', { required: true, timeoutSeconds: 604801 }, 'approval.timeoutSeconds'],
    ['no required flag', { timeoutSeconds: 3600 }, 'approval.required'],
    ['an unknown key', { required: true, timeoutSeconds: 3600, approvers: [] }, 'approval'],
    [
      'an approver that is not an IAM ARN',
      { required: true, timeoutSeconds: 3600, approverPrincipals: ['alice'] },
      'approval.approverPrincipals.0: must be the ARN of an account root, IAM role or IAM user',
    ],
  ])('rejects %s, naming the field', (_case, approval, issue) => {
    writeStage('qa', stageFile('qa', { approval }));

    expect(() => loadStageConfig('qa', dir)).toThrow(issue);
  });
});

describe('stage config from the environment (STAGE_CONFIG, what the workers read)', () => {
  const dev = () => loadStageConfig('dev', CONFIG_DIR);

  it('reads the JSON serverless package set, validated again, without reading a file', () => {
    const env = { STAGE: 'dev', STAGE_CONFIG: JSON.stringify(dev()), CONFIG_DIR: '/nowhere' };

    expect(stageConfigFromEnv(env)).toEqual(dev());
  });

  it.each([
    [{ STAGE: 'dev' }, 'environment variable STAGE_CONFIG is required but not set'],
    [{ STAGE: 'dev', STAGE_CONFIG: '{"stage":' }, 'STAGE_CONFIG is not JSON: '],
    [{ STAGE: 'prod', STAGE_CONFIG: JSON.stringify({ stage: 'dev' }) }, 'STAGE_CONFIG is invalid: region:'],
  ])('refuses %j with a ConfigurationError', (env, message) => {
    expect(() => stageConfigFromEnv(env)).toThrow(ConfigurationError);
    expect(() => stageConfigFromEnv(env)).toThrow(message);
  });

  it("refuses a config of another stage than the function's STAGE", () => {
    const env = { STAGE: 'prod', STAGE_CONFIG: JSON.stringify(dev()) };

    expect(() => stageConfigFromEnv(env)).toThrow(
      'STAGE_CONFIG is for stage "dev"; this function\'s STAGE is "prod"',
    );
  });

  it('holds a lock TTL too short for the longest run against the same rule as the file', () => {
    const config = { ...dev(), lock: { ...dev().lock, ttlSeconds: 60 } };

    expect(() => stageConfigFromEnv({ STAGE: 'dev', STAGE_CONFIG: JSON.stringify(config) })).toThrow(
      'lock.ttlSeconds: must be at least',
    );
  });
});
