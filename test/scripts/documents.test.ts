import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { assetsPrefix, listAssets } from '../../config/assets.cjs';
import {
  bakeResultSchema,
  COMMAND_STEPS,
  DOCUMENT_PARAMETERS,
  PARAMETER_PATTERNS,
  type CommandStep,
  type DocumentParameter,
} from '../../shared/commands/contract';
import {
  ARTIFACTS_BUCKET,
  BASE_AMI,
  BASE_IMAGE_PARAMETER,
  resultKeyOf,
  RUN_CONFIG_PARAMETER,
  runConfig,
  stepParameters,
} from './support/fixtures';
import { CONFIG_DIR, Sandbox, SCRIPTS_DIR } from './support/sandbox';

interface CommandDocument {
  schemaVersion: string;
  description: string;
  parameters: Record<
    string,
    { type: string; description: string; allowedPattern: string; interpolationType?: string }
  >;
  mainSteps: { action: string; name: string; inputs: { timeoutSeconds: unknown; runCommand: string[] } }[];
}

const loadDocument = (step: CommandStep): CommandDocument =>
  parse(readFileSync(path.join(CONFIG_DIR, 'ssm', `${step}.yml`), 'utf8')) as CommandDocument;

/** Parameters whose value a shell sees; executionTimeout only fills the step's timeoutSeconds. */
const shellParameters = (step: CommandStep): DocumentParameter[] =>
  DOCUMENT_PARAMETERS[step].filter((name) => name !== 'executionTimeout');

/** A value each pattern accepts, to build near-miss variants from. */
const VALID: Record<DocumentParameter, string> = {
  runConfigParameter: RUN_CONFIG_PARAMETER,
  artifactsBucket: ARTIFACTS_BUCKET,
  reportsBucket: 'ami-pipeline-dev-reports',
  resultPrefix: 'dev/sample-app/a1b2c3d4e5f60718293a/bake',
  assetsPrefix: 'tooling/0123456789abcdef',
  region: 'eu-west-1',
  kmsKeyArn: 'arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0',
  amiId: 'ami-0abcdef1234567890',
  lockTable: 'ami-pipeline-dev-coordination',
  mode: 'apply',
  asgName: 'sample-app-dev-a1b2c3d4e5f60718293a',
  allowedFailedControls: '10',
  executionTimeout: '3600',
};

const INJECTIONS = [';b', '$(x)', '`x`', ' x', "'", '"', '\n', '\nx', '|x', '&x'];

/** Every way of slipping an injection into a valid value: before, inside and after it. */
const variants = (valid: string): string[] =>
  INJECTIONS.flatMap((bad) => [
    `${valid}${bad}`,
    `${bad}${valid}`,
    `${valid.slice(0, 3)}${bad}${valid.slice(3)}`,
  ]);

describe('SSM command documents', () => {
  describe.each(COMMAND_STEPS)('%s', (step) => {
    const doc = loadDocument(step);
    const [mainStep] = doc.mainSteps;

    it('declares exactly the contract parameters, each a String with the contract pattern', () => {
      expect(doc.schemaVersion).toBe('2.2');
      expect(Object.keys(doc.parameters)).toEqual([...DOCUMENT_PARAMETERS[step]]);
      for (const name of DOCUMENT_PARAMETERS[step]) {
        const parameter = doc.parameters[name];
        expect(parameter).toMatchObject({ type: 'String', allowedPattern: PARAMETER_PATTERNS[name] });
        expect(parameter?.description.length).toBeGreaterThan(10);
      }
    });

    it('hands every parameter a shell sees over as an environment variable, never as script text', () => {
      for (const name of shellParameters(step)) {
        expect(doc.parameters[name]?.interpolationType).toBe('ENV_VAR');
      }
      expect(doc.mainSteps).toHaveLength(1);
      expect(mainStep?.action).toBe('aws:runShellScript');
      expect(mainStep?.inputs.runCommand.join('\n')).not.toContain('{{');
      expect(mainStep?.inputs.timeoutSeconds).toBe('{{ executionTimeout }}');
    });

    it('has no ${…} that the Serverless variable resolver would try to resolve', () => {
      expect(readFileSync(path.join(CONFIG_DIR, 'ssm', `${step}.yml`), 'utf8')).not.toContain('${');
    });

    it('exports each parameter under its own name and runs the step script from the synced assets', () => {
      const runCommand = mainStep?.inputs.runCommand ?? [];
      for (const name of shellParameters(step)) {
        expect(runCommand).toContain(`export ${name}="$SSM_${name}"`);
      }
      expect(runCommand).toContain('set -euo pipefail');
      expect(runCommand).toContain(
        'aws s3 sync --only-show-errors --region "$region" "s3://$artifactsBucket/$assetsPrefix/" "$workdir/assets/"',
      );
      expect(runCommand.at(-1)).toBe(`WORK_DIR="$workdir" bash "$workdir/assets/ssm/scripts/${step}.sh"`);
    });
  });

  it('runs the bake script end to end from the assets the deploy uploads, with parameters as SSM_<name>', () => {
    const box = new Sandbox();
    try {
      // Arrange: the assets where the deploy puts them, the run config, the document's runCommand.
      const prefix = assetsPrefix();
      for (const { key, file } of listAssets()) {
        const target = path.join(box.s3Dir, ARTIFACTS_BUCKET, prefix, key);
        mkdirSync(path.dirname(target), { recursive: true });
        copyFileSync(file, target);
      }
      box.putParameter(RUN_CONFIG_PARAMETER, JSON.stringify(runConfig()));
      box.putParameter(BASE_IMAGE_PARAMETER, BASE_AMI);
      const script = path.join(box.dir, '_script.sh');
      writeFileSync(script, (loadDocument('bake').mainSteps[0]?.inputs.runCommand ?? []).join('\n'));
      const env = Object.fromEntries(
        Object.entries(stepParameters('bake', { assetsPrefix: prefix })).map(([name, value]) => [
          `SSM_${name}`,
          value,
        ]),
      );
      const leftovers = () => readdirSync('/var/tmp').filter((name) => name.startsWith('ami-pipeline-bake.'));
      const before = leftovers();

      const run = box.run('bash', [script], env);

      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      expect(
        bakeResultSchema.safeParse(JSON.parse(box.object(ARTIFACTS_BUCKET, resultKeyOf('bake')) ?? 'null'))
          .success,
      ).toBe(true);
      const [packer] = box.callsTo('packer');
      expect(packer?.at(-1)).toMatch(
        /^\/var\/tmp\/ami-pipeline-bake\.\w{10}\/assets\/packer\/app\.pkr\.hcl$/,
      );
      expect(leftovers()).toEqual(before);
    } finally {
      box.remove();
    }
  });

  it('fails clearly on an SSM Agent too old to pass parameters as environment variables', () => {
    const box = new Sandbox();
    try {
      const script = path.join(box.dir, '_script.sh');
      writeFileSync(script, (loadDocument('validate').mainSteps[0]?.inputs.runCommand ?? []).join('\n'));

      const run = box.run('bash', [script]);

      expect(run.status).not.toBe(0);
      expect(run.stderr).toBe(
        'SSM_runConfigParameter is not set: this document needs SSM Agent 3.3.2746.0 or later (interpolationType ENV_VAR)\n',
      );
      expect(box.calls()).toEqual([]);
    } finally {
      box.remove();
    }
  });
});

describe('parameter patterns', () => {
  it('are the same in config/ssm/scripts/lib.sh as in the contract', () => {
    const out = spawnSync(
      'bash',
      [
        '-c',
        'source "$1"; for k in "${!PARAMETER_PATTERNS[@]}"; do printf "%s\\t%s\\n" "$k" "${PARAMETER_PATTERNS[$k]}"; done',
        '_',
        path.join(SCRIPTS_DIR, 'lib.sh'),
      ],
      { encoding: 'utf8' },
    );

    const inLib = Object.fromEntries(
      out.stdout
        .trim()
        .split('\n')
        .map((line) => line.split('\t')),
    );
    expect(inLib).toEqual(PARAMETER_PATTERNS);
  });

  it.each(Object.keys(VALID) as DocumentParameter[])(
    '%s accepts its sample and rejects it with ; $( ) ` space quote or newline slipped in, in JS and in bash',
    (name) => {
      const pattern = PARAMETER_PATTERNS[name];
      const candidates = variants(VALID[name]);

      expect(new RegExp(pattern).test(VALID[name])).toBe(true);
      expect(candidates.filter((value) => new RegExp(pattern).test(value))).toEqual([]);
      // bash's [[ =~ ]] (POSIX ERE) is what the scripts use: ^ and $ must anchor the whole value there too.
      const bash = spawnSync(
        'bash',
        [
          '-c',
          'export LC_ALL=C; re=$1; shift; for v in "$@"; do if [[ $v =~ $re ]]; then printf "%s\\0" "$v"; fi; done',
          '_',
          pattern,
          VALID[name],
          ...candidates,
        ],
        { encoding: 'utf8' },
      );
      expect(bash.stdout.split('\0').filter((v) => v !== '')).toEqual([VALID[name]]);
    },
  );
});

describe('the assets the documents run', () => {
  it('include every step script and its library', () => {
    const keys = listAssets().map((asset) => asset.key);

    for (const step of COMMAND_STEPS) expect(keys).toContain(`ssm/scripts/${step}.sh`);
    expect(keys).toContain('ssm/scripts/lib.sh');
    expect(existsSync(path.join(CONFIG_DIR, 'packer', 'app.pkr.hcl'))).toBe(true);
  });
});
