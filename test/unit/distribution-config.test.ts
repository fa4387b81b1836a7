import { appConfigSchema } from '../../shared/config/app';
import { checkRules, loadRules } from '../../shared/config/rules';
import { checkedStageConfigSchema } from '../../shared/config/stage';
import { loadStageConfig } from '../../shared/config/stage-file';
import { describeIssues } from '../../shared/validation';
import { checkDistribution } from '../../shared/pre-provision';
import { CONFIG_DIR, sampleAppConfig } from './support/fixtures';

const FRANKFURT_KEY = 'arn:aws:kms:eu-central-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef';

/** config/dev.yml with `regions` as its distribution regions. */
const devWith = (regions: Record<string, { kmsKeyArn: string }>) => {
  const dev = loadStageConfig('dev', CONFIG_DIR);
  return { ...dev, distribution: { ...dev.distribution, regions } };
};

const issuesOf = (parsed: { success: boolean; error?: Parameters<typeof describeIssues>[0] }) =>
  parsed.success || !parsed.error ? [] : describeIssues(parsed.error);

describe('distribution settings', () => {
  describe('of a stage', () => {
    it('accepts a region with a key of that region', () => {
      const parsed = checkedStageConfigSchema.safeParse(
        devWith({ 'eu-central-1': { kmsKeyArn: FRANKFURT_KEY } }),
      );
      expect(issuesOf(parsed)).toEqual([]);
    });

    it("refuses a key of another region, naming the region's field", () => {
      const parsed = checkedStageConfigSchema.safeParse(
        devWith({ 'us-east-1': { kmsKeyArn: FRANKFURT_KEY } }),
      );
      expect(issuesOf(parsed)).toEqual([
        'distribution.regions.us-east-1.kmsKeyArn: is a key in eu-central-1; a copy in us-east-1 must be encrypted with a key of us-east-1',
      ]);
    });

    it("refuses the stage's own region, whose AMI is encrypted with the stage key already", () => {
      const parsed = checkedStageConfigSchema.safeParse(
        devWith({ 'eu-west-1': { kmsKeyArn: FRANKFURT_KEY.replace(/eu-central-1/g, 'eu-west-1') } }),
      );
      expect(issuesOf(parsed)).toEqual([
        "distribution.regions.eu-west-1: is the stage's own region: its AMI is encrypted with the stage key already",
      ]);
    });

    it('refuses an alias or a key id instead of a key ARN', () => {
      for (const kmsKeyArn of ['alias/ami-pipeline-dev', 'mrk-0123456789abcdef0123456789abcdef']) {
        const parsed = checkedStageConfigSchema.safeParse(devWith({ 'eu-central-1': { kmsKeyArn } }));
        expect(issuesOf(parsed)).toEqual([
          expect.stringMatching(
            /^distribution\.regions\.eu-central-1\.kmsKeyArn: must be the ARN of a KMS key/,
          ),
        ]);
      }
    });
  });

  describe('of an app', () => {
    const stage = devWith({ 'eu-central-1': { kmsKeyArn: FRANKFURT_KEY } });
    const app = (distribution: unknown) => appConfigSchema.parse({ ...sampleAppConfig(), distribution });

    it('accepts regions the stage distributes to and any accounts', () => {
      expect(
        checkDistribution(app({ regions: ['eu-central-1'], accounts: ['444455556666'] }), stage),
      ).toEqual([]);
    });

    it("names every region the stage does not distribute to, and the stage's own region", () => {
      expect(
        checkDistribution(app({ regions: ['eu-west-1', 'eu-central-1', 'ap-southeast-2'] }), stage),
      ).toEqual([
        "distribution.regions[0]: eu-west-1 is the stage's own region, which always has the AMI",
        'distribution.regions[2]: ap-southeast-2 is not a distribution region of stage dev (it has eu-central-1; config/dev.yml distribution.regions)',
      ]);
    });

    it('refuses repeated regions or accounts and malformed ones, naming the field', () => {
      const parsed = appConfigSchema.safeParse({
        ...sampleAppConfig(),
        distribution: { regions: ['eu-central-1', 'eu-central-1'], accounts: ['4444', '444455556666'] },
      });
      expect(issuesOf(parsed).sort()).toEqual([
        'distribution.accounts.0: must be a 12-digit AWS account id',
        'distribution.regions: must not list a region twice',
      ]);
    });
  });

  describe('of the accounts an app shares with (config/rules.yml shareAccounts)', () => {
    const rules = loadRules(CONFIG_DIR);
    const app = (shareWithAccountId: string, accounts: string[]) =>
      appConfigSchema.parse({
        ...sampleAppConfig(),
        shareWithAccountId,
        distribution: { regions: [], accounts },
      });
    const sharing = (violations: string[]) =>
      violations.filter((v) => v.startsWith('shareWithAccountId') || v.startsWith('distribution.accounts'));

    it('accepts accounts the environment lists', () => {
      expect(sharing(checkRules(app('111122223333', ['444455556666']), rules, 'dev'))).toEqual([]);
    });

    it('names every account the environment does not list, the app account included', () => {
      expect(
        sharing(checkRules(app('555566667777', ['444455556666', '888899990000']), rules, 'dev')),
      ).toEqual([
        'shareWithAccountId: 555566667777 is not an account to share with (allowed in dev: 111122223333, 444455556666)',
        'distribution.accounts[1]: 888899990000 is not an account to share with (allowed in dev: 111122223333, 444455556666)',
      ]);
    });

    it('refuses further accounts where the environment lists none, and keeps the app account', () => {
      expect(rules.environments.prod?.shareAccounts).toBeUndefined();
      expect(sharing(checkRules(app('111122223333', []), rules, 'prod'))).toEqual([]);
      expect(sharing(checkRules(app('111122223333', ['444455556666']), rules, 'prod'))).toEqual([
        'distribution.accounts[0]: 444455556666: apps in prod share only with their shareWithAccountId (config/rules.yml environments.prod.shareAccounts lists no others)',
      ]);
    });
  });
});
