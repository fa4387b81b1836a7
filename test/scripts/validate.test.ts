import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { validateResultSchema } from '../../shared/commands/contract';
import type { RunConfig } from '../../shared/run-config';
import {
  APP_ID,
  ARTIFACTS_BUCKET,
  KMS_KEY_ARN,
  REGION,
  REPORTS_BUCKET,
  resultKeyOf,
  RUN_CONFIG_PARAMETER,
  RUN_ID,
  runConfig,
  stepParameters,
} from './support/fixtures';
import { CONFIG_DIR, lastLine, Sandbox, type ScriptRun } from './support/sandbox';

const ASG_NAME = `sample-app-dev-${RUN_ID}`;
const INSTANCES = ['i-0a1b2c3d4e5f60718', 'i-0b1c2d3e4f5a60718'];
const REPORT_KEY = `dev/${APP_ID}/${RUN_ID}/validate/inspec-report.json`;

interface CombinedReport {
  asgName: string;
  reports: { instanceId: string; report: { profiles: { controls: unknown[] }[] } }[];
}

describe('validate script', () => {
  let box: Sandbox;

  /** The app names the platform baseline (in the assets) and its own profile (vendored on the builder). */
  const appProfiles = (): RunConfig => {
    const config = runConfig();
    config.app.inspec.profiles = ['baseline', 'sample-app-baseline'];
    return config;
  };

  const validate = (
    allowed: string,
    extra: Record<string, string> = {},
    config: RunConfig = appProfiles(),
  ) => {
    box.putParameter(RUN_CONFIG_PARAMETER, JSON.stringify(config));
    const siteProfile = path.join(box.siteDir, 'inspec', 'sample-app-baseline');
    mkdirSync(siteProfile, { recursive: true });
    writeFileSync(path.join(siteProfile, 'inspec.yml'), 'name: sample-app-baseline\n');
    return box.runStep(
      'validate',
      stepParameters('validate', {
        reportsBucket: REPORTS_BUCKET,
        asgName: ASG_NAME,
        allowedFailedControls: allowed,
      }),
      { FAKE_ASG_INSTANCES: JSON.stringify(INSTANCES), ...extra },
    );
  };

  const result = () =>
    validateResultSchema.parse(JSON.parse(box.object(ARTIFACTS_BUCKET, resultKeyOf('validate')) ?? 'null'));

  describe('within the allowed failed controls', () => {
    let run: ScriptRun;

    beforeAll(() => {
      box = new Sandbox();
      run = validate('2', { FAKE_INSPEC_PASSED: '5', FAKE_INSPEC_FAILED: '1', FAKE_INSPEC_SKIPPED: '2' });
    });

    afterAll(() => {
      box.remove();
    });

    it('runs the app profiles against every green instance through SSM', () => {
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      const profiles = [
        path.join(CONFIG_DIR, 'inspec', 'baseline'),
        path.join(box.siteDir, 'inspec', 'sample-app-baseline'),
      ];
      expect(box.callsTo('inspec')).toEqual(
        INSTANCES.map((instance) => [
          'exec',
          ...profiles,
          '--target',
          `awsssm://${instance}`,
          '--reporter',
          `json:${path.join(box.workDir, `inspec-${instance}.json`)}`,
          '--no-color',
          '--chef-license=accept-silent',
        ]),
      );
      expect(box.callsTo('aws')).toContainEqual([
        'autoscaling',
        'describe-auto-scaling-groups',
        '--region',
        REGION,
        '--auto-scaling-group-names',
        ASG_NAME,
        '--query',
        "AutoScalingGroups[0].Instances[?LifecycleState=='InService'].InstanceId",
        '--output',
        'json',
      ]);
    });

    it('counts each control once across the instances and writes a result the validate schema accepts', () => {
      expect(result()).toEqual({ passed: 5, failed: 1, skipped: 2, reportKey: REPORT_KEY });
    });

    it('uploads one report with every instance’s InSpec report to the reports bucket, encrypted with the stage key', () => {
      const report = JSON.parse(box.object(REPORTS_BUCKET, REPORT_KEY) ?? 'null') as CombinedReport;

      expect(report.asgName).toBe(ASG_NAME);
      expect(report.reports.map((r) => r.instanceId)).toEqual(INSTANCES);
      expect(report.reports[0]?.report.profiles[0]?.controls).toHaveLength(8);
      expect(box.callsTo('aws')).toContainEqual([
        's3',
        'cp',
        '--region',
        REGION,
        '--only-show-errors',
        path.join(box.workDir, 'inspec-report.json'),
        `s3://${REPORTS_BUCKET}/${REPORT_KEY}`,
        '--sse',
        'aws:kms',
        '--sse-kms-key-id',
        KMS_KEY_ARN,
      ]);
    });
  });

  describe('on failure or bad input', () => {
    beforeEach(() => {
      box = new Sandbox();
    });

    afterEach(() => {
      box.remove();
    });

    it('fails above the allowed failed controls, after uploading the report and the result', () => {
      const run = validate('2', { FAKE_INSPEC_PASSED: '4', FAKE_INSPEC_FAILED: '3' });

      expect(run.status).not.toBe(0);
      expect(lastLine(run.stderr)).toBe(
        `validate: InSpec: 3 failed controls exceed the allowed 2 (report s3://${REPORTS_BUCKET}/${REPORT_KEY})`,
      );
      expect(box.object(REPORTS_BUCKET, REPORT_KEY)).toBeDefined();
      expect(result()).toEqual({ passed: 4, failed: 3, skipped: 0, reportKey: REPORT_KEY });
    });

    it('counts a control that fails on one instance only as failed', () => {
      const run = validate('0', {
        FAKE_INSPEC_PASSED: '2',
        FAKE_INSPEC_FAILED: '1',
        FAKE_INSPEC_CLEAN_ON: INSTANCES[1] ?? '',
      });

      expect(run.status).not.toBe(0);
      expect(result()).toEqual({ passed: 2, failed: 1, skipped: 0, reportKey: REPORT_KEY });
    });

    it('reads the allowed count as decimal even with leading zeros', () => {
      const run = validate('0010', { FAKE_INSPEC_FAILED: '9' });

      expect(run.status).toBe(0);
      expect(result()).toMatchObject({ failed: 9 });
    });

    it('fails when InSpec itself fails, without a result', () => {
      const run = validate('2', { FAKE_INSPEC_EXIT: '1' });

      expect(run.status).not.toBe(0);
      expect(lastLine(run.stderr)).toBe(`validate: inspec exec failed on ${INSTANCES[0]} (exit 1)`);
      expect(box.object(ARTIFACTS_BUCKET, resultKeyOf('validate'))).toBeUndefined();
    });

    it('fails when the auto scaling group has no InService instance', () => {
      const run = validate('2', { FAKE_ASG_INSTANCES: '[]' });

      expect(run.status).not.toBe(0);
      expect(lastLine(run.stderr)).toBe(
        `validate: auto scaling group ${ASG_NAME} has no InService instances to validate`,
      );
      expect(box.callsTo('inspec')).toEqual([]);
    });

    it('fails when a profile is neither in the assets nor on the builder', () => {
      const config = appProfiles();
      config.app.inspec.profiles = ['baseline', 'cis-level-9'];

      const run = validate('2', {}, config);

      expect(run.status).not.toBe(0);
      expect(lastLine(run.stderr)).toBe(
        `validate: InSpec profile cis-level-9 is neither in the pipeline's assets (inspec/) nor in ${box.siteDir}/inspec`,
      );
      expect(box.callsTo('inspec')).toEqual([]);
    });

    it('refuses a profile that climbs out of the profile folders', () => {
      const config = appProfiles();
      config.app.inspec.profiles = ['../../../etc'];

      const run = validate('2', {}, config);

      expect(run.status).not.toBe(0);
      expect(lastLine(run.stderr)).toBe(
        'validate: InSpec profile ../../../etc must not contain . or .. segments',
      );
      expect(box.callsTo('inspec')).toEqual([]);
    });

    it('refuses an instance id it does not recognise', () => {
      const run = validate('2', { FAKE_ASG_INSTANCES: '["i-0a1b2c3d4e5f60718","i-1;reboot"]' });

      expect(run.status).not.toBe(0);
      expect(lastLine(run.stderr)).toBe(
        `validate: auto scaling group ${ASG_NAME} lists an unexpected instance id`,
      );
      expect(box.callsTo('inspec')).toEqual([]);
    });

    it.each([
      ['asgName', `${ASG_NAME}$(reboot)`],
      ['allowedFailedControls', '-1'],
      ['reportsBucket', 'Reports Bucket'],
    ])('refuses a %s parameter outside its pattern before any tool runs', (name, value) => {
      const run = box.runStep(
        'validate',
        stepParameters('validate', {
          reportsBucket: REPORTS_BUCKET,
          asgName: ASG_NAME,
          allowedFailedControls: '2',
          [name]: value,
        }),
      );

      expect(run.status).not.toBe(0);
      expect(lastLine(run.stderr)).toMatch(new RegExp(`^validate: parameter ${name} does not match `));
      expect(box.calls()).toEqual([]);
    });
  });
});
