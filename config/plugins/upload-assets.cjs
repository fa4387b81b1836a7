// Uploads the builder assets (config/assets.cjs: ssm/scripts, packer, terraform, inspec) to
// s3://<ArtifactsBucketName>/<prefix>/…, SSE-KMS with the stage key (PipelineKeyArn), both read from
// the stack's outputs. The prefix is a content hash, so objects already there are identical and
// skipped: a re-deploy uploads nothing, and files a running command fetched are never overwritten.
//
// It runs after the stack update (after:deploy:deploy), and also before it when the stack already
// exists: the updated workers pass the new prefix as soon as they are live, so its files must be
// there by then. A first deploy has no bucket yet; its runs cannot start before the deploy ends.
//
// Credentials and region are the deploy's own (provider.getAwsSdkV3Config: --aws-profile, --region).
const fs = require('node:fs');
const { CloudFormationClient, DescribeStacksCommand } = require('@aws-sdk/client-cloudformation');
const { HeadObjectCommand, PutObjectCommand, S3Client } = require('@aws-sdk/client-s3');
const { assetsPrefix, listAssets } = require('../assets.cjs');

const CONTENT_TYPES = { '.json': 'application/json', '.yml': 'application/yaml', '.md': 'text/markdown' };

const contentType = (key) => {
  const dot = key.lastIndexOf('.');
  return (dot >= 0 && CONTENT_TYPES[key.slice(dot)]) || 'text/plain; charset=utf-8';
};

const isNotFound = (err) =>
  err instanceof Error && (err.name === 'NotFound' || err.$metadata?.httpStatusCode === 404);

class UploadAssets {
  constructor(serverless, options, { log } = {}) {
    this.serverless = serverless;
    this.provider = serverless.getProvider('aws');
    // The framework passes its logger to plugins; older ones only have serverless.cli.log.
    this.log = log ?? { notice: (message) => serverless.cli.log(message) };
    this.hooks = {
      'before:deploy:deploy': () => this.uploadIfStackExists(),
      'after:deploy:deploy': () => this.upload(),
    };
  }

  async stackOutputs(config) {
    const cloudFormation = new CloudFormationClient(config);
    const stackName = this.provider.naming.getStackName();
    const { Stacks } = await cloudFormation.send(new DescribeStacksCommand({ StackName: stackName }));
    const outputs = Object.fromEntries((Stacks?.[0]?.Outputs ?? []).map((o) => [o.OutputKey, o.OutputValue]));
    for (const name of ['ArtifactsBucketName', 'PipelineKeyArn']) {
      if (!outputs[name]) {
        throw Object.assign(
          new Error(`stack ${stackName} has no output ${name}; cannot upload the builder assets`),
          {
            name: 'MissingOutputError',
          },
        );
      }
    }
    return { bucket: outputs.ArtifactsBucketName, kmsKeyArn: outputs.PipelineKeyArn };
  }

  async uploadIfStackExists() {
    const config = await this.provider.getAwsSdkV3Config();
    let target;
    try {
      target = await this.stackOutputs(config);
    } catch (err) {
      // A stack that does not exist yet (or predates these outputs): the after-deploy hook uploads.
      if (err instanceof Error && (err.name === 'ValidationError' || err.name === 'MissingOutputError'))
        return;
      throw err;
    }
    await this.upload(target);
  }

  async upload(target) {
    const config = await this.provider.getAwsSdkV3Config();
    const { bucket, kmsKeyArn } = target ?? (await this.stackOutputs(config));
    const s3 = new S3Client(config);
    const prefix = assetsPrefix();
    let uploaded = 0;
    let skipped = 0;
    for (const { key, file } of listAssets()) {
      const Key = `${prefix}/${key}`;
      try {
        await s3.send(new HeadObjectCommand({ Bucket: bucket, Key }));
        skipped += 1;
        continue;
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      await s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key,
          Body: fs.readFileSync(file),
          ContentType: contentType(key),
          ServerSideEncryption: 'aws:kms',
          SSEKMSKeyId: kmsKeyArn,
          BucketKeyEnabled: true,
        }),
      );
      uploaded += 1;
    }
    this.log.notice(
      `Builder assets: s3://${bucket}/${prefix}/ (${uploaded} uploaded, ${skipped} already there)`,
    );
  }
}

module.exports = UploadAssets;
