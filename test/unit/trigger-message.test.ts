import { executionArnFor, executionInputFor } from '../../shared/trigger/handle';
import {
  executionInputSchema,
  executionNameFor,
  parseS3Uri,
  parseTriggerMessage,
  runIdFor,
  type TriggerMessage,
} from '../../shared/trigger/message';
import { ARTIFACTS_BUCKET, expectedRunId, sampleAppConfig, triggerMessage } from './support/fixtures';

const ctx = { stage: 'dev', artifactsBucket: ARTIFACTS_BUCKET };
const MAX_BYTES = 65536;

const parse = (message: unknown) => parseTriggerMessage(JSON.stringify(message), ctx, MAX_BYTES);

describe('trigger message', () => {
  describe('parseTriggerMessage', () => {
    it('accepts a message whose app config is an s3Uri under inputs/<appId>/', () => {
      const result = parse(triggerMessage());

      expect(result).toEqual({ ok: true, message: triggerMessage() });
    });

    it('accepts a message whose app config is inline', () => {
      const message = triggerMessage({ appConfig: sampleAppConfig() });

      const result = parse(message);

      expect(result).toEqual({ ok: true, message });
    });

    it('refuses an inline app config that carries an s3Uri next to other fields', () => {
      const result = parse(
        triggerMessage({
          appConfig: { s3Uri: `s3://${ARTIFACTS_BUCKET}/inputs/sample-app/c.yml`, owner: { team: 'x' } },
        }),
      );

      expect(result.ok).toBe(false);
    });

    it('measures the size limit in UTF-8 bytes, not characters', () => {
      const raw = JSON.stringify(triggerMessage({ appConfig: { note: 'é'.repeat(400) } }));
      const bytes = Buffer.byteLength(raw, 'utf8');

      const atLimit = parseTriggerMessage(raw, ctx, bytes);
      const overLimit = parseTriggerMessage(raw, ctx, raw.length);

      expect(atLimit.ok).toBe(true);
      expect(overLimit).toEqual({
        ok: false,
        violations: [`(message): is ${bytes} bytes, at most ${raw.length} allowed`],
      });
    });

    it('names the whole message when the JSON is not an object', () => {
      expect(parse(null)).toEqual({
        ok: false,
        violations: ['(message): Invalid input: expected object, received null'],
      });
      expect(parse([])).toEqual({
        ok: false,
        violations: ['(message): Invalid input: expected object, received array'],
      });
    });

    it('checks that environment equals the stage the message was sent to', () => {
      const prodCtx = { stage: 'prod', artifactsBucket: 'ami-pipeline-prod-artifacts' };
      const message = triggerMessage({
        environment: 'prod',
        appConfig: { s3Uri: 's3://ami-pipeline-prod-artifacts/inputs/sample-app/c.yml' },
        artifact: {
          s3Uri: 's3://ami-pipeline-prod-artifacts/inputs/sample-app/a.tgz',
          sha256: 'c'.repeat(64),
        },
      });

      const inProd = parseTriggerMessage(JSON.stringify(message), prodCtx, MAX_BYTES);
      const inDev = parse(message);

      expect(inProd.ok).toBe(true);
      expect(inDev.ok).toBe(false);
      expect(inDev.ok ? [] : inDev.violations).toContain(
        'environment: must be "dev" (the stage this message was sent to)',
      );
    });

    it.each([
      ['a', false],
      ['ab', false],
      ['abc', true],
      ['sample-app', true],
      ['sample-app-', false],
      ['1sample', false],
      [`a${'b'.repeat(38)}c`, true],
      [`a${'b'.repeat(39)}c`, false],
    ])('validates appId %p against the contract pattern (valid: %p)', (appId, valid) => {
      const result = parse(
        triggerMessage({
          appId,
          appConfig: { s3Uri: `s3://${ARTIFACTS_BUCKET}/inputs/${appId}/c.yml` },
          artifact: { s3Uri: `s3://${ARTIFACTS_BUCKET}/inputs/${appId}/a.tgz`, sha256: 'c'.repeat(64) },
        }),
      );

      expect(result.ok).toBe(valid);
    });

    it.each([
      ['1.4.2', true],
      ['v1_4-2.rc1', true],
      ['x'.repeat(64), true],
      ['x'.repeat(65), false],
      ['', false],
      ['1.4.2;rm -rf', false],
      ['$(id)', false],
    ])('validates version %p against the contract pattern (valid: %p)', (version, valid) => {
      expect(parse(triggerMessage({ version })).ok).toBe(valid);
    });

    it.each([
      ['a single "." segment', `s3://${ARTIFACTS_BUCKET}/inputs/sample-app/./a.tgz`],
      ['a ".." segment', `s3://${ARTIFACTS_BUCKET}/inputs/sample-app/../../a.tgz`],
    ])('refuses an artifact URI with %s', (_case, s3Uri) => {
      const result = parse(triggerMessage({ artifact: { s3Uri, sha256: 'c'.repeat(64) } }));

      expect(result).toEqual({
        ok: false,
        violations: ['artifact.s3Uri: must not contain "." or ".." path segments'],
      });
    });

    it('refuses an artifact in a bucket whose name merely starts with the artifacts bucket', () => {
      const s3Uri = `s3://${ARTIFACTS_BUCKET}-evil/inputs/sample-app/a.tgz`;

      const result = parse(triggerMessage({ artifact: { s3Uri, sha256: 'c'.repeat(64) } }));

      expect(result).toEqual({
        ok: false,
        violations: [
          "artifact.s3Uri: must be in the stage's artifacts bucket s3://ami-pipeline-dev-artifacts/",
          'artifact.s3Uri: must start with s3://ami-pipeline-dev-artifacts/inputs/sample-app/',
        ],
      });
    });

    it("refuses an app config under another app's inputs even when the prefix is a substring", () => {
      const s3Uri = `s3://${ARTIFACTS_BUCKET}/inputs/sample-app-2/c.yml`;

      const result = parse(triggerMessage({ appConfig: { s3Uri } }));

      expect(result).toEqual({
        ok: false,
        violations: ['appConfig.s3Uri: must start with s3://ami-pipeline-dev-artifacts/inputs/sample-app/'],
      });
    });

    it('refuses an unknown field inside artifact, naming its path', () => {
      const artifact = { ...(triggerMessage().artifact as object), size: 10 };

      const result = parse(triggerMessage({ artifact }));

      expect(result).toEqual({
        ok: false,
        violations: ['artifact: unknown field(s) "size" (not in schemaVersion 1)'],
      });
    });
  });

  describe('runIdFor', () => {
    it('is the first 20 hex characters of SHA-256 over appId, environment and buildId', () => {
      expect(runIdFor('sample-app', 'dev', 'b-1')).toBe(expectedRunId('sample-app', 'dev', 'b-1'));
      expect(runIdFor('sample-app', 'dev', 'b-1')).toMatch(/^[a-f0-9]{20}$/);
    });

    it('changes with each of its inputs and cannot be confused by shifting text between them', () => {
      const ids = new Set([
        runIdFor('sample-app', 'dev', 'b-1'),
        runIdFor('sample-app', 'dev', 'b-2'),
        runIdFor('sample-app', 'prod', 'b-1'),
        runIdFor('other-app', 'dev', 'b-1'),
        runIdFor('sample-ap', 'pdev', 'b-1'),
      ]);

      expect(ids.size).toBe(5);
    });
  });

  describe('executionNameFor', () => {
    it('joins appId, environment and runId with hyphens', () => {
      expect(executionNameFor('sample-app', 'dev', 'abc')).toBe('sample-app-dev-abc');
    });
  });

  describe('executionArnFor', () => {
    it('turns a state machine ARN into the ARN of one of its executions', () => {
      const arn = executionArnFor(
        'arn:aws:states:eu-west-1:123456789012:stateMachine:ami-pipeline-dev',
        'x-dev-1',
      );

      expect(arn).toBe('arn:aws:states:eu-west-1:123456789012:execution:ami-pipeline-dev:x-dev-1');
    });
  });

  describe('executionInputFor', () => {
    it('builds an input the state machine contract accepts, without the app config itself', () => {
      const parsed = parse(triggerMessage({ appConfig: sampleAppConfig() }));
      if (!parsed.ok) throw new Error(parsed.violations.join('; '));
      if (!parsed.message) throw new Error('expected a release message');
      const message: TriggerMessage = parsed.message;
      const runId = expectedRunId('sample-app', 'dev', 'sample-app-release#118');

      const input = executionInputFor(message, runId, `s3://${ARTIFACTS_BUCKET}/inputs/sample-app/c.json`);

      expect(executionInputSchema.parse(input)).toEqual(input);
      expect(input).not.toHaveProperty('appConfig');
    });
  });

  describe('parseS3Uri', () => {
    it('splits an s3:// URI into bucket and key', () => {
      expect(parseS3Uri('s3://bucket-1/inputs/a/b.yml')).toEqual({
        bucket: 'bucket-1',
        key: 'inputs/a/b.yml',
      });
    });

    it('throws on anything that is not an s3:// URI', () => {
      expect(() => parseS3Uri('https://bucket-1.s3.amazonaws.com/a')).toThrow('not an s3:// URI');
    });
  });
});
