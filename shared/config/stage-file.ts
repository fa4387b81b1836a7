import path from 'node:path';
import { ConfigurationError } from '../errors';
import { configDir, loadYamlFile } from './files';
import { checkedStageConfigSchema, type StageConfig } from './stage';

/**
 * Loads and validates `config/<stage>.yml`; the file's `stage` must match its name. For packaging
 * (config/stage.cjs), the CLI and the tests; workers read the packaged JSON (`stageConfigFromEnv`).
 */
export const loadStageConfig = (stage: string, dir: string = configDir()): StageConfig => {
  const config = loadYamlFile(path.join(dir, `${stage}.yml`), checkedStageConfigSchema);
  if (config.stage !== stage) {
    throw new ConfigurationError(
      `config/${stage}.yml declares stage "${config.stage}"; it must be "${stage}"`,
    );
  }
  return config;
};
