import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { appConfigSchema } from '../../shared/config/app';
import { rulesSchema } from '../../shared/config/rules';
import { checkedStageConfigSchema } from '../../shared/config/stage';

/**
 * Drift guard for docs/configuration.md: every field of the stage config, the app config and the
 * platform rules must be documented in its section, as `` `dotted.path` ``.
 *
 * Path convention (the same one the page explains): object fields are joined with `.`; the fields
 * of a list's elements hang off `list[]` (`logGroups[].name`); the fields of a map's values hang
 * off `map.*` (`environments.*.asgSize.min`); both shapes of a union contribute their fields.
 * Wrappers that do not change the YAML's shape (optional, default, nullable, refinements, pipes…)
 * are looked through.
 */

const DOC = path.join(__dirname, '../../docs/configuration.md');

/** The schema a wrapper stands for, as far as the YAML's shape is concerned. */
const unwrap = (schema: z.ZodType): z.ZodType => {
  if (
    schema instanceof z.ZodOptional ||
    schema instanceof z.ZodNullable ||
    schema instanceof z.ZodDefault ||
    schema instanceof z.ZodPrefault ||
    schema instanceof z.ZodNonOptional ||
    schema instanceof z.ZodReadonly ||
    schema instanceof z.ZodCatch
  ) {
    return unwrap(schema.unwrap() as z.ZodType);
  }
  // A pipe (transform, preprocess) reads its input side: that is what the file holds.
  if (schema instanceof z.ZodPipe) return unwrap(schema.in as z.ZodType);
  return schema;
};

const collect = (schema: z.ZodType, prefix: string, out: Set<string>): void => {
  const inner = unwrap(schema);
  if (inner instanceof z.ZodObject) {
    for (const [key, child] of Object.entries(inner.shape as Record<string, z.ZodType>)) {
      const fieldPath = prefix ? `${prefix}.${key}` : key;
      out.add(fieldPath);
      collect(child, fieldPath, out);
    }
  } else if (inner instanceof z.ZodArray) {
    collect(inner.element as z.ZodType, `${prefix}[]`, out);
  } else if (inner instanceof z.ZodRecord) {
    collect(inner.valueType as z.ZodType, `${prefix}.*`, out);
  } else if (inner instanceof z.ZodUnion) {
    for (const option of inner.options as readonly z.ZodType[]) collect(option, prefix, out);
  } else if (inner instanceof z.ZodIntersection) {
    collect(inner.def.left as z.ZodType, prefix, out);
    collect(inner.def.right as z.ZodType, prefix, out);
  }
};

/** Every documented-field path of a config schema, sorted. */
const fieldPaths = (schema: z.ZodType): string[] => {
  const out = new Set<string>();
  collect(schema, '', out);
  return [...out].sort();
};

/** The text of the `## <title>` section of the page, up to the next `## ` heading. */
const section = (markdown: string, title: string): string => {
  const start = markdown.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`docs/configuration.md has no "## ${title}" section`);
  const end = markdown.indexOf('\n## ', start + 1);
  return markdown.slice(start, end < 0 ? undefined : end);
};

/** The fenced YAML blocks of a section whose first line names the file they show (`# config/…`). */
const fileExamples = (text: string): { file: string; body: unknown }[] =>
  [...text.matchAll(/```yaml\n(# (config\/\S+)\n[\s\S]*?)```/g)].map((match) => ({
    file: match[2] as string,
    body: parse(match[1] as string),
  }));

const CONFIGS = [
  { title: 'Stage config', schema: checkedStageConfigSchema as z.ZodType },
  { title: 'App config', schema: appConfigSchema as z.ZodType },
  { title: 'Platform rules', schema: rulesSchema as z.ZodType },
];

describe('the configuration reference (docs/configuration.md)', () => {
  const markdown = readFileSync(DOC, 'utf8');

  describe('the schema walker', () => {
    it('looks through wrappers into lists, maps and both shapes of a union', () => {
      const schema = z.strictObject({
        plain: z.string(),
        defaulted: z.strictObject({ inner: z.number() }).default({ inner: 1 }),
        optional: z.strictObject({ inner: z.boolean().nullable() }).optional(),
        refined: z.strictObject({ a: z.number(), b: z.number() }).refine((v) => v.a < v.b),
        piped: z.string().transform((s) => s.length),
        list: z.array(z.strictObject({ name: z.string() })),
        nested: z.array(z.array(z.strictObject({ deep: z.string() }))),
        map: z.record(z.string(), z.strictObject({ limit: z.number() })),
        either: z.union([z.strictObject({ one: z.string() }), z.strictObject({ other: z.string() })]),
        both: z.intersection(z.object({ left: z.string() }), z.object({ right: z.string() })),
      });

      expect(fieldPaths(schema)).toEqual(
        [
          'both',
          'both.left',
          'both.right',
          'defaulted',
          'defaulted.inner',
          'either',
          'either.one',
          'either.other',
          'list',
          'list[].name',
          'map',
          'map.*.limit',
          'nested',
          'nested[][].deep',
          'optional',
          'optional.inner',
          'piped',
          'plain',
          'refined',
          'refined.a',
          'refined.b',
        ].sort(),
      );
    });

    it('finds the nested fields of the real schemas', () => {
      expect(fieldPaths(checkedStageConfigSchema)).toEqual(
        expect.arrayContaining([
          'commands.bake.timeoutSeconds',
          'builder.targets.instanceIds',
          'builder.targets.tag.key',
          'release.vpc.subnetIds',
          'audit.deletionProtection',
        ]),
      );
      expect(fieldPaths(appConfigSchema)).toEqual(
        expect.arrayContaining([
          'baseImage.ssmParameter',
          'runtime.healthCheckExpectedStatus',
          'logGroups[].retentionDays',
          'traffic.max5xxRate',
        ]),
      );
      expect(fieldPaths(rulesSchema)).toEqual(
        expect.arrayContaining(['logGroupNamePrefix', 'environments.*.asgSize.max']),
      );
    });
  });

  describe.each(CONFIGS)('its "$title" section', ({ title, schema }) => {
    it('documents every field of the schema', () => {
      const text = section(markdown, title);

      const undocumented = fieldPaths(schema).filter((field) => !text.includes(`\`${field}\``));

      expect(undocumented).toEqual([]);
    });

    it('shows at least one whole file, and every whole file it shows is valid', () => {
      const examples = fileExamples(section(markdown, title));

      expect(examples.length).toBeGreaterThan(0);
      for (const { file, body } of examples) {
        const parsed = schema.safeParse(body);
        expect({ file, issues: parsed.error?.issues ?? [] }).toEqual({ file, issues: [] });
      }
    });
  });
});
