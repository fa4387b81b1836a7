import { executionArnFor, executionInputFor } from '../../shared/trigger/handle';
import {
  executionInputSchema,
  executionNameFor,
  jsonStructureViolations,
  MAX_MESSAGE_DEPTH,
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

  describe('parseTriggerMessage with keys JSON.parse would silently drop', () => {
    const DUPLICATED = 'duplicated key (JSON keeps only the last; send each key once)';
    const raw = JSON.stringify(triggerMessage());

    it('refuses a key given twice, naming it, although the last value alone would be valid', () => {
      const twice = raw.replace('"appId":"sample-app"', '"appId":"other-app","appId":"sample-app"');

      expect(JSON.parse(twice)).toEqual(triggerMessage());
      expect(parseTriggerMessage(twice, ctx, MAX_BYTES)).toEqual({
        ok: false,
        violations: [`appId: ${DUPLICATED}`],
      });
    });

    it('refuses a key repeated with the same value: the message is malformed either way', () => {
      const twice = raw.replace('"environment":"dev"', '"environment":"dev","environment":"dev"');

      expect(parseTriggerMessage(twice, ctx, MAX_BYTES)).toEqual({
        ok: false,
        violations: [`environment: ${DUPLICATED}`],
      });
    });

    it('compares keys decoded, so an escaped spelling is the same key', () => {
      const twice = raw.replace('"appId":"sample-app"', '"app\\u0049d":"other-app","appId":"sample-app"');

      expect(parseTriggerMessage(twice, ctx, MAX_BYTES)).toEqual({
        ok: false,
        violations: [`appId: ${DUPLICATED}`],
      });
    });

    it('names a duplicate inside objects and lists by its path, with any schema violation', () => {
      const inline = JSON.stringify(triggerMessage({ appConfig: sampleAppConfig(), version: '$(id)' }));
      const twice = inline.replace('"logGroups":[{"name":', '"logGroups":[{"name":"/x","name":');

      const result = parseTriggerMessage(twice, ctx, MAX_BYTES);

      expect(result).toEqual({
        ok: false,
        violations: [
          `appConfig.logGroups.0.name: ${DUPLICATED}`,
          expect.stringMatching(/^version: must match/),
        ],
      });
    });

    it('does not take text inside a string value for a key', () => {
      const message = triggerMessage({ appConfig: { ...sampleAppConfig(), note: '{"appId":1,"appId":2}' } });

      expect(parseTriggerMessage(JSON.stringify(message), ctx, MAX_BYTES).ok).toBe(true);
    });

    it('lists ten duplicated keys and counts the rest', () => {
      const keys = Array.from({ length: 14 }, (_, i) => `"k${i}":1,"k${i}":2`).join(',');

      const { violations } = jsonStructureViolations(`{${keys}}`);

      expect(violations).toEqual([
        ...Array.from({ length: 10 }, (_, i) => `k${i}: ${DUPLICATED}`),
        '(message): 4 more duplicated key(s)',
      ]);
    });
  });

  describe('parseTriggerMessage with deep nesting', () => {
    /** The sample message with `depth` levels in all (message → appConfig → bake → chefAttributes → lists). */
    const nestedTo = (depth: number) =>
      JSON.stringify(triggerMessage({ appConfig: sampleAppConfig() })).replace(
        '"chefAttributes":{',
        `"chefAttributes":{"deep":${'['.repeat(depth - 4)}${']'.repeat(depth - 4)},`,
      );

    it(`accepts ${MAX_MESSAGE_DEPTH} levels`, () => {
      expect(parseTriggerMessage(nestedTo(MAX_MESSAGE_DEPTH), ctx, MAX_BYTES).ok).toBe(true);
    });

    it.each([MAX_MESSAGE_DEPTH + 1, 20000])(
      'refuses %p levels, naming where, before JSON.stringify or YAML could overflow the stack',
      (depth) => {
        expect(parseTriggerMessage(nestedTo(depth), ctx, MAX_BYTES)).toEqual({
          ok: false,
          violations: [
            expect.stringMatching(
              new RegExp(
                `^appConfig\\.bake\\.chefAttributes\\.deep(\\.0)*…?: nests objects and arrays deeper than ${MAX_MESSAGE_DEPTH} levels$`,
              ),
            ),
          ],
        });
      },
    );
  });

  describe('parseTriggerMessage naming fields an attacker controls', () => {
    it('refuses a single quote in an S3 key, as the builder does (the URI reaches a shell there)', () => {
      const s3Uri = `s3://${ARTIFACTS_BUCKET}/inputs/sample-app/118/it's.tgz`;

      const result = parseTriggerMessage(
        JSON.stringify(triggerMessage({ artifact: { s3Uri, sha256: 'c'.repeat(64) } })),
        ctx,
        MAX_BYTES,
      );

      expect(result).toEqual({
        ok: false,
        violations: [
          'artifact.s3Uri: must be an s3://bucket/key URI using only [A-Za-z0-9!_.*()/-] in the key',
          "artifact.s3Uri: must be in the stage's artifacts bucket s3://ami-pipeline-dev-artifacts/",
        ],
      });
    });

    it('names appConfig.s3Uri when it is not a string, not just appConfig', () => {
      expect(parse(triggerMessage({ appConfig: { s3Uri: 7 } }))).toEqual({
        ok: false,
        violations: ['appConfig.s3Uri: Invalid input: expected string, received number'],
      });
    });

    it('does not quote the message in a JSON syntax error (it may be an inline config)', () => {
      const raw = JSON.stringify(triggerMessage({ appConfig: { db: 'planted-secret' } })).replace(
        '"planted-secret"',
        'planted-secret',
      );

      const result = parseTriggerMessage(raw, ctx, MAX_BYTES);

      expect(result).toEqual({
        ok: false,
        violations: ["(message): is not valid JSON (Unexpected token 'p')"],
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
