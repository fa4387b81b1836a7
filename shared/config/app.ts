import * as z from 'zod';
import { APP_ID_PATTERN } from '../trigger/message';
import { LOG_RETENTION_DAYS, TRAFFIC_MAX_SOAK_SECONDS, TRAFFIC_MAX_STEPS } from './limits';

const AWS_ACCOUNT_ID = /^\d{12}$/;
/** An AWS region name, as in the stage config. */
export const AWS_REGION = /^[a-z]{2}(-[a-z]+)+-\d$/;
/** How many regions and accounts one app may distribute to (besides its stage's region and account). */
export const MAX_DISTRIBUTION_REGIONS = 10;
export const MAX_DISTRIBUTION_ACCOUNTS = 20;

const unique = (values: string[]) => new Set(values).size === values.length;
const INSTANCE_TYPE = /^[a-z][a-z0-9-]*\d[a-z0-9-]*\.[a-z0-9]+$/;
const SSM_PARAMETER_NAME = /^\/[A-Za-z0-9_.\-/]{1,1000}$/;
const LOG_GROUP_NAME = /^[A-Za-z0-9_\-/.#]{1,512}$/;
const CHEF_RUN_LIST_ITEM = /^(recipe|role)\[[A-Za-z0-9_:.-]+\]$/;
const TAG_KEY = /^[A-Za-z0-9 _.:/=+@-]{1,128}$/;
const TAG_VALUE = /^[A-Za-z0-9 _.:/=+@-]{0,256}$/;
/** As the validate script's PROFILE_RE: a name, or relative path, of a vendored profile. */
const INSPEC_PROFILE = /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/;
/** As the provision script's HEALTH_CHECK_PATH_RE: what the builder accepts, length included. */
const HEALTH_CHECK_PATH = /^\/[A-Za-z0-9._~\-/]{0,255}$/;

/**
 * The app config written by application teams (`config/apps/*.yml`, or inline in the trigger).
 * Schema first; platform rules (`config/rules.yml`) are checked on top by `checkRules`.
 */
export const appConfigSchema = z.strictObject({
  schemaVersion: z.literal(1),
  appId: z.string().regex(APP_ID_PATTERN, `must match ${APP_ID_PATTERN.source}`),
  owner: z.strictObject({
    team: z.string().min(1).max(64),
    email: z.email(),
  }),
  /** The application account the AMI is shared with (launch + snapshot permission, KMS grant). */
  shareWithAccountId: z.string().regex(AWS_ACCOUNT_ID, 'must be a 12-digit AWS account id'),
  /**
   * Where else the AMI goes: copies in these regions (each encrypted with that region's stage key,
   * which the stage config must name) and sharing with these accounts too. The stage's own region
   * and `shareWithAccountId` always get it.
   */
  distribution: z
    .strictObject({
      regions: z
        .array(z.string().regex(AWS_REGION, 'must be an AWS region such as eu-central-1'))
        .max(MAX_DISTRIBUTION_REGIONS)
        .refine(unique, { error: 'must not list a region twice' })
        .default([]),
      accounts: z
        .array(z.string().regex(AWS_ACCOUNT_ID, 'must be a 12-digit AWS account id'))
        .max(MAX_DISTRIBUTION_ACCOUNTS)
        .refine(unique, { error: 'must not list an account twice' })
        .default([]),
    })
    .default({ regions: [], accounts: [] }),
  baseImage: z.union([
    z.strictObject({ amiId: z.string().regex(/^ami-[a-f0-9]{8,17}$/, 'must be an AMI id (ami-…)') }),
    z.strictObject({
      ssmParameter: z.string().regex(SSM_PARAMETER_NAME, 'must be an SSM parameter name starting with /'),
    }),
  ]),
  bake: z.strictObject({
    instanceType: z.string().regex(INSTANCE_TYPE, 'must be an EC2 instance type such as t3.medium'),
    volumeSizeGiB: z.number().int().min(8).max(1024).default(20),
    chefRunList: z.array(z.string().regex(CHEF_RUN_LIST_ITEM, 'must be recipe[…] or role[…]')).min(1),
    /** Node attributes for Chef. May hold sensitive values: the run config is a SecureString. */
    chefAttributes: z.record(z.string(), z.unknown()).default({}),
  }),
  runtime: z
    .strictObject({
      instanceType: z.string().regex(INSTANCE_TYPE, 'must be an EC2 instance type such as t3.small'),
      minSize: z.number().int().min(0),
      maxSize: z.number().int().min(1),
      port: z.number().int().min(1).max(65535),
      healthCheckPath: z
        .string()
        .regex(HEALTH_CHECK_PATH, 'must be an absolute URL path of at most 256 characters [A-Za-z0-9._~/-]'),
      healthCheckExpectedStatus: z.number().int().min(200).max(399).default(200),
    })
    .refine((r) => r.minSize <= r.maxSize, { error: 'minSize must not exceed maxSize', path: ['minSize'] }),
  /** AWS services the application may call at run time (checked against the platform's list). */
  services: z.array(z.string().regex(/^[a-z0-9-]+$/)).default([]),
  inspec: z.strictObject({
    // Looked up under the builder's profile folders: a `.`/`..` segment or a leading `/` would
    // point InSpec at any folder on the builder (validate.sh refuses those too, but only hours later).
    profiles: z
      .array(
        z
          .string()
          .regex(INSPEC_PROFILE, 'must be a profile name or relative path [A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*')
          .refine((profile) => !profile.split('/').some((segment) => segment === '.' || segment === '..'), {
            error: 'must not contain "." or ".." path segments',
          }),
      )
      .min(1),
    allowedFailedControls: z.number().int().min(0).default(0),
  }),
  logGroups: z
    .array(
      z.strictObject({
        name: z.string().regex(LOG_GROUP_NAME, 'must be a CloudWatch Logs group name'),
        retentionDays: z
          .number()
          .int()
          .refine((days) => LOG_RETENTION_DAYS.includes(days), {
            error: `must be a retention CloudWatch Logs accepts (${LOG_RETENTION_DAYS.join(', ')})`,
          })
          .optional(),
      }),
    )
    .default([]),
  tags: z.record(z.string().regex(TAG_KEY), z.string().regex(TAG_VALUE)).default({}),
  /** Blue-green: percentages of traffic to green, in order (the last is 100), soak time, 5xx limit. */
  traffic: z
    .strictObject({
      steps: z
        .array(z.number().int().min(1).max(100))
        .min(1)
        .max(TRAFFIC_MAX_STEPS)
        .refine((steps) => steps.at(-1) === 100, { error: 'the last step must be 100' })
        .refine((steps) => steps.every((v, i) => i === 0 || v > (steps[i - 1] ?? 0)), {
          error: 'steps must increase',
        }),
      soakSeconds: z.number().int().min(0).max(TRAFFIC_MAX_SOAK_SECONDS),
      /** Highest share of green's requests that may end in a 5xx between steps (0.01 = 1 %). */
      max5xxRate: z.number().min(0).max(1),
    })
    .default({ steps: [10, 50, 100], soakSeconds: 300, max5xxRate: 0.01 }),
});

export type AppConfig = z.infer<typeof appConfigSchema>;
