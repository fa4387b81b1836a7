import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import type { z } from 'zod';
import { ConfigurationError } from '../errors';
import { describeIssues } from '../validation';

/**
 * The `config/` folder: beside the bundle in Lambda (packaged via `package.patterns`), the repo's
 * own folder elsewhere. `CONFIG_DIR` overrides both.
 */
export const configDir = (env: NodeJS.ProcessEnv = process.env): string =>
  env.CONFIG_DIR ?? path.join(env.LAMBDA_TASK_ROOT ?? process.cwd(), 'config');

/** Parses YAML (a superset of JSON); `uniqueKeys` makes a duplicated key an error, not a silent overwrite. */
export const parseYaml = (text: string): unknown => parse(text, { uniqueKeys: true, maxAliasCount: 50 });

/** Reads and validates a YAML file against a zod schema; throws ConfigurationError naming every issue. */
export const loadYamlFile = <S extends z.ZodType>(file: string, schema: S): z.infer<S> => {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigurationError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigurationError(`${file} is invalid: ${describeIssues(parsed.error).join('; ')}`);
  }
  return parsed.data;
};
