import * as z from 'zod';

/** The identifiers of a run every worker after PreProvision receives (`$.run` in the state machine). */
export const runRefSchema = z.object({
  runId: z.string().regex(/^[a-f0-9]{20}$/),
  appId: z.string().min(1),
  environment: z.string().min(1),
  executionArn: z.string().startsWith('arn:'),
});

export type RunRef = z.infer<typeof runRefSchema>;
