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

/** Reads a required environment variable holding a positive integer (a size, a TTL). */
export const requirePositiveIntEnv = (name: string, env: NodeJS.ProcessEnv = process.env): number => {
  const value = requireEnv(name, env);
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new ConfigurationError(`environment variable ${name} must be a positive integer, got "${value}"`);
  }
  return n;
};
