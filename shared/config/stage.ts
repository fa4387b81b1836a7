import * as z from 'zod';
import { ConfigurationError } from '../errors';
import { describeIssues } from '../validation';
import { LOG_RETENTION_DAYS, TRAFFIC_MAX_SOAK_SECONDS, TRAFFIC_MAX_STEPS } from './limits';

export const STAGE_PATTERN = /^[a-z][a-z0-9]{1,9}$/;

export const REGION_PATTERN = /^[a-z]{2}(-[a-z]+)+-\d$/;

/** A KMS key's ARN (not an alias: CreateGrant and the AMI's encryption name the key itself). */
export const KMS_KEY_ARN_PATTERN =
  /^arn:aws[a-z-]*:kms:([a-z]{2}(-[a-z]+)+-\d):\d{12}:key\/[A-Za-z0-9-]{1,64}$/;

/** An IAM principal the auditor role may trust: an account's root, a role or a user. */
export const AUDITOR_PRINCIPAL_PATTERN = /^arn:aws[a-z-]*:iam::\d{12}:(root|role\/.+|user\/.+)$/;

export { LOG_RETENTION_DAYS, TRAFFIC_MAX_SOAK_SECONDS, TRAFFIC_MAX_STEPS } from './limits';

/** Who may assume a role the stack makes (auditor, approver): account roots, roles or users. */
const trustedPrincipals = z
  .array(
    z
      .string()
      .regex(
        AUDITOR_PRINCIPAL_PATTERN,
        'must be the ARN of an account root, IAM role or IAM user (arn:aws:iam::<account>:root|role/…|user/…)',
      ),
  )
  .min(1)
  .optional();

/** `config/<stage>.yml`: everything that differs between environments. */
export const stageConfigSchema = z.strictObject({
  stage: z.string().regex(STAGE_PATTERN, `must match ${STAGE_PATTERN.source}`),
  region: z.string().regex(REGION_PATTERN, 'must be an AWS region such as eu-west-1'),
  logLevel: z.enum(['DEBUG', 'INFO', 'WARN', 'ERROR']).default('INFO'),
  /** Retention of every log group the stack makes (must be a value CloudWatch Logs accepts). */
  logRetentionDays: z.union(
    LOG_RETENTION_DAYS.map((d) => z.literal(d)) as unknown as [z.ZodLiteral<number>, z.ZodLiteral<number>],
  ),
  kms: z.strictObject({
    /** Waiting period before a scheduled key deletion takes effect. */
    pendingWindowDays: z.number().int().min(7).max(30).default(30),
  }),
  trigger: z.strictObject({
    /** Largest trigger message accepted (bytes, UTF-8). */
    maxMessageBytes: z.number().int().min(1024).max(262144).default(65536),
  }),
  lock: z.strictObject({
    /** A lock older than this is treated as abandoned (its run died); DynamoDB TTL removes it too. */
    ttlSeconds: z
      .number()
      .int()
      .min(600)
      .max(7 * 24 * 3600)
      .default(86400),
  }),
  stateMachine: z.strictObject({
    logLevel: z.enum(['ERROR', 'ALL']).default('ERROR'),
  }),
  /** Where SSM runs Packer/Terraform/InSpec: fixed instances, or any online instance with a tag. */
  builder: z.strictObject({
    targets: z.union([
      z.strictObject({
        // EC2 instances only: the workers' IAM allows SendCommand on instance/* (not managed-instance/*).
        instanceIds: z.array(z.string().regex(/^i-[a-f0-9]{8,17}$/, 'must be an EC2 instance id')).min(1),
      }),
      z.strictObject({
        tag: z.strictObject({
          key: z.string().regex(/^[A-Za-z0-9 _.:/=+@-]{1,128}$/),
          value: z.string().regex(/^[A-Za-z0-9 _.:/=+@-]{0,256}$/),
        }),
      }),
    ]),
  }),
  /**
   * Each long-running stage's state timeout (seconds). The SSM command's executionTimeout is set
   * below it, so the command ends (and reports) before the state gives up.
   */
  commands: z.strictObject({
    bake: z.strictObject({ timeoutSeconds: z.number().int().min(2).max(172800) }),
    provision: z.strictObject({ timeoutSeconds: z.number().int().min(2).max(172800) }),
    validate: z.strictObject({ timeoutSeconds: z.number().int().min(2).max(172800) }),
    /** A token stage fails when no heartbeat arrives for this long; the reconciler beats every 5 minutes. */
    heartbeatSeconds: z.number().int().min(2).max(86400),
  }),
  release: z
    .strictObject({
      /** How long the previous release keeps running after the switch (a fast way back), seconds. */
      decommissionAfterSeconds: z
        .number()
        .int()
        .min(0)
        .max(30 * 24 * 3600),
      /** Smoke test: attempts through the ALB, with exponential backoff from this first pause. */
      smokeTestAttempts: z.number().int().min(1).max(20),
      smokeTestFirstDelayMs: z.number().int().min(0).max(60000),
      /** Where the smoke test runs when the apps' ALBs are internal: the stage's VPC (optional). */
      vpc: z
        .strictObject({
          subnetIds: z.array(z.string().regex(/^subnet-[a-f0-9]{8,17}$/, 'must be a subnet id')).min(1),
          securityGroupIds: z
            .array(z.string().regex(/^sg-[a-f0-9]{8,17}$/, 'must be a security group id'))
            .min(1),
        })
        .optional(),
    })
    .default({ decommissionAfterSeconds: 86400, smokeTestAttempts: 6, smokeTestFirstDelayMs: 2000 }),
  /**
   * Copies of each AMI in other regions (an app lists the ones it needs, from these). Each region
   * names the stage key there: a replica of the stage's multi-Region key, or a key the platform team
   * made in that region (docs/distribution.md). Left out: the stage's region only.
   */
  distribution: z
    .strictObject({
      /** Copies in flight at once (the Map's MaxConcurrency); EC2 limits concurrent copies per region. */
      maxConcurrentCopies: z.number().int().min(1).max(20),
      /** How long one Distribute attempt waits for a copy (EC2 waiter, below the 900 s Lambda timeout). */
      copyWaitSeconds: z.number().int().min(60).max(840),
      /** Further attempts (each waiting copyWaitSeconds again) before a copy still pending fails the run. */
      copyRetries: z.number().int().min(0).max(10),
      regions: z.record(
        z.string().regex(REGION_PATTERN, 'must be an AWS region such as eu-central-1'),
        z.strictObject({
          kmsKeyArn: z
            .string()
            .regex(
              KMS_KEY_ARN_PATTERN,
              'must be the ARN of a KMS key (arn:aws:kms:<region>:<account>:key/<id>)',
            ),
        }),
      ),
    })
    .default({ maxConcurrentCopies: 5, copyWaitSeconds: 780, copyRetries: 2, regions: {} }),
  audit: z.strictObject({
    /** Deletion protection on the audit table; keep it on wherever auditors rely on the table. */
    deletionProtection: z.boolean().default(true),
    /**
     * Who may assume the read-only auditor role (`ami-pipeline-<stage>-auditor`). Left out, the
     * stage account's root is trusted: the account's own IAM policies then decide who may assume it
     * (config/stage.cjs fills that in, as only CloudFormation knows the account).
     */
    auditorPrincipals: trustedPrincipals,
  }),
  /**
   * The approval gate after Validate (docs/approval.md): when required, the run waits up to
   * `timeoutSeconds` for an approver to approve or reject it before traffic moves.
   */
  approval: z
    .strictObject({
      required: z.boolean(),
      /** How long a run waits for a decision; then it fails with States.Timeout and compensates. */
      timeoutSeconds: z
        .number()
        .int()
        .min(2)
        .max(7 * 24 * 3600),
      /**
       * Who may assume the approver role (`ami-pipeline-<stage>-approver`). Left out, the stage
       * account's root is trusted and the account's own IAM policies decide (config/stage.cjs).
       */
      approverPrincipals: trustedPrincipals,
    })
    .default({ required: false, timeoutSeconds: 86400 }),
});

/** CopyToRegion's state timeout, above the distribute function's own 900 s (a template test keeps it so). */
export const COPY_TASK_TIMEOUT_SECONDS = 960;

/**
 * The longest DistributeToRegions can take: every distribution region of the stage, maxConcurrentCopies
 * at a time, each copy waited for in 1 + copyRetries attempts of at most a whole task timeout.
 */
export const copyingSeconds = (distribution: StageConfig['distribution']): number =>
  Math.ceil(Object.keys(distribution.regions).length / distribution.maxConcurrentCopies) *
  (1 + distribution.copyRetries) *
  COPY_TASK_TIMEOUT_SECONDS;

/** The lock must outlive the longest run the stage's timeouts allow, or a live run could lose it. */
export const LOCK_MARGIN_SECONDS = 7200;

/**
 * The longest a run can hold its lock: bake, provision and validate at their timeouts, the wait for
 * approval where the stage requires it (the run holds its lock while it waits), the longest traffic
 * shift an app may ask for, and on failure the green stack's destroy (a provision command), plus a
 * margin for the short stages (smoke test, distribute, each traffic step's checks, compensation's
 * own Lambda). Where approval is not required, NeedsApproval never enters AwaitApproval.
 */
export const longestRunSeconds = ({
  commands,
  approval,
  distribution,
}: Pick<StageConfig, 'commands' | 'approval' | 'distribution'>): number =>
  commands.bake.timeoutSeconds +
  copyingSeconds(distribution) +
  commands.provision.timeoutSeconds +
  commands.validate.timeoutSeconds +
  (approval.required ? approval.timeoutSeconds : 0) +
  TRAFFIC_MAX_STEPS * TRAFFIC_MAX_SOAK_SECONDS +
  commands.provision.timeoutSeconds +
  LOCK_MARGIN_SECONDS;

export const checkedStageConfigSchema = stageConfigSchema.superRefine((config, issue) => {
  for (const [region, { kmsKeyArn }] of Object.entries(config.distribution.regions)) {
    if (region === config.region) {
      issue.addIssue({
        code: 'custom',
        path: ['distribution', 'regions', region],
        message: `is the stage's own region: its AMI is encrypted with the stage key already`,
      });
    }
    const keyRegion = KMS_KEY_ARN_PATTERN.exec(kmsKeyArn)?.[1];
    if (keyRegion !== undefined && keyRegion !== region) {
      issue.addIssue({
        code: 'custom',
        path: ['distribution', 'regions', region, 'kmsKeyArn'],
        message: `is a key in ${keyRegion}; a copy in ${region} must be encrypted with a key of ${region}`,
      });
    }
  }
  const longestRun = longestRunSeconds(config);
  if (config.lock.ttlSeconds < longestRun) {
    issue.addIssue({
      code: 'custom',
      path: ['lock', 'ttlSeconds'],
      message: `must be at least ${longestRun} (the longest run: bake, the copies to other regions, provision and validate timeouts, ${config.approval.required ? 'the approval timeout, ' : ''}${TRAFFIC_MAX_STEPS} traffic steps of ${TRAFFIC_MAX_SOAK_SECONDS} s, a stack destroy, plus ${LOCK_MARGIN_SECONDS} s)`,
    });
  }
});

export type StageConfig = z.infer<typeof stageConfigSchema>;

/**
 * The stage config a worker runs with: `STAGE_CONFIG`, the JSON of config/<stage>.yml that
 * `serverless package` validated (config/stage.cjs `json`) and set on every function. Validated
 * again here, at cold start, against the schema this bundle was built with, and its `stage` must be
 * the function's `STAGE`. No file is read and no YAML parser is loaded (npm run bench, section 1).
 */
export const stageConfigFromEnv = (env: NodeJS.ProcessEnv = process.env): StageConfig => {
  const text = env.STAGE_CONFIG;
  if (!text) throw new ConfigurationError('environment variable STAGE_CONFIG is required but not set');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigurationError(`STAGE_CONFIG is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const parsed = checkedStageConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigurationError(`STAGE_CONFIG is invalid: ${describeIssues(parsed.error).join('; ')}`);
  }
  if (env.STAGE !== undefined && parsed.data.stage !== env.STAGE) {
    throw new ConfigurationError(
      `STAGE_CONFIG is for stage "${parsed.data.stage}"; this function's STAGE is "${env.STAGE}"`,
    );
  }
  return parsed.data;
};
