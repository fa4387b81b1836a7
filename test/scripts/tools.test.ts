import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { COMMAND_STEPS } from '../../shared/commands/contract';
import { KMS_KEY_ARN, REGION, RUN_ID } from './support/fixtures';
import { CONFIG_DIR, REPO_DIR, SCRIPTS_DIR } from './support/sandbox';

// These tests run the real tools (shellcheck, packer 1.6+; .ci/run installs both from Debian): none
// of them needs the network or AWS. Terraform's fmt/validate run in `npm run lint`
// (test/scripts/terraform-check.ts): Terraform is not a Debian package, so CI cannot install it.

const run = (command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) => {
  const out = spawnSync(command, args, {
    encoding: 'utf8',
    cwd: options.cwd ?? REPO_DIR,
    env: options.env ?? process.env,
  });
  return { status: out.status, output: `${out.stdout ?? ''}${out.stderr ?? ''}${out.error?.message ?? ''}` };
};

const files = (dir: string): string[] => readdirSync(dir).map((name) => path.join(dir, name));

describe('shell scripts', () => {
  it('pass shellcheck -x: the step scripts, their library, the Packer provisioners and the test stand-ins', () => {
    const scripts = [
      ...files(SCRIPTS_DIR),
      ...files(path.join(CONFIG_DIR, 'packer', 'scripts')),
      ...files(path.join(__dirname, 'fakes')),
    ].map((file) => path.relative(REPO_DIR, file));

    const result = run('shellcheck', ['-x', ...scripts]);

    expect(result.output).toBe('');
    expect(result.status).toBe(0);
  });

  it('pass shellcheck as the runCommand of each SSM document', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ami-pipeline-runcommand-'));
    try {
      const scripts = COMMAND_STEPS.map((step) => {
        const doc = parse(readFileSync(path.join(CONFIG_DIR, 'ssm', `${step}.yml`), 'utf8')) as {
          mainSteps: { inputs: { runCommand: string[] } }[];
        };
        const file = path.join(dir, `${step}-runCommand.sh`);
        writeFileSync(file, `${(doc.mainSteps[0]?.inputs.runCommand ?? []).join('\n')}\n`);
        return file;
      });

      const result = run('shellcheck', ['-x', ...scripts]);

      expect(result.output).toBe('');
      expect(result.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Packer template', () => {
  it('validates with the var file bake.sh writes', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ami-pipeline-packer-'));
    try {
      const attributes = path.join(dir, 'chef-attributes.json');
      writeFileSync(attributes, '{}');
      const varFile = path.join(dir, 'bake.pkrvars.json');
      writeFileSync(
        varFile,
        JSON.stringify({
          app_id: 'sample-app',
          version: '1.4.2',
          build_id: 'sample-app-release#118',
          run_id: RUN_ID,
          stage: 'dev',
          region: REGION,
          kms_key_arn: KMS_KEY_ARN,
          source_ami: 'ami-0fedcba9876543210',
          instance_type: 't3.medium',
          volume_size: 20,
          chef_run_list: ['recipe[sample_app::default]'],
          chef_attributes_file: attributes,
          artifact_s3_uri: 's3://ami-pipeline-dev-artifacts/inputs/sample-app/118/sample-app-1.4.2.tgz',
          artifact_sha256: 'c'.repeat(64),
          tags: { Name: 'sample-app-1.4.2' },
          manifest_path: path.join(dir, 'manifest.json'),
        }),
      );

      const result = run(
        'packer',
        ['validate', `-var-file=${varFile}`, path.join(CONFIG_DIR, 'packer', 'app.pkr.hcl')],
        {
          cwd: dir,
          env: { ...process.env, CHECKPOINT_DISABLE: '1', HOME: dir },
        },
      );

      expect(result.output).toBe('');
      expect(result.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
