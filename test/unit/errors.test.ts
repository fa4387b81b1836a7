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
      'ApprovalAlreadyDecidedError',
      'ApprovalExpiredError',
      'ApprovalNotFoundError',
      'ApprovalNotVerifiedError',
      'ApprovalRejectedError',
      'AuditConflictError',
      'AwsTransientError',
      'BakeFailedError',
      'CanaryCheckFailedError',
      'CommandNotRecordedError',
      'CommandOutcomeUnknownError',
      'ConfigurationError',
      'CopyPendingError',
      'DistributionFailedError',
      'InvalidDecisionError',
      'InvalidTaskInputError',
      'LockHeldError',
      'LogExportFailedError',
      'NoBuilderAvailableError',
      'NotAnApproverError',
      'ProvisionFailedError',
      'ReleaseLiveError',
      'RunConfigTooLargeError',
      'SmokeTestFailedError',
      'StartInProgressError',
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
    const sandbox = { module: { exports: {} as Record<string, unknown> }, exports: {}, require };
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

  describe('forStateMachine', () => {
    /** An error as the SDK deserializes it: a name, an HTTP status, sometimes the $retryable trait. */
    const sdkError = (name: string, httpStatusCode?: number, extra: Record<string, unknown> = {}) =>
      Object.assign(new Error(`${name} happened`), {
        name,
        $fault: httpStatusCode && httpStatusCode >= 500 ? 'server' : 'client',
        $metadata: httpStatusCode ? { httpStatusCode, attempts: 3 } : {},
        ...extra,
      });

    it.each([
      ['EC2 throttle', sdkError('RequestLimitExceeded', 503)],
      ['EC2 unavailable', sdkError('Unavailable', 503)],
      ['S3 throttle', sdkError('SlowDown', 503)],
      ['S3 internal error', sdkError('InternalError', 500)],
      ['KMS internal error', sdkError('KMSInternalException', 500)],
      ['ELB and CloudWatch throttle', sdkError('Throttling', 400)],
      ['DynamoDB throttle', sdkError('ProvisionedThroughputExceededException', 400)],
      ['a 504 of any name', sdkError('SomethingNew', 504)],
      ['a 501 (a server error the SDK does not retry itself)', sdkError('NotImplemented', 501)],
      ['a request timeout', sdkError('TimeoutError', undefined, { $metadata: { attempts: 3 } })],
      ['a connection reset', Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })],
      ['the $retryable trait', sdkError('Whatever', 400, { $retryable: {} })],
    ])('names %s AwsTransientError, keeping the original name in the message and as cause', (_, err) => {
      const thrown = errors.forStateMachine(err);

      expect(thrown).toBeInstanceOf(errors.AwsTransientError);
      expect((thrown as Error).name).toBe('AwsTransientError');
      expect((thrown as Error).message).toBe(`${err.name}: ${err.message}`);
      expect((thrown as Error).cause).toBe(err);
    });

    it.each([
      ['a validation error', sdkError('ValidationException', 400)],
      ['an access denial', sdkError('AccessDeniedException', 403)],
      ['a missing resource', sdkError('InvalidAMIID.NotFound', 400)],
      ['a conditional check', sdkError('ConditionalCheckFailedException', 400)],
      ['a bug', new TypeError("Cannot read properties of undefined (reading 'x')")],
      ['an aborted call', sdkError('AbortError')],
      [
        'an error of our own whose cause is a throttle',
        new Error('wrapped', { cause: sdkError('ThrottlingException', 400) }),
      ],
      [
        'a timeout that is not an AWS call (no $metadata)',
        Object.assign(new Error('t'), { name: 'TimeoutError' }),
      ],
      // The SDK counts it as throttling; for CloudWatch Logs and KMS it is a quota, which waiting does not lift.
      ['a quota reached (LimitExceededException)', sdkError('LimitExceededException', 400)],
    ])('leaves %s as it is', (_, err) => {
      expect(errors.forStateMachine(err)).toBe(err);
    });

    it('never renames a domain error, even one caused by a throttle: the state machine routes on its name', () => {
      const live = new errors.ReleaseLiveError('live, not recorded', {
        cause: sdkError('ProvisionedThroughputExceededException', 400),
      });

      expect(errors.forStateMachine(live)).toBe(live);
      expect(errors.forStateMachine('a string')).toBe('a string');
    });
  });
});
