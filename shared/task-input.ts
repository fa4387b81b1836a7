import type { z } from 'zod';
import { InvalidTaskInputError } from './errors';
import { describeIssues } from './validation';

/** Validates what the state machine handed a worker; a mismatch is a wiring bug and fails loudly. */
export const parseTaskInput = <S extends z.ZodType>(schema: S, event: unknown): z.infer<S> => {
  const parsed = schema.safeParse(event);
  if (!parsed.success) {
    throw new InvalidTaskInputError(
      `task input does not match its contract: ${describeIssues(parsed.error).join('; ')}`,
    );
  }
  return parsed.data;
};
