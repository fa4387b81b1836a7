import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseDocument } from 'yaml';
import type { StageConfig } from '../../shared/config/stage';
import { loadStageConfig } from '../../shared/config/stage-file';
import { CONFIG_DIR } from './support/fixtures';

// config/stage.cjs always reads the repo's config/ folder. Wrapping the real loader lets a test
// record which folder and stage it asked for, and hand it a stage file of the test's own.
jest.mock('../../shared/config/stage-file', () => {
  const actual = jest.requireActual<{ loadStageConfig: (stage: string, dir?: string) => unknown }>(
    '../../shared/config/stage-file',
  );
  return { ...actual, loadStageConfig: jest.fn(actual.loadStageConfig) };
});

const realLoadStageConfig = jest.requireActual<{ loadStageConfig: typeof loadStageConfig }>(
  '../../shared/config/stage-file',
).loadStageConfig;

/** The part of what Serverless hands a `${file(./config/stage.cjs):<export>}` source that stage.cjs uses. */
interface VariableSourceArgs {
  resolveVariable: (variable: string) => Promise<unknown>;
}

/** config/stage.cjs, the variable source serverless.yml resolves with `${file(./config/stage.cjs):…}`. */
interface StageSource {
  load: (args: VariableSourceArgs) => Promise<StageConfig>;
  auditorPrincipals: (args: VariableSourceArgs) => Promise<unknown[]>;
  approverPrincipals: (args: VariableSourceArgs) => Promise<unknown[]>;
  json: (args: VariableSourceArgs) => Promise<string>;
}

// A CommonJS file without type declarations, loaded through Jest's registry so that its
// `require('../shared/config/stage-file.ts')` gets the wrapped loader above.
const stageSource = jest.requireActual<StageSource>('../../config/stage.cjs');

const PRINCIPALS = [
  'arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Auditor_0123456789abcdef',
  'arn:aws:iam::210987654321:root',
];

/** Serverless as stage.cjs sees it while packaging `stage`: it answers `${sls:stage}` and nothing else. */
const packaging = (stage: string): VariableSourceArgs => ({
  resolveVariable: async (variable) => {
    if (variable !== 'sls:stage') throw new Error(`stage.cjs asked for \${${variable}}`);
    return stage;
  },
});

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'ami-pipeline-stage-cjs-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
  jest.mocked(loadStageConfig).mockReset().mockImplementation(realLoadStageConfig);
});

describe('config/stage.cjs: who may assume the auditor role', () => {
  it('passes on the principals the packaged stage’s config names, read from the repo’s config folder', async () => {
    // config/dev.yml as the repo holds it, renamed to stage qa, with its auditors named.
    const qa = parseDocument(readFileSync(path.join(CONFIG_DIR, 'dev.yml'), 'utf8'));
    qa.set('stage', 'qa');
    qa.setIn(['audit', 'auditorPrincipals'], qa.createNode(PRINCIPALS));
    writeFileSync(path.join(dir, 'qa.yml'), String(qa));
    jest.mocked(loadStageConfig).mockImplementationOnce((stage) => realLoadStageConfig(stage, dir));

    const principals = await stageSource.auditorPrincipals(packaging('qa'));

    expect(principals).toEqual(PRINCIPALS);
    expect(loadStageConfig).toHaveBeenCalledWith('qa', CONFIG_DIR);
  });

  it.each(['dev', 'prod'])(
    'falls back to the account root, left to CloudFormation, as config/%s.yml names none',
    async (stage) => {
      const principals = await stageSource.auditorPrincipals(packaging(stage));

      expect(principals).toEqual([{ 'Fn::Sub': 'arn:${AWS::Partition}:iam::${AWS::AccountId}:root' }]);
      expect(loadStageConfig).toHaveBeenCalledWith(stage, CONFIG_DIR);
    },
  );
});

describe('config/stage.cjs: who may assume the approver role', () => {
  it("passes on the approvers the packaged stage's config names", async () => {
    const qa = parseDocument(readFileSync(path.join(CONFIG_DIR, 'prod.yml'), 'utf8'));
    qa.set('stage', 'qa');
    qa.setIn(['approval', 'approverPrincipals'], qa.createNode(PRINCIPALS));
    writeFileSync(path.join(dir, 'qa.yml'), String(qa));
    jest.mocked(loadStageConfig).mockImplementationOnce((stage) => realLoadStageConfig(stage, dir));

    const principals = await stageSource.approverPrincipals(packaging('qa'));

    expect(principals).toEqual(PRINCIPALS);
  });

  it.each(['dev', 'prod'])(
    'falls back to the account root, left to CloudFormation, as config/%s.yml names none',
    async (stage) => {
      const principals = await stageSource.approverPrincipals(packaging(stage));

      expect(principals).toEqual([{ 'Fn::Sub': 'arn:${AWS::Partition}:iam::${AWS::AccountId}:root' }]);
    },
  );
});

describe('config/stage.cjs: the stage config as JSON (STAGE_CONFIG)', () => {
  it.each(['dev', 'prod'])('gives the validated config/%s.yml as JSON text', async (stage) => {
    const json = await stageSource.json(packaging(stage));

    expect(typeof json).toBe('string');
    expect(JSON.parse(json)).toEqual(realLoadStageConfig(stage, CONFIG_DIR));
  });

  it('refuses a config too large for a Lambda environment, at package time', async () => {
    const qa = parseDocument(readFileSync(path.join(CONFIG_DIR, 'dev.yml'), 'utf8'));
    qa.set('stage', 'qa');
    qa.setIn(
      ['builder', 'targets'],
      qa.createNode({
        instanceIds: Array.from({ length: 120 }, (_, i) => `i-${String(i).padStart(17, '0')}`),
      }),
    );
    writeFileSync(path.join(dir, 'qa.yml'), String(qa));
    jest.mocked(loadStageConfig).mockImplementationOnce((stage) => realLoadStageConfig(stage, dir));

    await expect(stageSource.json(packaging('qa'))).rejects.toThrow(/STAGE_CONFIG may hold at most 2048/);
  });
});
