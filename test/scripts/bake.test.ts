import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { bakeResultSchema, PARAMETER_PATTERNS } from '../../shared/commands/contract';
import type { RunConfig } from '../../shared/run-config';
import {
  ARTIFACTS_BUCKET,
  BASE_AMI,
  BASE_IMAGE_PARAMETER,
  hostileValues,
  KMS_KEY_ARN,
  REGION,
  resultKeyOf,
  RUN_CONFIG_PARAMETER,
  RUN_ID,
  runConfig,
  SECRET,
  stepParameters,
} from './support/fixtures';
import { CONFIG_DIR, lastLine, Sandbox, type ScriptRun } from './support/sandbox';

const TEMPLATE = path.join(CONFIG_DIR, 'packer', 'app.pkr.hcl');
const AMI_ID = 'ami-0abcdef1234567890';
const SNAPSHOTS = ['snap-0a1b2c3d4e5f60718', 'snap-0b1c2d3e4f5a60718'];

describe('bake script', () => {
  let box: Sandbox;

  const bake = (config: RunConfig = runConfig(), extra: Record<string, string> = {}) => {
    box.putParameter(RUN_CONFIG_PARAMETER, JSON.stringify(config));
    box.putParameter(BASE_IMAGE_PARAMETER, BASE_AMI);
    return box.runStep('bake', stepParameters('bake'), {
      FAKE_AMI_ID: AMI_ID,
      FAKE_SNAPSHOTS: JSON.stringify(SNAPSHOTS),
      ...extra,
    });
  };

  describe('for the sample app', () => {
    let run: ScriptRun;

    beforeAll(() => {
      box = new Sandbox();
      run = bake();
    });

    afterAll(() => {
      box.remove();
    });

    it('builds the AMI and writes a result the bake schema accepts', () => {
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      const varFile = path.join(box.workDir, 'bake.pkrvars.json');
      expect(box.callsTo('packer')).toEqual([
        ['build', '-machine-readable', '-color=false', `-var-file=${varFile}`, TEMPLATE],
      ]);
      const result = bakeResultSchema.parse(
        JSON.parse(box.object(ARTIFACTS_BUCKET, resultKeyOf('bake')) ?? 'null'),
      );
      expect(result).toEqual({ amiId: AMI_ID, snapshotIds: SNAPSHOTS, region: REGION });
    });

    it('gives Packer a private var file with the app, the run, the stage key and the tags', () => {
      const varFile = box.workFile('bake.pkrvars.json');
      expect(varFile.mode).toBe(0o600);
      expect(JSON.parse(varFile.text)).toEqual({
        app_id: 'sample-app',
        version: '1.4.2',
        build_id: 'sample-app-release#118',
        run_id: RUN_ID,
        stage: 'dev',
        region: REGION,
        kms_key_arn: KMS_KEY_ARN,
        source_ami: BASE_AMI,
        instance_type: 't3.medium',
        volume_size: 20,
        chef_run_list: ['recipe[sample_app::default]'],
        chef_attributes_file: path.join(box.workDir, 'chef-attributes.json'),
        artifact_s3_uri: `s3://${ARTIFACTS_BUCKET}/inputs/sample-app/118/sample-app-1.4.2.tgz`,
        artifact_sha256: 'c'.repeat(64),
        tags: {
          'cost-centre': '4711',
          'data-classification': 'confidential',
          'ami-pipeline:run-id': RUN_ID,
          'ami-pipeline:app-id': 'sample-app',
          'ami-pipeline:stage': 'dev',
          Name: 'sample-app-1.4.2',
          'ami-pipeline:version': '1.4.2',
          'ami-pipeline:build-id': 'sample-app-release#118',
        },
        manifest_path: path.join(box.workDir, 'packer-manifest.json'),
      });
    });

    it('keeps the run config and the Chef attributes in 0600 files', () => {
      const attributes = box.workFile('chef-attributes.json');
      expect(attributes.mode).toBe(0o600);
      expect(JSON.parse(attributes.text)).toEqual({ sample_app: { listen_port: 8080, db_password: SECRET } });
      expect(box.workFile('run-config.json').mode).toBe(0o600);
    });

    it('never prints the Chef attributes or hands them to a tool on the command line', () => {
      expect(run.stdout + run.stderr).not.toContain(SECRET);
      expect(JSON.stringify(box.calls())).not.toContain(SECRET);
    });

    it('reads the run config decrypted, resolves the base image parameter and uploads the result with the stage key', () => {
      expect(box.callsTo('aws')).toEqual([
        [
          'ssm',
          'get-parameter',
          '--region',
          REGION,
          '--name',
          RUN_CONFIG_PARAMETER,
          '--with-decryption',
          '--query',
          'Parameter.Value',
          '--output',
          'text',
        ],
        [
          'ssm',
          'get-parameter',
          '--region',
          REGION,
          '--name',
          BASE_IMAGE_PARAMETER,
          '--query',
          'Parameter.Value',
          '--output',
          'text',
        ],
        [
          'ec2',
          'describe-images',
          '--region',
          REGION,
          '--image-ids',
          AMI_ID,
          '--query',
          'Images[0].BlockDeviceMappings[].Ebs.SnapshotId',
          '--output',
          'json',
        ],
        [
          's3',
          'cp',
          '--region',
          REGION,
          '--only-show-errors',
          path.join(box.workDir, 'result.json'),
          `s3://${ARTIFACTS_BUCKET}/${resultKeyOf('bake')}`,
          '--sse',
          'aws:kms',
          '--sse-kms-key-id',
          KMS_KEY_ARN,
        ],
      ]);
    });
  });

  it('uses a template that encrypts the AMI with the key from the var file', () => {
    const template = readFileSync(TEMPLATE, 'utf8');

    expect(template).toMatch(/^\s*encrypt_boot\s*=\s*true$/m);
    expect(template).toMatch(/^\s*kms_key_id\s*=\s*var\.kms_key_arn$/m);
    expect(template).toMatch(/post-processor "manifest"[\s\S]*output\s*=\s*var\.manifest_path/);
  });

  describe('on failure or bad input', () => {
    beforeEach(() => {
      box = new Sandbox();
    });

    afterEach(() => {
      box.remove();
    });

    it('takes the base AMI id as it is when the app config names one', () => {
      const config = runConfig();
      config.app.baseImage = { amiId: 'ami-0123456789abcdef0' };

      const run = bake(config);

      expect(run.status).toBe(0);
      expect(JSON.parse(box.workFile('bake.pkrvars.json').text)).toMatchObject({
        source_ami: 'ami-0123456789abcdef0',
      });
      expect(box.callsTo('aws').filter((argv) => argv.includes(BASE_IMAGE_PARAMETER))).toEqual([]);
    });

    it('never prints the Chef attributes or hands them to a tool on the command line', () => {
      const run = bake();

      expect(run.status).toBe(0);
      expect(run.stdout + run.stderr).not.toContain(SECRET);
      expect(JSON.stringify(box.calls())).not.toContain(SECRET);
    });

    it('fails with "packer produced no AMI" when Packer exits 0 without an AMI in its manifest', () => {
      const run = bake(runConfig(), { FAKE_PACKER: 'no-ami' });

      expect(run.status).not.toBe(0);
      expect(lastLine(run.stderr)).toMatch(/^bake: packer produced no AMI in eu-west-1/);
      expect(box.object(ARTIFACTS_BUCKET, resultKeyOf('bake'))).toBeUndefined();
      expect(box.callsTo('aws').some((argv) => argv[1] === 'describe-images')).toBe(false);
    });

    it('fails with the exit code when Packer fails', () => {
      const run = bake(runConfig(), { FAKE_PACKER: 'fail' });

      expect(run.status).not.toBe(0);
      expect(lastLine(run.stderr)).toBe(
        "bake: packer build failed (exit 1); see the command output for Packer's log",
      );
      expect(box.object(ARTIFACTS_BUCKET, resultKeyOf('bake'))).toBeUndefined();
    });

    it('fails when the base image parameter does not hold an AMI id', () => {
      box.putParameter(RUN_CONFIG_PARAMETER, JSON.stringify(runConfig()));
      box.putParameter(BASE_IMAGE_PARAMETER, 'ami-1; reboot');

      const run = box.runStep('bake', stepParameters('bake'));

      expect(run.status).not.toBe(0);
      expect(lastLine(run.stderr)).toBe(
        `bake: base image parameter ${BASE_IMAGE_PARAMETER} does not hold an AMI id`,
      );
      expect(box.callsTo('packer')).toEqual([]);
    });

    describe('with a hostile run config', () => {
      const marker = path.join(tmpdir(), `ami-pipeline-hostile-${process.pid}`);
      const hostile = hostileValues(marker);
      const setVersion = (c: RunConfig, v: string) => void (c.release.version = v);
      const cases: [string, string, (config: RunConfig, value: string) => void][] = [
        ...Object.entries(hostile).map(([label, value]): [string, string, typeof setVersion] => [
          `version (${label})`,
          value,
          setVersion,
        ]),
        [
          'instance type (command substitution)',
          hostile['command substitution'] ?? '',
          (c, v) => void (c.app.bake.instanceType = v),
        ],
        [
          'Chef run list item (newline)',
          `recipe[a]\nrecipe[b]`,
          (c, v) => void (c.app.bake.chefRunList = [v]),
        ],
        [
          'Chef run list item (semicolon)',
          hostile.semicolon ?? '',
          (c, v) => void (c.app.bake.chefRunList = ['recipe[a]', v]),
        ],
      ];

      afterEach(() => {
        expect(existsSync(marker)).toBe(false);
      });

      it.each(cases)('refuses a %s before Packer runs', (_label, value, corrupt) => {
        const config = runConfig();
        corrupt(config, value);

        const run = bake(config);

        expect(run.status).not.toBe(0);
        expect(lastLine(run.stderr)).toMatch(/^bake: run config \S+ does not match /);
        expect(box.callsTo('packer')).toEqual([]);
        expect(JSON.stringify(box.calls())).not.toContain(JSON.stringify(value).slice(1, -1));
      });

      it('refuses an app id that is not the one in the parameter name', () => {
        const config = runConfig();
        config.release.appId = `x$(touch ${marker})`;

        const run = bake(config);

        expect(run.status).not.toBe(0);
        expect(lastLine(run.stderr)).toMatch(/^bake: run config \.release\.appId does not match /);
        expect(box.callsTo('packer')).toEqual([]);
        expect(JSON.stringify(box.calls())).not.toContain('touch');
      });

      it('refuses an artifact URI with a quote in its key', () => {
        const config = runConfig();
        config.release.artifact.s3Uri = `s3://${ARTIFACTS_BUCKET}/inputs/it's.tgz`;

        const run = bake(config);

        expect(run.status).not.toBe(0);
        expect(lastLine(run.stderr)).toMatch(/^bake: run config \.release\.artifact\.s3Uri does not match /);
        expect(box.callsTo('packer')).toEqual([]);
      });

      it('refuses a run config for another stage key', () => {
        const config = runConfig();
        config.platform.kmsKeyArn = KMS_KEY_ARN.replace('0f1e', '9f1e');

        const run = bake(config);

        expect(run.status).not.toBe(0);
        expect(lastLine(run.stderr)).toBe(
          'bake: run config platform.kmsKeyArn differs from the kmsKeyArn parameter',
        );
        expect(box.callsTo('packer')).toEqual([]);
      });
    });

    describe('with a parameter outside its pattern', () => {
      const marker = path.join(tmpdir(), `ami-pipeline-hostile-parameter-${process.pid}`);
      const cases: [string, string][] = [
        ['region', `eu-west-1$(touch ${marker})`],
        ['runConfigParameter', `${RUN_CONFIG_PARAMETER};touch ${marker}`],
        ['kmsKeyArn', `${KMS_KEY_ARN}\ntouch ${marker}`],
        ['artifactsBucket', `${ARTIFACTS_BUCKET} x`],
        ['assetsPrefix', 'tooling/`id`'],
        ['resultPrefix', `dev/sample-app/${RUN_ID}/bake'`],
      ];

      afterEach(() => {
        expect(existsSync(marker)).toBe(false);
      });

      it.each(cases)('refuses %s before any tool runs', (name, value) => {
        expect(new RegExp(PARAMETER_PATTERNS[name as keyof typeof PARAMETER_PATTERNS]).test(value)).toBe(
          false,
        );
        box.putParameter(RUN_CONFIG_PARAMETER, JSON.stringify(runConfig()));

        const run = box.runStep('bake', stepParameters('bake', { [name]: value }));

        expect(run.status).not.toBe(0);
        expect(lastLine(run.stderr)).toBe(
          `bake: parameter ${name} does not match ${PARAMETER_PATTERNS[name as keyof typeof PARAMETER_PATTERNS]}`,
        );
        expect(box.calls()).toEqual([]);
      });

      it('refuses a result prefix of another step', () => {
        const run = box.runStep(
          'bake',
          stepParameters('bake', { resultPrefix: `dev/sample-app/${RUN_ID}/validate` }),
        );

        expect(run.status).not.toBe(0);
        expect(lastLine(run.stderr)).toMatch(/^bake: resultPrefix \S+ does not belong to /);
        expect(box.calls()).toEqual([]);
      });

      it('refuses to run without a parameter', () => {
        const parameters = stepParameters('bake');
        delete parameters.kmsKeyArn;

        const run = box.runStep('bake', parameters);

        expect(run.status).not.toBe(0);
        expect(lastLine(run.stderr)).toBe(
          'bake: parameter kmsKeyArn is not set (the command document exports it)',
        );
        expect(box.calls()).toEqual([]);
      });
    });
  });
});
