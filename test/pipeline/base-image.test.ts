import { LocalPipeline } from '../harness/pipeline';
import { sampleAppConfig, triggerMessage } from '../fixtures/messages';

const SOE = '/soe/amazon-linux-2023/latest';

/** A base-image update rebuilds every app live on that SOE image, one run each, and nothing else. */
describe('base-image update', () => {
  let pipeline: LocalPipeline;
  let bucket: string;

  beforeAll(async () => {
    pipeline = await LocalPipeline.start();
    bucket = pipeline.name('ArtifactsBucket');
  });

  afterAll(async () => {
    await pipeline.stop();
  });

  const update = (buildId: string) => ({
    schemaVersion: 1,
    environment: 'dev',
    buildId,
    kind: 'base-image-update',
    baseImage: { ssmParameter: SOE },
    requestedBy: 'soe-pipeline@example.com',
  });

  const executionsOf = (appId: string) =>
    pipeline.sfn.list().filter((e) => e.name.startsWith(`${appId}-dev-`));

  it('starts one run per app live on the moved image, rebuilding its live version, and leaves other apps alone', async () => {
    for (const appId of ['soe-one', 'soe-two'])
      pipeline.publishTrigger(triggerMessage(bucket, { appId, version: '3.2.1' }));
    pipeline.publishTrigger(
      triggerMessage(bucket, {
        appId: 'rhel-app',
        appConfig: sampleAppConfig({ appId: 'rhel-app', baseImage: { ssmParameter: '/soe/rhel9/latest' } }),
      }),
    );
    await pipeline.settle();
    const before = new Set(pipeline.sfn.list().map((e) => e.executionArn));

    const published = pipeline.publishTrigger(update('soe-2026-11-21'));
    pipeline.sns.redeliver(published);
    await pipeline.settle();

    const started = pipeline.sfn.list().filter((e) => !before.has(e.executionArn));
    expect(started.map((e) => JSON.parse(e.input).appId).sort()).toEqual(['soe-one', 'soe-two']);
    for (const execution of started) {
      expect(execution.status).toBe('SUCCEEDED');
      expect(JSON.parse(execution.input)).toMatchObject({
        kind: 'base-image-update',
        version: '3.2.1',
        buildId: 'soe-2026-11-21',
        requestedBy: 'soe-pipeline@example.com',
      });
    }
    expect(executionsOf('rhel-app')).toHaveLength(1);
    for (const appId of ['soe-one', 'soe-two']) {
      const live = await pipeline.liveRelease(appId);
      expect(live).toMatchObject({ version: '3.2.1', buildId: 'soe-2026-11-21' });
      const [run] = (await pipeline.runsOf(appId)).filter((r) => r.runId === live?.runId);
      expect(run).toMatchObject({ kind: 'base-image-update', status: 'SUCCEEDED' });
    }
  });

  it('rejects an update without the image it is about, naming the field', async () => {
    const { baseImage: _dropped, ...incomplete } = update('soe-bad');
    const published = pipeline.publishTrigger(incomplete);
    await pipeline.settle();

    const queued = pipeline
      .rejectionsQueue()
      .map((m) => JSON.parse(m.body) as { snsMessageId: string; reason: string });
    expect(queued.find((m) => m.snsMessageId === published.messageId)?.reason).toMatch(
      /^baseImage: is required/,
    );
  });
});
