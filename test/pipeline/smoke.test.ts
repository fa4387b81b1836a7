import { readFileSync } from 'node:fs';
import { LocalPipeline } from '../harness/pipeline';

test('smoke', async () => {
  const p = await LocalPipeline.start();
  try {
    const app = readFileSync('config/apps/sample-app.yml', 'utf8');
    const { parse } = await import('yaml');
    p.publishTrigger({
      schemaVersion: 1,
      appId: 'sample-app',
      environment: 'dev',
      version: '1.0.0',
      buildId: 'b-1',
      kind: 'release',
      appConfig: parse(app),
      artifact: {
        s3Uri: `s3://${p.name('ArtifactsBucket')}/inputs/sample-app/b-1/app.tgz`,
        sha256: 'a'.repeat(64),
      },
      requestedBy: 'jenkins',
    });
    const ex = await p.settle();
    console.log(
      JSON.stringify(
        ex.map((e) => ({ ...e, done: undefined })),
        null,
        1,
      ).slice(0, 4000),
    );
    console.log(await p.runsOf('sample-app'), p.outcomes(), p.rejectionsQueue());
  } finally {
    await p.stop();
  }
});
