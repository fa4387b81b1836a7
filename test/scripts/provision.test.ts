import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { destroyResultSchema, provisionResultSchema } from '../../shared/commands/contract';
import type { RunConfig } from '../../shared/run-config';
import {
  APP_ID,
  ARTIFACTS_BUCKET,
  KMS_KEY_ARN,
  LOCK_TABLE,
  REGION,
  resultKeyOf,
  RUN_CONFIG_PARAMETER,
  RUN_ID,
  runConfig,
  stepParameters,
} from './support/fixtures';
import { lastLine, Sandbox, type ScriptRun } from './support/sandbox';

const AMI_ID = 'ami-0abcdef1234567890';
const STATE_VERSION = 'Qx3sL4kqtJlcpXroDTDmJ.rmSpXd3dIb';
const APP_STATE_KEY = `tfstate/${APP_ID}/dev/app.tfstate`;
const RELEASE_STATE_KEY = `tfstate/${APP_ID}/dev/release-${RUN_ID}.tfstate`;
const LISTENER_ARN =
  'arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/sample-app-dev/50dc6c495c0c9188/f2f7dc8efc522ab2';
const APP_OUTPUTS = {
  vpc_id: 'vpc-0a1b2c3d4e5f60718',
  subnet_ids: ['subnet-0a1b2c3d4e5f60718', 'subnet-0b1c2d3e4f5a60718'],
  alb_arn:
    'arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/sample-app-dev/50dc6c495c0c9188',
  alb_dns_name: 'internal-sample-app-dev-1234567890.eu-west-1.elb.amazonaws.com',
  listener_arn: LISTENER_ARN,
  alb_security_group_id: 'sg-0a1b2c3d4e5f60718',
  instance_security_group_id: 'sg-0b1c2d3e4f5a60718',
};
const RELEASE_OUTPUTS = {
  launch_template_id: 'lt-0a1b2c3d4e5f60718',
  asg_name: `sample-app-dev-${RUN_ID}`,
  target_group_arn:
    'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/sample-app-a1b2c3d4e5/73e2d6bc24d8a067',
  listener_rule_arn: `${LISTENER_ARN.replace(':listener/', ':listener-rule/')}/9683b2d02a6cabee`,
  instance_role_arn: `arn:aws:iam::123456789012:role/sample-app-${RUN_ID}`,
};

describe('provision script', () => {
  let box: Sandbox;

  const provision = (
    mode: 'apply' | 'destroy',
    config: RunConfig = runConfig(),
    extra: Record<string, string> = {},
  ) => {
    box.putParameter(RUN_CONFIG_PARAMETER, JSON.stringify(config));
    box.setTerraformOutputs('app', APP_OUTPUTS);
    box.setTerraformOutputs('release', RELEASE_OUTPUTS);
    return box.runStep(
      'provision',
      stepParameters('provision', { amiId: AMI_ID, lockTable: LOCK_TABLE, mode }),
      {
        FAKE_STATE_VERSION: STATE_VERSION,
        ...extra,
      },
    );
  };

  const layer = (name: 'app' | 'release') => `-chdir=${path.join(box.workDir, `terraform-${name}`)}`;
  const backend = (key: string) => [
    `-backend-config=bucket=${ARTIFACTS_BUCKET}`,
    `-backend-config=key=${key}`,
    `-backend-config=region=${REGION}`,
    '-backend-config=encrypt=true',
    `-backend-config=kms_key_id=${KMS_KEY_ARN}`,
    `-backend-config=dynamodb_table=${LOCK_TABLE}`,
  ];
  const varFile = (name: string) => `-var-file=${path.join(box.workDir, name)}`;

  describe('in apply mode', () => {
    let run: ScriptRun;

    beforeAll(() => {
      box = new Sandbox();
      run = provision('apply');
    });

    afterAll(() => {
      box.remove();
    });

    it('applies the app layer, then the release layer, each with its own encrypted and locked state', () => {
      expect(run.status).toBe(0);
      expect(box.callsTo('terraform')).toEqual([
        [layer('app'), 'init', '-input=false', '-no-color', '-reconfigure', ...backend(APP_STATE_KEY)],
        [layer('app'), 'apply', '-input=false', '-no-color', '-auto-approve', varFile('app.tfvars.json')],
        [layer('app'), 'output', '-no-color', '-json'],
        [
          layer('release'),
          'init',
          '-input=false',
          '-no-color',
          '-reconfigure',
          ...backend(RELEASE_STATE_KEY),
        ],
        [
          layer('release'),
          'apply',
          '-input=false',
          '-no-color',
          '-auto-approve',
          varFile('release.tfvars.json'),
        ],
        [layer('release'), 'output', '-no-color', '-json'],
      ]);
    });

    it('writes a result the provision schema accepts, with the version of the release state', () => {
      const result = provisionResultSchema.parse(
        JSON.parse(box.object(ARTIFACTS_BUCKET, resultKeyOf('provision')) ?? 'null'),
      );

      expect(result).toEqual({
        launchTemplateId: RELEASE_OUTPUTS.launch_template_id,
        asgName: RELEASE_OUTPUTS.asg_name,
        targetGroupArn: RELEASE_OUTPUTS.target_group_arn,
        albDns: APP_OUTPUTS.alb_dns_name,
        terraformStateVersion: STATE_VERSION,
      });
      expect(box.callsTo('aws')).toContainEqual([
        's3api',
        'head-object',
        '--region',
        REGION,
        '--bucket',
        ARTIFACTS_BUCKET,
        '--key',
        RELEASE_STATE_KEY,
        '--query',
        'VersionId',
        '--output',
        'text',
      ]);
    });

    it('gives the release layer the new AMI, the runtime settings and the app layer network', () => {
      const vars = box.workFile('release.tfvars.json');

      expect(vars.mode).toBe(0o600);
      expect(JSON.parse(vars.text)).toEqual({
        app_id: APP_ID,
        environment: 'dev',
        stage: 'dev',
        region: REGION,
        kms_key_arn: KMS_KEY_ARN,
        port: 8080,
        tags: {
          'cost-centre': '4711',
          'data-classification': 'confidential',
          'ami-pipeline:run-id': RUN_ID,
          'ami-pipeline:app-id': APP_ID,
          'ami-pipeline:stage': 'dev',
        },
        run_id: RUN_ID,
        app_version: '1.4.2',
        build_id: 'sample-app-release#118',
        ami_id: AMI_ID,
        instance_type: 't3.small',
        min_size: 1,
        max_size: 3,
        volume_size: 20,
        health_check_path: '/health',
        health_check_status: 200,
        services: ['s3', 'sqs', 'logs'],
        log_group_names: ['/app/sample-app/application'],
        vpc_id: APP_OUTPUTS.vpc_id,
        subnet_ids: APP_OUTPUTS.subnet_ids,
        instance_security_group_id: APP_OUTPUTS.instance_security_group_id,
        listener_arn: LISTENER_ARN,
      });
      expect(JSON.parse(box.workFile('app.tfvars.json').text)).toEqual({
        app_id: APP_ID,
        environment: 'dev',
        stage: 'dev',
        region: REGION,
        kms_key_arn: KMS_KEY_ARN,
        port: 8080,
        tags: expect.objectContaining({ 'cost-centre': '4711' }) as unknown,
      });
    });
  });

  describe('on failure, in destroy mode or with bad input', () => {
    beforeEach(() => {
      box = new Sandbox();
    });

    afterEach(() => {
      box.remove();
    });

    it('destroys only this run’s release layer and writes {destroyed: true}', () => {
      box.putObject(ARTIFACTS_BUCKET, RELEASE_STATE_KEY, '{"version": 4}');

      const run = provision('destroy');

      expect(run.status).toBe(0);
      expect(box.callsTo('terraform')).toEqual([
        [layer('app'), 'init', '-input=false', '-no-color', '-reconfigure', ...backend(APP_STATE_KEY)],
        [layer('app'), 'output', '-no-color', '-json'],
        [
          layer('release'),
          'init',
          '-input=false',
          '-no-color',
          '-reconfigure',
          ...backend(RELEASE_STATE_KEY),
        ],
        [
          layer('release'),
          'destroy',
          '-input=false',
          '-no-color',
          '-auto-approve',
          varFile('release.tfvars.json'),
        ],
      ]);
      expect(
        destroyResultSchema.parse(
          JSON.parse(box.object(ARTIFACTS_BUCKET, resultKeyOf('provision')) ?? 'null'),
        ),
      ).toEqual({
        destroyed: true,
      });
    });

    it('has nothing to destroy when the run never applied its release layer', () => {
      const run = provision('destroy');

      expect(run.status).toBe(0);
      expect(box.callsTo('terraform')).toEqual([]);
      expect(JSON.parse(box.object(ARTIFACTS_BUCKET, resultKeyOf('provision')) ?? 'null')).toEqual({
        destroyed: true,
      });
    });

    it('does not take an unreadable release state for a missing one', () => {
      const run = provision('destroy', runConfig(), { FAKE_HEAD_OBJECT_ERROR: '403' });

      expect(run.status).not.toBe(0);
      expect(lastLine(run.stderr)).toMatch(
        /^provision: cannot check s3:\/\/\S+\/tfstate\/sample-app\/dev\/release-\w+\.tfstate: .*\(403\)/,
      );
      expect(box.callsTo('terraform')).toEqual([]);
      expect(box.object(ARTIFACTS_BUCKET, resultKeyOf('provision'))).toBeUndefined();
    });

    it('stops with the layer when terraform apply fails', () => {
      const run = provision('apply', runConfig(), { FAKE_TF_FAIL: 'release' });

      expect(run.status).not.toBe(0);
      expect(lastLine(run.stderr)).toBe('provision: terraform apply of the release layer failed');
      expect(box.object(ARTIFACTS_BUCKET, resultKeyOf('provision'))).toBeUndefined();
    });

    it('refuses a Terraform output outside its pattern', () => {
      box.putParameter(RUN_CONFIG_PARAMETER, JSON.stringify(runConfig()));
      box.setTerraformOutputs('app', { ...APP_OUTPUTS, subnet_ids: ['subnet-0a1b2c3d4e5f60718; reboot'] });

      const run = box.runStep(
        'provision',
        stepParameters('provision', { amiId: AMI_ID, lockTable: LOCK_TABLE, mode: 'apply' }),
      );

      expect(run.status).not.toBe(0);
      expect(lastLine(run.stderr)).toBe(
        'provision: terraform output subnet_ids of the app layer is not a list of subnet ids',
      );
      expect(box.callsTo('terraform').some((argv) => argv[0] === layer('release'))).toBe(false);
    });

    describe('with a hostile run config', () => {
      const marker = path.join(tmpdir(), `ami-pipeline-hostile-provision-${process.pid}`);
      const cases: [string, (config: RunConfig) => void][] = [
        ['runtime instance type', (c) => void (c.app.runtime.instanceType = `t3.small$(touch ${marker})`)],
        ['health check path', (c) => void (c.app.runtime.healthCheckPath = `/health\`touch ${marker}\``)],
        ['service', (c) => void (c.app.services = ['s3', `sqs;touch ${marker}`])],
        ['log group', (c) => void (c.app.logGroups = [{ name: `/app/x\ntouch ${marker}` }])],
        ['version', (c) => void (c.release.version = `1.4.2'; touch ${marker}; '`)],
      ];

      afterEach(() => {
        expect(existsSync(marker)).toBe(false);
      });

      it.each(cases)('refuses a hostile %s before Terraform runs', (_label, corrupt) => {
        const config = runConfig();
        corrupt(config);

        const run = provision('apply', config);

        expect(run.status).not.toBe(0);
        expect(lastLine(run.stderr)).toMatch(/^provision: run config \S+ does not match /);
        expect(box.callsTo('terraform')).toEqual([]);
        expect(JSON.stringify(box.calls())).not.toContain('touch');
      });
    });

    it.each([
      ['mode', 'plan'],
      ['lockTable', 'locks;rm -rf /'],
      ['amiId', 'ami-0abcdef1234567890 '],
    ])('refuses a %s parameter outside its pattern before any tool runs', (name, value) => {
      const run = box.runStep(
        'provision',
        stepParameters('provision', { amiId: AMI_ID, lockTable: LOCK_TABLE, mode: 'apply', [name]: value }),
      );

      expect(run.status).not.toBe(0);
      expect(lastLine(run.stderr)).toMatch(new RegExp(`^provision: parameter ${name} does not match `));
      expect(box.calls()).toEqual([]);
    });
  });
});
