import { ConfigurationError } from './errors';

/**
 * Reads a required environment variable; throws at cold start rather than deep in the logic.
 */
export const requireEnv = (name: string, env: NodeJS.ProcessEnv = process.env): string => {
  const value = env[name];
  if (value === undefined || value.trim() === '') {
    throw new ConfigurationError(`environment variable ${name} is required but not set`);
  }
  return value;
};
