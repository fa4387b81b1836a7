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

/**
 * Largest config text parsed. An app config reaches PreProvision at most 64 KiB inline (the
 * trigger's message limit) and must fit an 8 KiB run config: the same bound holds for one read from
 * S3, so a config is not accepted from one place and refused from the other, and a huge file is
 * refused before the parser spends the worker's time and memory on it.
 */
export const MAX_CONFIG_BYTES = 64 * 1024;

/**
 * Parses YAML (a superset of JSON); `uniqueKeys` makes a duplicated key an error, not a silent
 * overwrite. Text larger than MAX_CONFIG_BYTES is refused unparsed.
 */
export const parseYaml = (text: string): unknown => {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_CONFIG_BYTES) throw new Error(`is ${bytes} bytes, at most ${MAX_CONFIG_BYTES} allowed`);
  return parse(text, { uniqueKeys: true, maxAliasCount: 50 });
};

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
