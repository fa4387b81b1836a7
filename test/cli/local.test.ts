import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { LocalPipeline } from '../harness/pipeline';
import { REPO_ROOT } from '../harness/template';
import { cli } from './support';

/**
 * End to end, as a developer would: `npm start` (the local harness, one release of the sample
 * app through the real state machine and handlers, state kept on disk), then the CLI with
 * `--local <dir>` and its real openContext, which starts dynalite and s3rver on that state.
 */
describe('ami-pipeline --local after a local release', () => {
  const savedEnv = { ...process.env };
  let stateDir: string;
  let runId: string;
  let amiId: string;
  const requestedBy = 'release-manager@example.com';

  beforeAll(async () => {
    stateDir = mkdtempSync(path.join(tmpdir(), 'ami-pipeline-cli-local-'));
    const pipeline = await LocalPipeline.start({ stateDir });
    try {
      // What Jenkins (and npm start) does: upload the app config and artifact, then publish.
      const bucket = pipeline.name('ArtifactsBucket');
      const artifact = 'sample-app 3.1.0';
      const upload = async (key: string, body: string) => {
        await pipeline.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
        return `s3://${bucket}/${key}`;
      };
      pipeline.publishTrigger({
        schemaVersion: 1,
        appId: 'sample-app',
        environment: 'dev',
        version: '3.1.0',
        buildId: 'local-e2e-1',
        kind: 'release',
        appConfig: {
          s3Uri: await upload(
            'inputs/sample-app/local-e2e-1/app-config.yml',
            readFileSync(path.join(REPO_ROOT, 'config/apps/sample-app.yml'), 'utf8'),
          ),
        },
        artifact: {
          s3Uri: await upload('inputs/sample-app/local-e2e-1/sample-app.tar.gz', artifact),
          sha256: createHash('sha256').update(artifact).digest('hex'),
        },
        requestedBy,
      });
      const [execution] = await pipeline.settle();
      expect(execution?.status).toBe('SUCCEEDED');
      runId = String(execution?.name.split('-').pop());
      amiId = String((await pipeline.liveRelease('sample-app'))?.amiId);
    } finally {
      await pipeline.stop();
    }
  });

  afterAll(() => {
    // openContext --local sets the emulators' endpoints and credentials in process.env.
    for (const key of Object.keys(process.env)) if (!(key in savedEnv)) delete process.env[key];
    Object.assign(process.env, savedEnv);
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  it('audit app shows the run with its AMI and InSpec result', async () => {
    const { code, stdout, stderr } = await cli(
      ['audit', 'app', 'sample-app', '--local', stateDir, '--output', 'json'],
      {},
    );

    expect({ code, stderr }).toEqual({ code: 0, stderr: [] });
    const runs = JSON.parse(stdout) as Record<string, unknown>[];
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({
      runId,
      appId: 'sample-app',
      version: '3.1.0',
      status: 'SUCCEEDED',
      requestedBy,
      amiIds: [amiId],
      inspec: {
        report: expect.stringMatching(/^s3:\/\/ami-pipeline-dev-reports-/),
        passed: expect.any(Number),
        failed: expect.any(Number),
        skipped: expect.any(Number),
      },
    });
  });

  it('audit resource answers which run made the AMI, who asked for it and what InSpec said', async () => {
    expect(amiId).toMatch(/^ami-[a-f0-9]+$/);

    const { code, stdout } = await cli(
      ['audit', 'resource', amiId, '--local', stateDir, '--output', 'json'],
      {},
    );

    expect(code).toBe(0);
    const answer = JSON.parse(stdout) as {
      resource: { resourceType: string; runId: string }[];
      runs: {
        run: Record<string, unknown>;
        inspec: Record<string, unknown> | null;
        stages: { state: string }[];
      }[];
    };
    expect(answer.resource).toContainEqual(expect.objectContaining({ resourceType: 'AMI', runId }));
    expect(answer.runs).toHaveLength(1);
    expect(answer.runs[0]?.run).toMatchObject({ runId, requestedBy, status: 'SUCCEEDED', version: '3.1.0' });
    expect(answer.runs[0]?.inspec).toMatchObject({ passed: expect.any(Number), failed: expect.any(Number) });
    expect(answer.runs[0]?.stages.every((s) => s.state === 'done')).toBe(true);
  });

  it('says there is no local state in a directory npm start never used', async () => {
    const empty = mkdtempSync(path.join(tmpdir(), 'ami-pipeline-cli-empty-'));
    try {
      const { code, stderr } = await cli(['audit', 'live', '--local', empty], {});

      expect(code).toBe(1);
      expect(stderr).toEqual([
        `ami-pipeline: no local state in ${empty}: run \`npm start\` first (or pass --local <dir>)`,
      ]);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
