import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { parse } from 'yaml';
import type { CliDeps } from '../../cli/main';
import { AuditRepository } from '../../shared/audit';
import { REPO_ROOT } from '../harness/template';
import { runIdFor, triggerMessageSchema } from '../../shared/trigger/message';
import { recordFailure, recordSuccess, runStartedOf, type SeededRun } from './seed';
import {
  auditDynamo,
  cli,
  expectQueriesOnly,
  namesFor,
  s3Client,
  startS3,
  testContexts,
  type S3Emulator,
  type TestContexts,
} from './support';

const sns = mockClient(SNSClient);

/**
 * `trigger` checks the message with the trigger worker's own schema (and a local app config with
 * PreProvision's checks) before anything leaves the machine; then uploads to S3 (s3rver here) and
 * publishes to SNS (mocked). A refused trigger must leave both untouched.
 */
describe('ami-pipeline trigger', () => {
  const names = namesFor('dev');
  const bucket = names.artifactsBucket;
  let work: string;
  let s3emulator: S3Emulator;
  let s3: S3Client;
  let env: Awaited<ReturnType<typeof auditDynamo>>;
  let contexts: TestContexts;
  let deps: CliDeps;
  let appConfig: string;
  let artifact: string;
  const artifactBytes = Buffer.from('sample-app 1.4.2 build output\n'.repeat(2000));
  const artifactSha = createHash('sha256').update(artifactBytes).digest('hex');

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'ami-pipeline-cli-trigger-'));
    s3emulator = await startS3(work);
    env = await auditDynamo();
    s3 = s3Client(s3emulator.endpoint, env.stage.region);
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    contexts = testContexts({ dynamodb: env.dynamo.endpoint, s3: s3emulator.endpoint });
    deps = { open: contexts.open, pollMs: 2 };
    appConfig = path.join(work, 'sample-app.yml');
    copyFileSync(path.join(REPO_ROOT, 'config/apps/sample-app.yml'), appConfig);
    artifact = path.join(work, 'sample app (1.4.2).tar.gz');
    writeFileSync(artifact, artifactBytes);
  });

  afterAll(async () => {
    s3?.destroy();
    await env?.stop();
    await s3emulator?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  let before: string[];
  beforeEach(async () => {
    before = await objects();
    sns.reset();
    sns.on(PublishCommand).resolves({ MessageId: 'b1946ac9-2f2b-4d5e-9a1c-3f8a7c6d5e4f' });
    await env.dynamo.record();
  });

  afterEach(() => {
    expect(contexts.closed).toBe(contexts.opened.length);
  });

  const objects = async () =>
    ((await s3.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []).map((o) => o.Key ?? '');
  const trigger = (...args: string[]) => cli(['trigger', ...args], deps);
  const release = (build: string, ...more: string[]) => [
    '--app',
    'sample-app',
    '--version',
    '1.4.2',
    '--build',
    build,
    '--app-config',
    appConfig,
    '--artifact',
    artifact,
    '--requested-by',
    'alice.ng@example.com',
    ...more,
  ];
  /** Nothing left the machine: no upload, no publish, no DynamoDB request. */
  const expectNothingSent = async () => {
    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 0);
    expect(await objects()).toEqual(before);
    expect(await env.dynamo.requests()).toEqual([]);
  };

  it('prints the message with --dry-run and neither uploads nor publishes', async () => {
    const runId = runIdFor('sample-app', 'dev', 'jenkins-812');

    const { code, stdout, stderr } = await trigger(
      ...release('jenkins-812', '--dry-run', '--output', 'json'),
    );

    expect({ code, stderr }).toEqual({ code: 0, stderr: [] });
    const answer = JSON.parse(stdout) as {
      message: Record<string, unknown>;
      executionName: string;
      messageId: string;
    };
    expect(answer).toMatchObject({
      executionName: `sample-app-dev-${runId}`,
      runId,
      messageId: '(dry run: not sent)',
    });
    expect(
      triggerMessageSchema({ stage: 'dev', artifactsBucket: bucket }).safeParse(answer.message).success,
    ).toBe(true);
    expect(answer.message.artifact).toEqual({
      s3Uri: `s3://${bucket}/inputs/sample-app/${runId}/artifact-${artifactSha.slice(0, 16)}-sample_app_(1.4.2).tar.gz`,
      sha256: artifactSha,
    });
    await expectNothingSent();
  });

  const s3Artifact = `s3://${bucket}/inputs/sample-app/jenkins-813/app.tar.gz`;
  it.each([
    [
      'an app id with capitals',
      ['--app', 'Bad_App', '--app-config', `s3://${bucket}/inputs/Bad_App/app-config.yml`],
      'appId: must match ^[a-z][a-z0-9-]{1,38}[a-z0-9]$',
    ],
    [
      'an app id the local app config does not have',
      ['--app', 'Bad_App'],
      'appConfig.appId: "sample-app" does not match the trigger\'s appId "Bad_App"',
    ],
    ['a version with a space', ['--version', 'a b'], 'version: must match'],
    ['a build id with a space', ['--build', 'build 9'], 'buildId: must match'],
    ['a requester with a space', ['--requested-by', 'bob marsh'], 'requestedBy: must match'],
    [
      'another environment than the stage',
      ['--env', 'prod', '--app-config', `s3://${bucket}/inputs/sample-app/jenkins-813/app-config.yml`],
      'environment: must be "dev" (the stage this message was sent to)',
    ],
    [
      'a short --sha256 with an s3:// artifact',
      ['--artifact', s3Artifact, '--sha256', 'xyz'],
      'artifact.sha256: must be 64 lowercase hex characters',
    ],
    [
      'an s3:// artifact without --sha256',
      ['--artifact', s3Artifact],
      'artifact.sha256: is required with an s3:// artifact',
    ],
    [
      'an s3:// artifact outside the artifacts bucket',
      ['--artifact', 's3://someone-elses-bucket/inputs/sample-app/app.tar.gz', '--sha256', 'a'.repeat(64)],
      `artifact.s3Uri: must be in the stage's artifacts bucket s3://${bucket}/`,
    ],
    [
      'an s3:// artifact under another app’s inputs',
      ['--artifact', `s3://${bucket}/inputs/orders-web/app.tar.gz`, '--sha256', 'a'.repeat(64)],
      `artifact.s3Uri: must start with s3://${bucket}/inputs/sample-app/`,
    ],
    [
      'a local artifact whose SHA-256 differs from --sha256',
      ['--sha256', 'b'.repeat(64)],
      'artifact.sha256: ',
    ],
  ])('refuses %s with exit 2, naming the field, and sends nothing', async (_case, override, violation) => {
    const args = release('jenkins-813');
    for (let i = 0; i < override.length; i += 2) {
      const at = args.indexOf(override[i] as string);
      if (at >= 0) args[at + 1] = override[i + 1] as string;
      else args.push(override[i] as string, override[i + 1] as string);
    }

    const { code, stdout, stderr } = await trigger(...args);

    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toHaveLength(1);
    expect(stderr[0]).toMatch(/^ami-pipeline: trigger refused, nothing sent: /);
    expect(stderr[0]).toContain(violation);
    await expectNothingSent();
  });

  it.each([
    ['a missing --version', ['--version'], 'ami-pipeline: trigger: --version required'],
    ['an artifact file that does not exist', ['--artifact'], 'ami-pipeline: --artifact: cannot read'],
  ])('refuses %s with exit 2 and one line', async (_case, [option], line) => {
    const args = release('jenkins-814');
    const at = args.indexOf(option as string);
    if (option === '--version') args.splice(at, 2);
    else args[at + 1] = path.join(work, 'missing.tar.gz');

    const { code, stderr } = await trigger(...args);

    expect(code).toBe(2);
    expect(stderr).toHaveLength(1);
    expect(stderr[0]?.startsWith(line)).toBe(true);
    await expectNothingSent();
  });

  it('refuses a local app config that breaks the platform rules before uploading anything', async () => {
    const config = parse(readFileSync(appConfig, 'utf8')) as Record<string, Record<string, unknown>>;
    const bad = path.join(work, 'too-big.yml');
    writeFileSync(
      bad,
      JSON.stringify({ ...config, runtime: { ...config.runtime, instanceType: 'm5.24xlarge', maxSize: 40 } }),
    );

    const { code, stderr } = await trigger(...release('jenkins-815', '--app-config', bad));

    expect(code).toBe(2);
    expect(stderr).toHaveLength(1);
    expect(stderr[0]).toContain('appConfig.runtime.instanceType: m5.24xlarge is not allowed in dev');
    expect(stderr[0]).toContain('appConfig.runtime.maxSize: 40 is above the dev maximum of 4');
    await expectNothingSent();
  });

  // As PreProvision would, hours later: the config's appId must be the trigger's.
  it('refuses an app config written for another app', async () => {
    const other = path.join(work, 'orders-web.yml');
    writeFileSync(
      other,
      readFileSync(appConfig, 'utf8')
        .replace('appId: sample-app', 'appId: orders-web')
        .replace(/\/app\/sample-app\//g, '/app/orders-web/'),
    );

    const { code, stderr } = await trigger(...release('jenkins-816', '--app-config', other));

    expect(code).toBe(2);
    expect(stderr).toEqual([
      'ami-pipeline: trigger refused, nothing sent: appConfig.appId: "orders-web" does not match the trigger\'s appId "sample-app"',
    ]);
    await expectNothingSent();
  });

  it('uploads the config and artifact under inputs/<app>/<runId>/ and publishes a valid message', async () => {
    const runId = runIdFor('sample-app', 'dev', 'jenkins-820');

    const { code, stdout, stderr } = await trigger(...release('jenkins-820'));

    expect({ code, stderr }).toEqual({ code: 0, stderr: [] });
    expect(stdout).toContain(`sample-app-dev-${runId}`);
    expect(stdout).toContain('b1946ac9-2f2b-4d5e-9a1c-3f8a7c6d5e4f');
    const configSha = createHash('sha256').update(readFileSync(appConfig)).digest('hex');
    const configKey = `inputs/sample-app/${runId}/app-config-${configSha.slice(0, 16)}.yml`;
    const artifactKey = `inputs/sample-app/${runId}/artifact-${artifactSha.slice(0, 16)}-sample_app_(1.4.2).tar.gz`;
    expect((await objects()).filter((key) => !before.includes(key)).sort()).toEqual(
      [artifactKey, configKey].sort(),
    );
    const stored = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: artifactKey }));
    expect(
      Buffer.from(await (stored.Body?.transformToByteArray() ?? Promise.resolve(new Uint8Array()))),
    ).toEqual(artifactBytes);
    expect((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: artifactKey }))).Metadata).toEqual({
      sha256: artifactSha,
    });
    const config = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: configKey }));
    expect(await config.Body?.transformToString()).toBe(readFileSync(appConfig, 'utf8'));

    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);
    const published = sns.commandCalls(PublishCommand)[0]?.args[0].input;
    expect(published?.TopicArn).toBe(names.triggerTopicArn);
    const message = triggerMessageSchema({ stage: 'dev', artifactsBucket: bucket }).parse(
      JSON.parse(published?.Message ?? ''),
    );
    expect(message).toEqual({
      schemaVersion: 1,
      appId: 'sample-app',
      environment: 'dev',
      version: '1.4.2',
      buildId: 'jenkins-820',
      kind: 'release',
      appConfig: { s3Uri: `s3://${bucket}/${configKey}` },
      artifact: { s3Uri: `s3://${bucket}/${artifactKey}`, sha256: artifactSha },
      requestedBy: 'alice.ng@example.com',
    });
    expect(await env.dynamo.requests()).toEqual([]);
  });

  it('publishes a base-image update for every app without uploading', async () => {
    const { code, stdout } = await trigger(
      '--kind',
      'base-image-update',
      '--build',
      'soe-2026-03',
      '--base-image-parameter',
      '/soe/amazon-linux-2023/latest',
      '--requested-by',
      'svc-jenkins-prod',
      '--output',
      'json',
    );

    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ executionName: null, runId: null, uploaded: [] });
    expect(JSON.parse(sns.commandCalls(PublishCommand)[0]?.args[0].input.Message ?? '')).toEqual({
      schemaVersion: 1,
      environment: 'dev',
      buildId: 'soe-2026-03',
      kind: 'base-image-update',
      baseImage: { ssmParameter: '/soe/amazon-linux-2023/latest' },
      requestedBy: 'svc-jenkins-prod',
    });
    expect(await objects()).toEqual(before);
  });

  describe('--wait', () => {
    /** What the trigger worker and the state machine write once the message arrives. */
    const runStarts = (build: string, outcome: 'SUCCEEDED' | 'FAILED') => async () => {
      const audit = new AuditRepository(env.db, env.table);
      const runId = runIdFor('sample-app', 'dev', build);
      const startedAt = new Date().toISOString();
      const run: SeededRun = {
        runId,
        appId: 'sample-app',
        environment: 'dev',
        version: '1.4.2',
        buildId: build,
        kind: 'release',
        requestedBy: 'alice.ng@example.com',
        executionArn: `arn:aws:states:eu-west-1:000000000000:execution:ami-pipeline-dev:sample-app-dev-${runId}`,
        startedAt,
        status: outcome,
        finishedAt: new Date(Date.parse(startedAt) + 60_000).toISOString(),
        recordedStart: true,
        events: [],
        resources: [],
        failedStage: 'Bake',
        errorName: 'BakeFailedError',
        errorCause: 'bake command c1 ended Failed: Chef run failed',
        compensationStatus: 'COMPLETE',
      };
      await audit.recordRunStarted(runStartedOf(run));
      await env.db.send(
        outcome === 'SUCCEEDED' ? recordSuccess(env.table, run) : recordFailure(env.table, run),
      );
      return { MessageId: `msg-${build}` };
    };

    it('follows the run it started and exits with its outcome, Queries only', async () => {
      sns.on(PublishCommand).callsFake(runStarts('jenkins-830', 'SUCCEEDED'));
      const runId = runIdFor('sample-app', 'dev', 'jenkins-830');

      const { code, stdout } = await trigger(...release('jenkins-830', '--wait', '--output', 'json'));

      expect(code).toBe(0);
      expect(JSON.parse(stdout)).toMatchObject({
        executionName: `sample-app-dev-${runId}`,
        messageId: 'msg-jenkins-830',
        run: { runId, status: 'SUCCEEDED', requestedBy: 'alice.ng@example.com' },
      });
      expectQueriesOnly(await env.dynamo.requests());
    });

    it('exits 1 when the run it started fails', async () => {
      sns.on(PublishCommand).callsFake(runStarts('jenkins-831', 'FAILED'));

      const { code, stdout } = await trigger(...release('jenkins-831', '--wait', '--output', 'json'));

      expect(code).toBe(1);
      expect(JSON.parse(stdout)).toMatchObject({ run: { status: 'FAILED', errorName: 'BakeFailedError' } });
      expectQueriesOnly(await env.dynamo.requests());
    });

    it('exits 1 with the trigger worker’s violations when the message is rejected', async () => {
      sns.on(PublishCommand).callsFake(async () => {
        await new AuditRepository(env.db, env.table).recordRejection({
          environment: 'dev',
          messageId: 'msg-rejected',
          receivedAt: new Date().toISOString(),
          topicArn: names.triggerTopicArn,
          reason: 'appConfig.s3Uri: object not found',
          violations: ['appConfig.s3Uri: object not found'],
          appId: 'sample-app',
          buildId: 'jenkins-832',
          messageSha256: 'c'.repeat(64),
          excerpt: '{"schemaVersion":1',
          queueMessageId: 'q-1',
        });
        return { MessageId: 'msg-rejected' };
      });

      const { code, stderr } = await trigger(...release('jenkins-832', '--wait'));

      expect(code).toBe(1);
      expect(stderr).toEqual([
        'ami-pipeline: trigger rejected by the trigger worker: appConfig.s3Uri: object not found',
      ]);
      expectQueriesOnly(await env.dynamo.requests());
    });
  });
});
