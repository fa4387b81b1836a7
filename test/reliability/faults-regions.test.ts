import { LocalPipeline } from '../harness/pipeline';
import { LOCAL_ACCOUNT_ID } from '../harness/template';
import { sampleAppConfig } from '../fixtures/messages';
import { FaultSuite, persistentPlan, transientFailures, type Baseline } from './faults-support';

/**
 * Issue 8, faults at every AWS call of a release copied to another region and shared with two
 * accounts: the copy's, the regional shares' and grants', and the published parameters' calls.
 * A transient fault at any of them must leave the same audit records as a clean run (a retried
 * CopyImage adopts its copy by client token, a retried grant is the same grant, a lost
 * PutResourcePolicy answer is read back); a persistent one must be compensated in every region.
 */
const REGION = 'eu-central-1';
const KEY = `arn:aws:kms:${REGION}:${LOCAL_ACCOUNT_ID}:key/mrk-0123456789abcdef0123456789abcdef`;

describe('faults at every AWS call of a release distributed to another region', () => {
  let pipeline: LocalPipeline;
  let suite: FaultSuite;
  let clean: Baseline;

  beforeAll(async () => {
    pipeline = await LocalPipeline.start({
      faults: true,
      stageOverrides: { distribution: { regions: { [REGION]: { kmsKeyArn: KEY } } } },
    });
    suite = new FaultSuite(pipeline, 'fr', (appId) =>
      sampleAppConfig({ appId, distribution: { regions: [REGION], accounts: ['444455556666'] } }),
    );
    clean = await suite.baseline();
  }, 60_000);

  afterAll(async () => {
    if (suite) console.log(suite.summary());
    await pipeline?.stop();
  });

  /** The calls distribution makes: in the other region, and the states that copy and publish. */
  const distributionSites = () =>
    clean.sites.filter(
      (s) => s.service.endsWith(`@${REGION}`) || ['CopyToRegion', 'PublishAmiIds'].includes(s.caller),
    );

  it("records the other region's calls as sites of their own", () => {
    expect(clean.expected.state).toBe('SUCCEEDED');
    expect(distributionSites().map((s) => s.site)).toEqual(
      expect.arrayContaining([
        `CopyToRegion → EC2@${REGION}:CopyImage`,
        `CopyToRegion → EC2@${REGION}:ModifyImageAttribute`,
        `CopyToRegion → KMS@${REGION}:CreateGrant`,
        `PublishAmiIds → SSM@${REGION}:PutParameter`,
        `PublishAmiIds → SSM@${REGION}:PutResourcePolicy`,
      ]),
    );
  });

  it('absorbs a transient fault at each call of distribution: the same records, nothing twice', async () => {
    expect(await transientFailures(suite, distributionSites(), clean.expected)).toEqual([]);
  }, 300_000);

  it('compensates a persistent fault in the other region: nothing survives in either region', async () => {
    const failures: string[] = [];
    // DescribeImages included: the worker looks once before the EC2 waiter (which retries every
    // error until copyWaitSeconds), so a persistent failure fails the attempt at once.
    const regional = distributionSites().filter((s) => s.service.endsWith(`@${REGION}`) && s.layer === 'sdk');
    for (const site of regional) {
      const result = await suite.run([persistentPlan(site)]);
      if (result.state !== 'COMPENSATED' || result.problems.length > 0) {
        failures.push(
          `${site.site}: ${result.state} ${result.execution?.error ?? ''}${result.problems.map((p) => `\n    ${p}`).join('')}`,
        );
      }
    }
    expect(regional.length).toBeGreaterThan(5);
    expect(failures).toEqual([]);
  }, 300_000);
});
