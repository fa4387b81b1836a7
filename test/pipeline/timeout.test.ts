import { LocalPipeline } from '../harness/pipeline';
import { triggerMessage } from '../fixtures/messages';

// A file of its own: handlers keep the clients of the first harness in a file, and this one needs
// a stage config with a 2-second bake timeout.
describe('a stage that outlives its state timeout', () => {
  let pipeline: LocalPipeline;

  beforeAll(async () => {
    pipeline = await LocalPipeline.start({ stageOverrides: { commands: { bake: { timeoutSeconds: 2 } } } });
  });

  afterAll(async () => {
    await pipeline.stop();
  });

  it('times out, cancels the still-running command and fails the run with nothing left behind', async () => {
    pipeline.commands.setScenario('slow-app', 'bake', { outcome: 'hang' });
    pipeline.publishTrigger(triggerMessage(pipeline.name('ArtifactsBucket'), { appId: 'slow-app' }));

    await pipeline.settle();

    const [execution] = pipeline.sfn.list();
    expect(execution?.status).toBe('FAILED');
    expect(execution?.error).toBe('States.Timeout');
    const [command] = [...pipeline.commands.commands.values()];
    expect(command?.status).toBe('Cancelled');
    expect(command?.parameters.executionTimeout).toBe('1');
    const runId = execution!.name.split('-').pop()!;
    const [run] = await pipeline.runsOf('slow-app');
    expect(run).toMatchObject({ status: 'FAILED', failedStage: 'Bake', errorName: 'States.Timeout' });
    const undone = (await pipeline.runItems(runId)).filter((i) => i.type === 'UNDONE');
    expect(undone.map((e) => (e.detail as { action: string }).action)).toEqual(['CANCEL_COMMAND']);
    expect(pipeline.leftovers(runId)).toEqual({
      images: [],
      snapshots: [],
      grants: [],
      stacks: [],
      runningCommands: [],
    });
  });
});
