import * as z from 'zod';

/**
 * The contract between the workers and the SSM command documents in config/ssm/: document names,
 * their parameters (with the exact `allowedPattern` each document declares — a test keeps the two
 * in step), where a command writes its `result.json`, and the zod schema that result must satisfy
 * (DESIGN "Stage results").
 */
export const COMMAND_STEPS = ['bake', 'provision', 'validate'] as const;
export type CommandStep = (typeof COMMAND_STEPS)[number];

/** SSM command statuses of a command still running (a retried state may adopt it). */
export const RUNNING_STATUSES: ReadonlySet<string> = new Set(['Pending', 'InProgress', 'Delayed']);

/** Running, or being cancelled: compensation must still cancel it. */
export const NOT_ENDED_STATUSES: ReadonlySet<string> = new Set([...RUNNING_STATUSES, 'Cancelling']);

/** SSM command statuses that end a command. */
export const TERMINAL_STATUSES: ReadonlySet<string> = new Set([
  'Success',
  'Failed',
  'TimedOut',
  'Cancelled',
  'DeliveryTimedOut',
  'Undeliverable',
  'Terminated',
  'ExecutionTimedOut',
]);

/** `ami-pipeline-<stage>-<step>`: the AWS::SSM::Document name for a step. */
export const documentName = (stage: string, step: CommandStep): string => `ami-pipeline-${stage}-${step}`;

/** `<stage>/<appId>/<runId>/<step>`: where a command's result.json and SSM output go in the artifacts bucket. */
export const resultPrefix = (stage: string, appId: string, runId: string, step: CommandStep): string =>
  `${stage}/${appId}/${runId}/${step}`;

export const resultKey = (stage: string, appId: string, runId: string, step: CommandStep): string =>
  `${resultPrefix(stage, appId, runId, step)}/result.json`;

/**
 * Every document parameter and the pattern its value must match. Values reach a shell on the
 * builder, so each pattern admits no whitespace, quote, `$`, backtick, `;`, `|`, `&` or newline.
 */
export const PARAMETER_PATTERNS = {
  runConfigParameter: '^/ami-pipeline/[a-z][a-z0-9]{1,9}/[a-z][a-z0-9-]{1,38}[a-z0-9]/[a-f0-9]{20}$',
  artifactsBucket: '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$',
  reportsBucket: '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$',
  resultPrefix: '^[a-z][a-z0-9]{1,9}/[a-z][a-z0-9-]{1,38}[a-z0-9]/[a-f0-9]{20}/(bake|provision|validate)$',
  assetsPrefix: '^tooling/[A-Za-z0-9._-]{1,64}$',
  region: '^[a-z]{2}(-[a-z]+)+-[0-9]$',
  kmsKeyArn: '^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[a-f0-9-]{36}$',
  amiId: '^ami-[a-f0-9]{8,17}$',
  lockTable: '^[A-Za-z0-9_.-]{3,255}$',
  mode: '^(apply|destroy)$',
  asgName: '^[A-Za-z0-9_.-]{1,255}$',
  allowedFailedControls: '^[0-9]{1,4}$',
  /** Seconds the command may run (SSM's own limit is 172800); the document's step timeoutSeconds. */
  executionTimeout: '^[1-9][0-9]{0,5}$',
} as const;

export type DocumentParameter = keyof typeof PARAMETER_PATTERNS;

/** The parameters each document declares (all required, all strings). */
export const DOCUMENT_PARAMETERS = {
  bake: [
    'runConfigParameter',
    'artifactsBucket',
    'resultPrefix',
    'assetsPrefix',
    'region',
    'kmsKeyArn',
    'executionTimeout',
  ],
  provision: [
    'runConfigParameter',
    'artifactsBucket',
    'resultPrefix',
    'assetsPrefix',
    'region',
    'kmsKeyArn',
    'amiId',
    'lockTable',
    'mode',
    'executionTimeout',
  ],
  validate: [
    'runConfigParameter',
    'artifactsBucket',
    'reportsBucket',
    'resultPrefix',
    'assetsPrefix',
    'region',
    'kmsKeyArn',
    'asgName',
    'allowedFailedControls',
    'executionTimeout',
  ],
} as const satisfies Record<CommandStep, readonly DocumentParameter[]>;

export const bakeResultSchema = z.strictObject({
  amiId: z.string().regex(/^ami-[a-f0-9]{8,17}$/, 'must be an AMI id'),
  snapshotIds: z.array(z.string().regex(/^snap-[a-f0-9]{8,17}$/, 'must be a snapshot id')).min(1),
  region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region'),
});

export const provisionResultSchema = z.strictObject({
  launchTemplateId: z.string().regex(/^lt-[a-f0-9]{8,17}$/, 'must be a launch template id'),
  asgName: z.string().regex(/^[A-Za-z0-9_.-]{1,255}$/),
  targetGroupArn: z
    .string()
    .regex(/^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:targetgroup\/[A-Za-z0-9-]+\/[a-f0-9]+$/),
  // A DNS name; a port is accepted for ALB stand-ins reached by address (the local harness).
  albDns: z.string().regex(/^[A-Za-z0-9.-]{1,255}(:[0-9]{1,5})?$/),
  // An S3 version id, as provision.sh checks it before writing it here.
  terraformStateVersion: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,1024}$/, 'must be an S3 version id (1-1024 of [A-Za-z0-9._-])'),
});

export const validateResultSchema = z.strictObject({
  passed: z.number().int().min(0),
  failed: z.number().int().min(0),
  skipped: z.number().int().min(0),
  // The InSpec report's key in the reports bucket (`<stage>/<appId>/<runId>/validate/…`): recorded
  // for auditors as s3://<reports>/<reportKey>, so no quote or `.`/`..` segment may point elsewhere.
  reportKey: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+){0,31}$/, 'must be an S3 key of [A-Za-z0-9_.-] segments')
    .max(1024)
    .refine((key) => !key.split('/').some((segment) => segment === '.' || segment === '..'), {
      error: 'must not contain "." or ".." path segments',
    }),
});

/** For `mode: destroy` the provision document writes only this. */
export const destroyResultSchema = z.strictObject({ destroyed: z.literal(true) });

export type BakeResult = z.infer<typeof bakeResultSchema>;
export type ProvisionResult = z.infer<typeof provisionResultSchema>;
export type ValidateResult = z.infer<typeof validateResultSchema>;
