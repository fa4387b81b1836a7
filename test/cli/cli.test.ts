import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { CliDeps } from '../../cli/main';
import { REPO_ROOT } from '../harness/template';
import { cli, tableRecords } from './support';

/**
 * What every command shares (help, usage errors, exit codes) and `config validate`, which works
 * offline: neither may open AWS or the local harness.
 */
describe('ami-pipeline', () => {
  let opened = 0;
  const deps: CliDeps = {
    open: async () => {
      opened++;
      throw new Error('this command must not open AWS or the local harness');
    },
  };
  const sampleApp = path.join(REPO_ROOT, 'config/apps/sample-app.yml');
  const sampleText = readFileSync(sampleApp, 'utf8');
  let work: string;

  beforeAll(() => {
    work = mkdtempSync(path.join(tmpdir(), 'ami-pipeline-cli-config-'));
  });

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  afterEach(() => {
    expect(opened).toBe(0);
  });

  /** An app config file in the temp dir: sample-app.yml with `edit` applied to its text. */
  const configFile = (name: string, edit: (text: string) => string) => {
    const file = path.join(work, name);
    writeFileSync(file, edit(sampleText));
    return file;
  };
  const replace = (from: string | RegExp, to: string) => (text: string) => {
    const edited = text.replace(from, to);
    if (edited === text) throw new Error(`sample-app.yml has no ${String(from)}`);
    return edited;
  };

  describe('help and usage errors', () => {
    it.each([[['--help']], [['audit', '--help']], [['trigger', '--help']], [['status', '--help']]])(
      '%j prints help and exits 0',
      async (argv) => {
        const { code, stdout, stderr } = await cli(argv, deps);

        expect(code).toBe(0);
        expect(stdout).toMatch(/^Usage: ami-pipeline/);
        expect(stderr).toEqual([]);
      },
    );

    it('lists every command in the top-level help', async () => {
      const { stdout } = await cli(['--help'], deps);

      for (const command of ['trigger', 'status', 'runs', 'audit', 'config'])
        expect(stdout).toContain(command);
    });

    it.each([
      [['frobnicate'], "unknown command 'frobnicate'"],
      [['audit', 'live', '--colour'], "unknown option '--colour'"],
      [['audit', 'live', '--env'], "option '--env <environment>' argument missing"],
      [
        ['--output', 'xml', 'audit', 'live'],
        "option '--output <format>' argument 'xml' is invalid. Allowed choices are table, json, csv.",
      ],
      [
        ['runs', 'sample-app', '--limit', '0'],
        "option '--limit <n>' argument '0' is invalid. must be a whole number ≥ 1",
      ],
      [['audit', 'resource'], "missing required argument 'id'"],
    ])('%j exits 2 with one line on stderr', async (argv, message) => {
      const { code, stdout, stderr } = await cli(argv, deps);

      expect(code).toBe(2);
      expect(stdout).toBe('');
      expect(stderr).toEqual([`ami-pipeline: ${message} (see --help)`]);
    });

    // cli/main.ts configureOutput.outputError keeps commander's "\n(Did you mean …?)" line: a typo
    // gets two lines on stderr. Joining the lines (`.replace(/\s*\n\s*/g, ' ')`) makes it one.
    it.each([
      [['statu', 'sample-app'], "unknown command 'statu' (Did you mean status?)"],
      [['audit', 'live', '--ouptut', 'json'], "unknown option '--ouptut' (Did you mean --output?)"],
    ])('%j (a typo) exits 2 with one line on stderr', async (argv, message) => {
      const { code, stderr } = await cli(argv, deps);

      expect(code).toBe(2);
      expect(stderr).toEqual([`ami-pipeline: ${message} (see --help)`]);
    });

    // `--since`/`--until` are parsed inside the command, after open(): without AWS credentials (or
    // with no local state) a bad time reads as that error, exit 1, not as a usage error, exit 2.
    // cli/main.ts `window(opts)` should run before `withContext` (or as commander argParsers).
    it('refuses a bad --since as a usage error before opening AWS', async () => {
      const { code, stderr } = await cli(['audit', 'app', 'sample-app', '--since', 'yesterday'], {
        open: async () => {
          throw Object.assign(new Error('Could not load credentials from any providers'), {
            name: 'CredentialsProviderError',
          });
        },
      });

      expect(code).toBe(2);
      expect(stderr).toHaveLength(1);
      expect(stderr[0]).toContain('--since: "yesterday" must be a date');
    });
  });

  describe('config validate', () => {
    it('accepts config/apps/sample-app.yml for dev, the default stage', async () => {
      const { code, stdout, stderr } = await cli(['config', 'validate', sampleApp], deps);

      expect(code).toBe(0);
      expect(stderr).toEqual([]);
      expect(stdout).toBe('✔ config/apps/sample-app.yml is valid for dev (schema and config/rules.yml)\n');
    });

    it('refuses sample-app.yml for prod, naming each field and the rule it breaks', async () => {
      const { code, stdout } = await cli(['config', 'validate', sampleApp, '--env', 'prod'], deps);

      expect(code).toBe(1);
      expect(tableRecords(stdout)).toEqual([
        {
          field: 'runtime.instanceType',
          rule: 't3.small is not allowed in prod (allowed: m5.large, m5.xlarge, m6i.large, m6i.xlarge, c5.large)',
        },
        { field: 'runtime.minSize', rule: '1 is below the prod minimum of 2' },
        { field: 'inspec.allowedFailedControls', rule: '2 exceeds the prod limit of 0' },
      ]);
      expect(stdout).toContain('✗ config/apps/sample-app.yml: 3 violations for prod');
    });

    it('checks against the stage’s environment with --stage', async () => {
      const { code, stdout } = await cli(
        ['--stage', 'prod', 'config', 'validate', sampleApp, '--output', 'json'],
        deps,
      );

      expect(code).toBe(1);
      expect(JSON.parse(stdout)).toMatchObject({ environment: 'prod', valid: false });
    });

    it('answers in JSON: the file, environment, validity and every violation', async () => {
      const file = configFile('rules.yml', (text) =>
        replace(
          'services: [s3, sqs, logs]',
          'services: [s3, ec2]',
        )(
          replace(
            'retentionDays: 90',
            'retentionDays: 14',
          )(replace('data-classification: confidential', 'data-classification: secret')(text)),
        ),
      );

      const { code, stdout } = await cli(['config', 'validate', file, '--output', 'json'], deps);

      expect(code).toBe(1);
      expect(JSON.parse(stdout)).toEqual({
        file,
        environment: 'dev',
        valid: false,
        violations: [
          'services[1]: ec2 is not an allowed AWS service (allowed: s3, dynamodb, sqs, sns, kms, ssm, secretsmanager, cloudwatch, logs, xray)',
          'tags.data-classification: "secret" is not allowed (allowed: public, internal, confidential, restricted)',
          'logGroups[0].retentionDays: 14 is below the platform minimum of 30',
        ],
      });
    });

    it.each([
      [
        'an unknown nested field',
        replace('  port: 8080\n', '  port: 8080\n  colour: blue\n'),
        { field: 'runtime', rule: 'unknown field(s) "colour" (not in schemaVersion 1)' },
      ],
      [
        'a wrong type',
        replace('  minSize: 1', '  minSize: two'),
        { field: 'runtime.minSize', rule: 'Invalid input: expected number, received string' },
      ],
      [
        'a missing field',
        replace(/^owner:\n {2}team: payments-platform\n/m, 'owner:\n'),
        { field: 'owner.team', rule: 'is required (string)' },
      ],
      [
        'a log group outside the app’s prefix',
        replace('/app/sample-app/application', '/app/orders-web/application'),
        {
          field: 'logGroups[0].name',
          rule: '/app/orders-web/application must start with /app/sample-app/ (platform rule logGroupNamePrefix: /app/{appId}/)',
        },
      ],
      [
        'invalid YAML',
        () => 'appId: [unclosed\n  bad: : :\n',
        {
          field: '(file)',
          rule: expect.stringMatching(/^not valid YAML: .+ at line 1, column \d+: "appId: \[unclosed"$/),
        },
      ],
    ])('refuses %s with exit 1, naming the field and the rule', async (name, edit, violation) => {
      const file = configFile(`${name.replace(/\W+/g, '-')}.yml`, edit);

      const { code, stdout, stderr } = await cli(['config', 'validate', file], deps);

      expect(code).toBe(1);
      expect(stderr).toEqual([]);
      expect(tableRecords(stdout)).toEqual([violation]);
      expect(stdout).toContain(': 1 violation for dev');
    });

    it('refuses a duplicated YAML key with its line', async () => {
      const file = configFile('duplicate.yml', replace(/^owner:/m, 'appId: sample-app-2\nowner:'));

      const { code, stdout } = await cli(['config', 'validate', file, '--output', 'json'], deps);

      expect(code).toBe(1);
      expect(JSON.parse(stdout)).toMatchObject({
        valid: false,
        violations: [expect.stringMatching(/^\(file\): not valid YAML: Map keys must be unique at line 5\b/)],
      });
    });

    // cli/commands/config.ts keeps the first line of yaml's error: "Map keys must be unique at line
    // 5, column 1:" — the key itself (appId) is only in the code frame it drops.
    it('names the duplicated key', async () => {
      const file = configFile('duplicate-named.yml', replace(/^owner:/m, 'appId: sample-app-2\nowner:'));

      const { stdout } = await cli(['config', 'validate', file, '--output', 'json'], deps);

      expect((JSON.parse(stdout) as { violations: string[] }).violations.join('\n')).toMatch(/\bappId\b/);
    });

    // cli/commands/config.ts strips the trigger's `appConfig.` prefix, but a root-level issue has
    // the path `appConfig` alone ("appConfig: unknown field(s) …"), so the field column names a key
    // the file does not have. Strip `appConfig:` to `(file):` too.
    it('names the file itself, not "appConfig", for an unknown top-level field', async () => {
      const file = configFile('unknown-top.yml', replace(/^owner:/m, 'colour: blue\nowner:'));

      const { stdout } = await cli(['config', 'validate', file], deps);

      expect(tableRecords(stdout)).toEqual([
        { field: '(file)', rule: 'unknown field(s) "colour" (not in schemaVersion 1)' },
      ]);
    });

    it('reports an unreadable file in one line, exit 1', async () => {
      const missing = path.join(work, 'missing.yml');

      const { code, stdout, stderr } = await cli(['config', 'validate', missing], deps);

      expect(code).toBe(1);
      expect(stdout).toBe('');
      expect(stderr).toHaveLength(1);
      expect(stderr[0]).toMatch(new RegExp(`^ami-pipeline: cannot read ${missing}: ENOENT`));
    });
  });
});
