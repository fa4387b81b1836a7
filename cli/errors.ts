/** An error the CLI prints as one line (no stack): bad input, a missing stack, no local state. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    /** 1: the answer is "no" or the call failed; 2: the command line itself is wrong. */
    readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
  }
}

/** One line for any error: what the user can act on, never a stack. */
export const describeError = (err: unknown): string => {
  if (!(err instanceof Error)) return String(err);
  if (err instanceof CliError) return err.message;
  const name = err.name;
  if (name === 'CredentialsProviderError' || /Could not load credentials/.test(err.message)) {
    return `no AWS credentials: ${err.message} (use --profile, AWS_PROFILE or --local)`;
  }
  if (name === 'AccessDeniedException' || name === 'AccessDenied' || name === 'AuthorizationError') {
    return `access denied: ${err.message}`;
  }
  if (name === 'ResourceNotFoundException') return `not found: ${err.message}`;
  return `${name}: ${err.message}`;
};
