import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { HeadObjectCommand, NotFound, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { cpSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ASSET_DIRS, assetsHash, assetsPrefix, listAssets, prefix } from '../../config/assets.cjs';
import UploadAssets from '../../config/plugins/upload-assets.cjs';
import { PARAMETER_PATTERNS } from '../../shared/commands/contract';
import { CONFIG_DIR } from './support/sandbox';

/** A copy of the asset folders, to change without touching the repository. */
const copyAssets = (): string => {
  const dir = mkdtempSync(path.join(tmpdir(), 'ami-pipeline-assets-'));
  for (const assetDir of ASSET_DIRS)
    cpSync(path.join(CONFIG_DIR, assetDir), path.join(dir, assetDir), { recursive: true });
  return dir;
};

describe('builder assets prefix', () => {
  let copy: string;

  beforeEach(() => {
    copy = copyAssets();
  });

  afterEach(() => {
    rmSync(copy, { recursive: true, force: true });
  });

  it('is tooling/<16 hex> and a valid assetsPrefix document parameter', async () => {
    const value = await prefix();

    expect(value).toMatch(/^tooling\/[0-9a-f]{16}$/);
    expect(value).toMatch(new RegExp(PARAMETER_PATTERNS.assetsPrefix));
    expect(value).toBe(assetsPrefix());
  });

  it('depends on the files only, not on where the folder is', () => {
    expect(assetsHash(copy)).toBe(assetsHash(CONFIG_DIR));
    expect(assetsHash(copy)).toBe(assetsHash(copy));
  });

  it('changes when a file changes, is added or is renamed', () => {
    const original = assetsHash(copy);

    writeFileSync(path.join(copy, 'packer', 'app.pkr.hcl'), '# changed\n', { flag: 'a' });
    const changed = assetsHash(copy);
    writeFileSync(path.join(copy, 'inspec', 'baseline', 'controls', 'extra.rb'), "control 'x' do\nend\n");
    const added = assetsHash(copy);
    renameSync(
      path.join(copy, 'inspec', 'baseline', 'controls', 'extra.rb'),
      path.join(copy, 'inspec', 'baseline', 'controls', 'more.rb'),
    );
    const renamed = assetsHash(copy);

    expect(new Set([original, changed, added, renamed]).size).toBe(4);
  });

  it('ignores Terraform working files', () => {
    const original = assetsHash(copy);

    mkdirSync(path.join(copy, 'terraform', 'app', '.terraform'), { recursive: true });
    writeFileSync(path.join(copy, 'terraform', 'app', '.terraform', 'terraform.tfstate'), '{}');
    writeFileSync(path.join(copy, 'terraform', 'app', 'local.tfstate'), '{}');

    expect(assetsHash(copy)).toBe(original);
  });

  it('covers the scripts, Packer, Terraform and InSpec folders under the names the documents use, and nothing else', () => {
    const keys = listAssets().map((asset) => asset.key);

    expect(keys).toEqual(
      expect.arrayContaining([
        'ssm/scripts/bake.sh',
        'packer/app.pkr.hcl',
        'terraform/release/main.tf',
        'inspec/baseline/inspec.yml',
      ]),
    );
    expect(keys.every((key) => ASSET_DIRS.some((dir) => key.startsWith(`${dir}/`)))).toBe(true);
    expect(keys).not.toContain('ssm/bake.yml');
    expect([...keys].sort()).toEqual(keys);
  });
});

describe('upload-assets plugin', () => {
  const BUCKET = 'ami-pipeline-dev-artifacts-123456789012-eu-west-1';
  const KEY_ARN = 'arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';
  const cloudFormation = mockClient(CloudFormationClient);
  const s3 = mockClient(S3Client);
  const notices: string[] = [];
  const plugin = () =>
    new UploadAssets(
      {
        getProvider: () => ({
          getAwsSdkV3Config: async () => ({ region: 'eu-west-1' }),
          naming: { getStackName: () => 'ami-pipeline-dev' },
        }),
      },
      {},
      { log: { notice: (message) => void notices.push(message), info: () => undefined } },
    );

  beforeEach(() => {
    cloudFormation.on(DescribeStacksCommand).resolves({
      Stacks: [
        {
          StackName: 'ami-pipeline-dev',
          StackStatus: 'UPDATE_COMPLETE',
          CreationTime: new Date(0),
          Outputs: [
            { OutputKey: 'ArtifactsBucketName', OutputValue: BUCKET },
            { OutputKey: 'PipelineKeyArn', OutputValue: KEY_ARN },
          ],
        },
      ],
    });
    s3.on(PutObjectCommand).resolves({});
    notices.length = 0;
  });

  afterEach(() => {
    cloudFormation.reset();
    s3.reset();
  });

  it('uploads every missing asset after the deploy, under the prefix, encrypted with the stage key', async () => {
    const present = `${assetsPrefix()}/ssm/scripts/lib.sh`;
    s3.on(HeadObjectCommand).rejects(
      new NotFound({ message: 'Not Found', $metadata: { httpStatusCode: 404 } }),
    );
    s3.on(HeadObjectCommand, { Bucket: BUCKET, Key: present }).resolves({});

    await plugin().hooks['after:deploy:deploy']?.();

    const assets = listAssets();
    expect(cloudFormation).toHaveReceivedCommandWith(DescribeStacksCommand, {
      StackName: 'ami-pipeline-dev',
    });
    expect(s3).toHaveReceivedCommandTimes(PutObjectCommand, assets.length - 1);
    expect(s3).toHaveReceivedCommandWith(PutObjectCommand, {
      Bucket: BUCKET,
      Key: `${assetsPrefix()}/ssm/scripts/bake.sh`,
      ServerSideEncryption: 'aws:kms',
      SSEKMSKeyId: KEY_ARN,
    });
    expect(s3.commandCalls(PutObjectCommand).map((call) => call.args[0].input.Key)).not.toContain(present);
    expect(notices).toEqual([
      `Builder assets: s3://${BUCKET}/${assetsPrefix()}/ (${assets.length - 1} uploaded, 1 already there)`,
    ]);
  });

  it('also uploads before the stack update when the stack exists, so the new prefix is there when the workers go live', async () => {
    s3.on(HeadObjectCommand).rejects(
      new NotFound({ message: 'Not Found', $metadata: { httpStatusCode: 404 } }),
    );

    await plugin().hooks['before:deploy:deploy']?.();

    expect(s3).toHaveReceivedCommandTimes(PutObjectCommand, listAssets().length);
  });

  it('leaves a first deploy, whose stack does not exist yet, to the after-deploy upload', async () => {
    cloudFormation.on(DescribeStacksCommand).rejects(
      Object.assign(new Error('Stack with id ami-pipeline-dev does not exist'), {
        name: 'ValidationError',
      }),
    );

    await plugin().hooks['before:deploy:deploy']?.();

    expect(s3).not.toHaveReceivedCommand(HeadObjectCommand);
    expect(s3).not.toHaveReceivedCommand(PutObjectCommand);
  });

  it('stops on an S3 error other than a missing object', async () => {
    s3.on(HeadObjectCommand).rejects(Object.assign(new Error('Access Denied'), { name: 'AccessDenied' }));

    await expect(plugin().upload()).rejects.toThrow('Access Denied');
    expect(s3).not.toHaveReceivedCommand(PutObjectCommand);
  });

  it('refuses to guess when the stack lacks an output', async () => {
    cloudFormation.on(DescribeStacksCommand).resolves({ Stacks: [] });

    await expect(plugin().upload()).rejects.toThrow(
      'stack ami-pipeline-dev has no output ArtifactsBucketName',
    );
    expect(s3).not.toHaveReceivedCommand(PutObjectCommand);
  });
});
