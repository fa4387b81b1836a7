import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseYaml } from '../../shared/config/files';
import { loadRules } from '../../shared/config/rules';
import { AppConfigInvalidError } from '../../shared/errors';
import { validateAppConfig } from '../../shared/pre-provision';
import { CliError } from '../errors';
import type { CommandResult } from '../output';

/** The yaml library's first line, plus the offending source line (it names a duplicated key). */
const yamlProblem = (err: Error, text: string): string => {
  const first = err.message.split('\n')[0] ?? err.message;
  const line = (err as { linePos?: { line: number }[] }).linePos?.[0]?.line;
  const source = line ? text.split('\n')[line - 1]?.trim() : undefined;
  return source ? `${first.replace(/:$/, '')}: ${JSON.stringify(source)}` : first;
};

export interface ConfigCheck {
  file: string;
  environment: string;
  valid: boolean;
  violations: string[];
}

/**
 * Checks an app config as PreProvision will: YAML (duplicate keys refused), the schema, then the
 * platform rules for the environment — every violation listed, nothing sent anywhere.
 */
export const checkAppConfigFile = (
  file: string,
  environment: string,
  configDir: string,
  /** The trigger's appId, which the config's must equal (PreProvision checks the same). */
  expectedAppId?: string,
): ConfigCheck => {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
  }
  const result = (violations: string[]): ConfigCheck => ({
    file,
    environment,
    valid: violations.length === 0,
    violations,
  });
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    return result([`(file): not valid YAML: ${yamlProblem(err as Error, text)}`]);
  }
  const rules = loadRules(configDir);
  const appId =
    raw && typeof raw === 'object' && typeof (raw as { appId?: unknown }).appId === 'string'
      ? (raw as { appId: string }).appId
      : '';
  try {
    validateAppConfig(raw, rules, expectedAppId ?? appId, environment);
    return result([]);
  } catch (err) {
    // PreProvision names fields from the trigger (`appConfig.bake…`); here the file is the root.
    if (err instanceof AppConfigInvalidError)
      return result(
        err.violations.map((v) => v.replace(/^appConfig\./, '').replace(/^appConfig:/, '(file):')),
      );
    throw err;
  }
};

export const configValidate = (
  file: string,
  environment: string,
  configDir: string,
): { result: CommandResult; valid: boolean } => {
  const check = checkAppConfigFile(file, environment, configDir);
  const name = path.relative(process.cwd(), file) || file;
  return {
    valid: check.valid,
    result: {
      data: check,
      notes: [
        check.valid
          ? `✔ ${name} is valid for ${environment} (schema and config/rules.yml)`
          : `✗ ${name}: ${check.violations.length} violation${check.violations.length === 1 ? '' : 's'} for ${environment}`,
      ],
      tables: check.valid
        ? []
        : [
            {
              columns: ['field', 'rule'],
              rows: check.violations.map((v) => {
                const at = v.indexOf(': ');
                return at < 0 ? ['', v] : [v.slice(0, at), v.slice(at + 2)];
              }),
            },
          ],
    },
  };
};
