import { z } from 'zod';
import { describeIssues, fieldPath } from '../../shared/validation';

const issuesOf = (schema: z.ZodType, value: unknown, prefix?: string): string[] => {
  const parsed = schema.safeParse(value);
  return parsed.success ? [] : describeIssues(parsed.error, prefix);
};

describe('describeIssues', () => {
  it('names the field by its dotted path, list indexes included, under an optional prefix', () => {
    const schema = z.object({ logGroups: z.array(z.object({ name: z.string() })) });

    expect(issuesOf(schema, { logGroups: [{ name: 1 }] }, 'appConfig')).toEqual([
      'appConfig.logGroups.0.name: Invalid input: expected string, received number',
    ]);
  });

  it('calls a missing field required and the root of the input (message)', () => {
    expect(issuesOf(z.object({ appId: z.string() }), {})).toEqual(['appId: is required (string)']);
    expect(issuesOf(z.object({}), null)).toEqual([
      '(message): Invalid input: expected object, received null',
    ]);
  });

  it('shows plain keys as they are and quotes, escapes and cuts a hostile one', () => {
    const tags = z.object({ tags: z.record(z.string(), z.number()) });

    expect(issuesOf(tags, { tags: { 'ami-pipeline:run-id': 'x' } })).toEqual([
      'tags.ami-pipeline:run-id: Invalid input: expected number, received string',
    ]);
    expect(issuesOf(tags, { tags: { '$(touch /tmp/x)\n': 'x' } })).toEqual([
      'tags."$(touch /tmp/x)\\n": Invalid input: expected number, received string',
    ]);
    expect(issuesOf(tags, { tags: { [`k${'x'.repeat(100)}`]: 'x' } })).toEqual([
      `tags.${JSON.stringify(`k${'x'.repeat(63)}`)}…: Invalid input: expected number, received string`,
    ]);
  });

  it('lists at most ten unknown keys, each cut to 64 characters, and counts the rest', () => {
    const extra = Object.fromEntries(Array.from({ length: 13 }, (_, i) => [`${i}${'k'.repeat(100)}`, 1]));

    const [issue, ...others] = issuesOf(z.strictObject({}), extra);

    expect(others).toEqual([]);
    expect(issue).toBe(
      `(message): unknown field(s) ${Array.from(
        { length: 10 },
        (_, i) => `${JSON.stringify(`${i}${'k'.repeat(63)}`)}…`,
      ).join(', ')} and 3 more (not in schemaVersion 1)`,
    );
  });

  it('reports the union branch that got furthest instead of a bare "Invalid input"', () => {
    const appConfig = z.object({
      appConfig: z.union([
        z.strictObject({ s3Uri: z.string() }),
        z.record(z.string(), z.unknown()).refine((o) => !('s3Uri' in o), { error: 'inline', abort: true }),
      ]),
    });

    expect(issuesOf(appConfig, { appConfig: { s3Uri: 7 } })).toEqual([
      'appConfig.s3Uri: Invalid input: expected string, received number',
    ]);
    expect(issuesOf(appConfig, { appConfig: [] })).toEqual([
      'appConfig: Invalid input: expected object, received array',
    ]);
  });
});

describe('fieldPath', () => {
  it('cuts a path deeper than twelve segments', () => {
    expect(fieldPath(['a', ...Array.from({ length: 20 }, () => 0)])).toBe('a.0.0.0.0.0.0.0.0.0.0.0…');
  });

  it('quotes a key that holds the path separator, so it cannot pose as two fields', () => {
    expect(fieldPath(['tags', 'a.b'])).toBe('tags."a.b"');
  });
});
