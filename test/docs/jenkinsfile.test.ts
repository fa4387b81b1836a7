import { readFileSync } from 'node:fs';
import path from 'node:path';
import { run } from '../../cli/main';
import { CliError } from '../../cli/errors';

/**
 * examples/Jenkinsfile calls the CLI; a renamed command or option would only show in a team's
 * Jenkins. Every `npx ami-pipeline …` line it runs (not its comments) must parse with the real
 * program: the stub context proves parsing got as far as the command's action.
 */
const REPO_ROOT = path.resolve(__dirname, '..', '..');
const jenkinsfile = readFileSync(path.join(REPO_ROOT, 'examples/Jenkinsfile'), 'utf8');

/** Stand-ins for the shell variables the Jenkinsfile sets. */
const VARIABLES: Record<string, string> = {
  STAGE: 'prod',
  REGION: 'eu-west-1',
  APP_ID: 'sample-app',
  APP_VERSION: '1.4.2',
  AMI_BUILD_ID: 'jenkins-812',
  WORKSPACE: REPO_ROOT,
  APP_CONFIG: 'config/apps/sample-app.yml',
  ARTIFACT: 'package.json',
  AMI_REQUESTED_BY: 'alice',
};

/** The CLI invocations of the shell steps, continuation lines joined, redirections dropped. */
const invocations = (): string[] =>
  jenkinsfile
    .replace(/\\\\\n\s*/g, ' ')
    .split('\n')
    .filter((line) => !line.trim().startsWith('//') && line.includes('npx ami-pipeline'))
    // Messages that merely name a command (error("… Check: npx ami-pipeline …")) run nothing.
    .filter((line) => !/\berror\(|\becho\b/.test(line))
    .map((line) => {
      const start = line.indexOf('npx ami-pipeline') + 'npx ami-pipeline'.length;
      const end = line.slice(start).search(/\s>|\s\||'|$/);
      return line.slice(start, start + end).trim();
    });

/** Splits a shell command line (double-quoted words, $VAR expansion). */
const words = (command: string): string[] =>
  [...command.matchAll(/"([^"]*)"|(\S+)/g)].map(([, quoted, bare]) =>
    (quoted ?? bare ?? '').replace(/\$\{?([A-Z_]+)\}?/g, (_, name: string) => {
      const value = VARIABLES[name];
      if (value === undefined) throw new Error(`the test has no value for $${name}`);
      return value;
    }),
  );

describe('examples/Jenkinsfile', () => {
  const found = invocations();

  it('runs the CLI for config validate and trigger', () => {
    expect(found.some((c) => c.includes('config validate'))).toBe(true);
    expect(found.some((c) => c.includes(' trigger'))).toBe(true);
  });

  it.each(found)('`ami-pipeline %s` is a valid command line', async (command) => {
    const err: string[] = [];
    const io = { out: () => undefined, err: (text: string) => void err.push(text), isTTY: false };
    const reached = new CliError('parsed: the action asked for its context');
    const code = await run(words(command), {
      io,
      open: () => Promise.reject(reached),
    });

    if (command.includes('config validate')) {
      // Offline, no context: the sample app breaks prod's rules, which is exit 1, not a usage error.
      expect(code).toBe(1);
      expect(err).toEqual([]);
    } else {
      // Parsed, validated by commander, and the action asked for AWS: the stub's error, exit 1.
      expect(err).toEqual([`ami-pipeline: ${reached.message}`]);
      expect(code).toBe(1);
    }
  });
});
