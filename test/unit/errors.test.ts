import { transformSync } from 'esbuild';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { runInNewContext } from 'node:vm';
import * as errors from '../../shared/errors';

const { PipelineError, errorMessage, errorName } = errors;

type ErrorClass = new (...args: never[]) => Error;

const isErrorClass = (value: unknown): value is ErrorClass =>
  typeof value === 'function' && value.prototype instanceof PipelineError;

/** Every concrete error class shared/errors.ts exports, found by inspection rather than listed by hand. */
const errorClasses = Object.entries(errors).flatMap(([name, value]): [string, ErrorClass][] =>
  isErrorClass(value) ? [[name, value]] : [],
);

const instantiate = (name: string, cls: ErrorClass, cause?: unknown): Error => {
  const options = { cause };
  const args = name === 'AppConfigInvalidError' ? [['appConfig.x: bad'], options] : ['boom', options];
  return Reflect.construct(cls, args);
};

describe('pipeline errors', () => {
  it('exports every class the state machine catches', () => {
    expect(errorClasses.map(([name]) => name).sort()).toEqual([
      'AppConfigInvalidError',
      'AppConfigNotFoundError',
      'AuditConflictError',
      'BakeFailedError',
      'CanaryCheckFailedError',
      'ConfigurationError',
      'DistributionFailedError',
      'InvalidTaskInputError',
      'LockHeldError',
      'LogExportFailedError',
      'NoBuilderAvailableError',
      'ProvisionFailedError',
      'ReleaseLiveError',
      'RunConfigTooLargeError',
      'SmokeTestFailedError',
      'UnknownCommandError',
      'ValidationFailedError',
    ]);
  });

  it.each(errorClasses)('%s has a name equal to its class name, ending in Error', (name, cls) => {
    const err = instantiate(name, cls);

    expect(err.name).toBe(name);
    expect(err.name).toMatch(/Error$/);
    expect(err).toBeInstanceOf(PipelineError);
    expect(err).toBeInstanceOf(Error);
    expect(String(err)).toMatch(new RegExp(`^${name}: `));
  });

  it.each(errorClasses)('%s passes its cause on', (name, cls) => {
    const cause = new Error('root cause');

    const err = instantiate(name, cls, cause);

    expect(err.cause).toBe(cause);
  });

  it('keeps every name when esbuild minifies and renames the classes', () => {
    const source = readFileSync(path.join(__dirname, '..', '..', 'shared', 'errors.ts'), 'utf8');
    const { code } = transformSync(source, { loader: 'ts', format: 'cjs', minify: true, keepNames: false });
    const sandbox = { module: { exports: {} as Record<string, unknown> }, exports: {} };
    sandbox.exports = sandbox.module.exports;
    runInNewContext(code, sandbox);
    const minified = sandbox.module.exports;

    const names = errorClasses.map(([name]) => {
      const cls = minified[name];
      if (typeof cls !== 'function') throw new Error(`${name} missing from the minified module`);
      return [name, cls.name, instantiate(name, cls as ErrorClass).name];
    });

    // The minifier did rename the classes, so only a literal name can survive.
    for (const [name, minifiedClassName] of names) expect(minifiedClassName).not.toBe(name);
    expect(names.map(([name, , errName]) => [name, errName])).toEqual(
      errorClasses.map(([name]) => [name, name]),
    );
  });

  it('lists every violation in the AppConfigInvalidError message', () => {
    const err = new errors.AppConfigInvalidError(['appConfig.a: bad', 'appConfig.b: worse']);

    expect(err.violations).toEqual(['appConfig.a: bad', 'appConfig.b: worse']);
    expect(err.message).toBe('app config rejected (2 violation(s)): appConfig.a: bad; appConfig.b: worse');
  });

  describe('errorName and errorMessage', () => {
    it('read the name and message of an Error', () => {
      const err = new errors.LockHeldError('held');

      expect(errorName(err)).toBe('LockHeldError');
      expect(errorMessage(err)).toBe('held');
    });

    it('narrow values that are not Errors', () => {
      expect(errorName({ name: 'States.Timeout' })).toBe('States.Timeout');
      expect(errorName('boom')).toBe('Error');
      expect(errorName(null)).toBe('Error');
      expect(errorMessage('boom')).toBe('boom');
      expect(errorMessage(42)).toBe('42');
    });
  });
});
