import { LocalPipeline } from '../harness/pipeline';
import { LOCAL_ACCOUNT_ID } from '../harness/template';
import { sampleAppConfig, triggerMessage } from '../fixtures/messages';

/**
 * Distribution to several regions and accounts through the real state machine: a copy per region
 * (DistributeToRegions), each encrypted with that region's stage key and shared like the original,
 * the AMI id of every region published as /ami-pipeline/<stage>/<appId>/latest-ami, and — when one
 * region fails, or a later stage does — every region's copies, permissions, grants and parameter
 * values undone.
 */
const HOME = 'eu-west-1';
const FRANKFURT = 'eu-central-1';
const VIRGINIA = 'us-east-1';
const keyIn = (region: string) =>
  `arn:aws:kms:${region}:${LOCAL_ACCOUNT_ID}:key/mrk-0123456789abcdef0123456789ab${region.length}`;
const APP_ACCOUNT = '111122223333';
const DR_ACCOUNT = '444455556666';

describe('distribution to regions and accounts', () => {
  let pipeline: LocalPipeline;
  let failAt: string | undefined;

  beforeAll(async () => {
    pipeline = await LocalPipeline.start({
      stageOverrides: {
        distribution: {
          regions: {
            [FRANKFURT]: { kmsKeyArn: keyIn(FRANKFURT) },
            [VIRGINIA]: { kmsKeyArn: keyIn(VIRGINIA) },
          },
        },
      },
      beforeTask: (state) => {
        if (state === failAt)
          throw Object.assign(new Error(`${state} failed in this test`), { name: 'States.TaskFailed' });
      },
    });
  });

  afterAll(async () => {
    await pipeline.stop();
  });

  afterEach(() => {
    failAt = undefined;
    for (const { ec2 } of pipeline.regions.values()) ec2.copyOutcome = 'available';
  });

  const release = async (appId: string, regions: string[], version = '1.4.2', accounts = [DR_ACCOUNT]) => {
    const appConfig = sampleAppConfig({ appId, distribution: { regions, accounts } });
    pipeline.publishTrigger(
      triggerMessage(pipeline.name('ArtifactsBucket'), {
        appId,
        appConfig,
        version,
        buildId: `${appId}-${version}`,
      }),
    );
    await pipeline.settle();
    const execution = pipeline.sfn
      .list()
      .filter((e) => e.name.startsWith(`${appId}-dev-`))
      .at(-1);
    if (!execution) throw new Error(`no execution for ${appId}`);
    const outcome =
      pipeline
        .outcomes()
        .filter((o) => o.appId === appId)
        .at(-1) ?? {};
    return { execution, outcome, runId: String(outcome.runId) };
  };

  const ofRun = (runId: string, region: string) =>
    [...(pipeline.ec2At(region)?.images.values() ?? [])].filter(
      (i) => i.tags['ami-pipeline:run-id'] === runId,
    );

  const latestAmi = (appId: string) => `/ami-pipeline/dev/${appId}/latest-ami`;

  it('leaves an encrypted AMI in each region, shared with each account, and publishes its id there', async () => {
    const { execution, outcome, runId } = await release('spread-app', [FRANKFURT]);

    expect(execution.status).toBe('SUCCEEDED');
    expect(pipeline.path(execution.executionArn)).toEqual(
      expect.arrayContaining([
        'DistributeToRegions',
        'CopyToRegion',
        'CheckCopies',
        'CopiesMade',
        'PublishAmiIds',
      ]),
    );
    const amis: Record<string, string> = {};
    for (const [region, key] of [
      [HOME, pipeline.template.resource('PipelineKey').arn],
      [FRANKFURT, keyIn(FRANKFURT)],
    ] as const) {
      const [image, ...others] = ofRun(runId, region);
      expect(others).toEqual([]);
      expect(image).toMatchObject({ state: 'available', encrypted: true, kmsKeyId: key });
      expect([...(image?.launchPermissions ?? [])].sort()).toEqual([APP_ACCOUNT, DR_ACCOUNT]);
      for (const snapshotId of image?.snapshotIds ?? []) {
        const snapshot = pipeline.ec2At(region)?.snapshots.get(snapshotId);
        expect(snapshot).toMatchObject({ encrypted: true, kmsKeyId: key });
        expect([...(snapshot?.createVolumePermissions ?? [])].sort()).toEqual([APP_ACCOUNT, DR_ACCOUNT]);
      }
      const grants = [...pipeline.kms.grants.values()].filter(
        (g) => g.name === `ami-pipeline-${runId}` && g.keyId === key,
      );
      expect(grants.map((g) => g.grantee).sort()).toEqual([
        `arn:aws:iam::${APP_ACCOUNT}:root`,
        `arn:aws:iam::${DR_ACCOUNT}:root`,
      ]);
      // The id consuming accounts read, in their own region, and who may read it.
      const parameter = pipeline.ssmAt(region)?.describe(latestAmi('spread-app'));
      expect(parameter).toMatchObject({
        stored: image?.imageId,
        tier: 'Advanced',
        dataType: 'aws:ec2:image',
      });
      expect(pipeline.ssmAt(region)?.readers(latestAmi('spread-app')).sort()).toEqual([
        APP_ACCOUNT,
        DR_ACCOUNT,
      ]);
      amis[region] = image?.imageId ?? '';
    }
    // Nothing in a region the app did not ask for.
    expect(ofRun(runId, VIRGINIA)).toEqual([]);
    expect(outcome.amiId).toBe(amis[HOME]);

    // Every copy, permission, grant and parameter is in the audit table, with its region.
    const items = await pipeline.runItems(runId);
    const resources = (type: string) =>
      items
        .filter((i) => i.resourceType === type)
        .map((i) => ({ id: i.resourceId, ...(i.detail as object) }));
    expect(resources('AMI')).toContainEqual(
      expect.objectContaining({
        id: amis[FRANKFURT],
        region: FRANKFURT,
        copiedFrom: amis[HOME],
        kmsKeyArn: keyIn(FRANKFURT),
      }),
    );
    expect(resources('KMS_GRANT')).toHaveLength(4);
    expect(
      resources('LAUNCH_PERMISSION')
        .map((r) => r.id)
        .sort(),
    ).toEqual(
      [
        `${amis[HOME]}/${APP_ACCOUNT}`,
        `${amis[HOME]}/${DR_ACCOUNT}`,
        `${amis[FRANKFURT]}/${APP_ACCOUNT}`,
        `${amis[FRANKFURT]}/${DR_ACCOUNT}`,
      ].sort(),
    );
    expect(resources('LATEST_AMI_PARAMETER')).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ region: HOME, amiId: amis[HOME], previous: null }),
        expect.objectContaining({ region: FRANKFURT, amiId: amis[FRANKFURT], previous: null }),
      ]),
    );
    // Auditors find a copy by its id.
    expect(await pipeline.byResource(amis[FRANKFURT] ?? '')).toContainEqual(
      expect.objectContaining({ runId }),
    );
  });

  it('undoes every region when one region fails: no copy, permission, grant or parameter survives', async () => {
    pipeline.ec2At(VIRGINIA)!.copyOutcome = 'failed';

    const { execution, outcome, runId } = await release('split-app', [FRANKFURT, VIRGINIA]);

    expect(execution.status).toBe('FAILED');
    expect(outcome).toMatchObject({
      status: 'FAILED',
      failedStage: 'Distribute',
      error: 'DistributionFailedError',
    });
    expect(String(outcome.cause)).toMatch(/^in us-east-1: /);
    expect(outcome.compensation).toMatchObject({ status: 'COMPLETE' });
    for (const region of [HOME, FRANKFURT, VIRGINIA]) expect(ofRun(runId, region)).toEqual([]);
    const orphans = await pipeline.orphans(runId, 'split-app');
    expect(Object.entries(orphans).filter(([, left]) => left.length > 0)).toEqual([]);
    expect(orphans.images).toEqual([]);
    for (const region of [HOME, FRANKFURT, VIRGINIA])
      expect(pipeline.ssmAt(region)?.describe(latestAmi('split-app'))).toBeUndefined();
    // The copy that succeeded (Frankfurt) and the one that failed (Virginia) were both undone, on record.
    const undone = (await pipeline.runItems(runId))
      .filter((i) => i.type === 'UNDONE')
      .map((i) => String(i.id));
    expect(undone).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^DEREGISTER_IMAGE#eu-central-1\/ami-/),
        expect.stringMatching(/^DEREGISTER_IMAGE#us-east-1\/ami-/),
        expect.stringMatching(/^REVOKE_GRANT#eu-central-1\//),
      ]),
    );
  });

  it('puts the previous AMI ids back when a later stage fails after publishing', async () => {
    // The first release shares with the app's account only; the failed second one adds another.
    const first = await release('keep-app', [FRANKFURT], '1.0.0', []);
    expect(first.execution.status).toBe('SUCCEEDED');
    const before = [HOME, FRANKFURT].map((r) => pipeline.ssmAt(r)?.describe(latestAmi('keep-app'))?.stored);
    const readersBefore = [HOME, FRANKFURT].map((r) => pipeline.ssmAt(r)?.readers(latestAmi('keep-app')));
    expect(readersBefore).toEqual([[APP_ACCOUNT], [APP_ACCOUNT]]);

    failAt = 'RecordRelease';
    const second = await release('keep-app', [FRANKFURT], '1.1.0', [DR_ACCOUNT]);

    expect(second.execution.status).toBe('FAILED');
    expect(second.outcome).toMatchObject({
      failedStage: 'RecordRelease',
      compensation: { status: 'COMPLETE' },
    });
    // It had published (PublishAmiIds ran before RecordRelease) and compensation restored the values.
    expect(pipeline.path(second.execution.executionArn)).toContain('PublishAmiIds');
    expect([HOME, FRANKFURT].map((r) => pipeline.ssmAt(r)?.describe(latestAmi('keep-app'))?.stored)).toEqual(
      before,
    );
    // And so do its readers: the account the failed run added cannot read it any more.
    expect([HOME, FRANKFURT].map((r) => pipeline.ssmAt(r)?.readers(latestAmi('keep-app')))).toEqual(
      readersBefore,
    );
    for (const region of [HOME, FRANKFURT]) {
      expect(ofRun(second.runId, region)).toEqual([]);
      expect(ofRun(first.runId, region)).toHaveLength(1);
    }
  });

  it('deletes the parameters a failed first release created, in every region', async () => {
    failAt = 'RecordRelease';
    const { execution, runId } = await release('first-app', [FRANKFURT]);

    expect(execution.status).toBe('FAILED');
    expect(pipeline.path(execution.executionArn)).toContain('PublishAmiIds');
    for (const region of [HOME, FRANKFURT]) {
      expect(pipeline.ssmAt(region)?.describe(latestAmi('first-app'))).toBeUndefined();
    }
    const restored = (await pipeline.runItems(runId))
      .filter((i) => i.type === 'UNDONE' && String(i.id).startsWith('RESTORE_PARAMETER#'))
      .map((i) => String(i.id));
    expect(restored.sort()).toEqual([
      `RESTORE_PARAMETER#${FRANKFURT}:${latestAmi('first-app')}`,
      `RESTORE_PARAMETER#${HOME}:${latestAmi('first-app')}`,
    ]);
  });

  it('withdraws the parameter from a region the app drops, and a failed run puts it back', async () => {
    const first = await release('shrink-app', [FRANKFURT], '1.0.0');
    const [copy] = ofRun(first.runId, FRANKFURT);
    expect(pipeline.ssmAt(FRANKFURT)?.describe(latestAmi('shrink-app'))?.stored).toBe(copy?.imageId);

    // A release that no longer goes to Frankfurt, failing after it published: Frankfurt's value is back.
    failAt = 'RecordRelease';
    const failed = await release('shrink-app', [], '2.0.0');
    expect(failed.execution.status).toBe('FAILED');
    expect(pipeline.ssmAt(FRANKFURT)?.describe(latestAmi('shrink-app'))?.stored).toBe(copy?.imageId);
    expect(pipeline.ssmAt(FRANKFURT)?.readers(latestAmi('shrink-app')).sort()).toEqual([
      APP_ACCOUNT,
      DR_ACCOUNT,
    ]);
    failAt = undefined;

    // The same release succeeding: Frankfurt no longer names the old copy, which is decommissioned.
    const shrunk = await release('shrink-app', [], '2.0.1');
    expect(shrunk.execution.status).toBe('SUCCEEDED');
    expect(pipeline.ssmAt(FRANKFURT)?.describe(latestAmi('shrink-app'))).toBeUndefined();
    expect(ofRun(first.runId, FRANKFURT)).toEqual([]);
    expect(pipeline.ssmAt(HOME)?.describe(latestAmi('shrink-app'))?.stored).toBe(
      ofRun(shrunk.runId, HOME)[0]?.imageId,
    );
  });

  it('retires a replaced release in every region, and the parameters name the new one', async () => {
    const first = await release('retire-app', [FRANKFURT], '1.0.0');
    const second = await release('retire-app', [FRANKFURT], '2.0.0');

    expect([first.execution.status, second.execution.status]).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    const decommission = pipeline.decommissions.list().find((e) => e.name === `decommission-${first.runId}`);
    expect(decommission?.status).toBe('SUCCEEDED');
    expect(pipeline.leftovers(first.runId)).toMatchObject({ images: [], snapshots: [], grants: [] });
    for (const region of [HOME, FRANKFURT]) {
      const [image] = ofRun(second.runId, region);
      expect(pipeline.ssmAt(region)?.describe(latestAmi('retire-app'))?.stored).toBe(image?.imageId);
    }
    const retired = (await pipeline.runItems(first.runId))
      .filter((i) => i.type === 'DECOMMISSIONED')
      .map((i) => String(i.id));
    expect(retired).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^DEREGISTER_IMAGE#eu-central-1\/ami-/),
        expect.stringMatching(/^REVOKE_GRANT#eu-central-1\//),
      ]),
    );
  });

  it('refuses an app asking for a region the stage does not distribute to, naming the field', async () => {
    const { execution, outcome } = await release('far-app', ['ap-southeast-2']);

    expect(execution.status).toBe('FAILED');
    expect(outcome).toMatchObject({ failedStage: 'PreProvision', error: 'AppConfigInvalidError' });
    expect(String(outcome.cause)).toContain(
      'appConfig.distribution.regions[0]: ap-southeast-2 is not a distribution region of stage dev (it has eu-central-1, us-east-1',
    );
  });
});
