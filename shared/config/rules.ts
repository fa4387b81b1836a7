import path from 'node:path';
import * as z from 'zod';
import type { AppConfig } from './app';
import { configDir, loadYamlFile } from './files';

const environmentRulesSchema = z.strictObject({
  runtimeInstanceTypes: z.array(z.string()).min(1),
  asgSize: z.strictObject({ min: z.number().int().min(0), max: z.number().int().min(1) }),
  maxAllowedFailedControls: z.number().int().min(0),
  /**
   * The accounts apps of this environment may share their AMIs with (shareWithAccountId and
   * distribution.accounts): each gets launch permission and a grant on the stage key. Left out, an
   * app may share only with its own shareWithAccountId.
   */
  shareAccounts: z
    .array(z.string().regex(/^\d{12}$/, 'must be a 12-digit AWS account id'))
    .min(1)
    .optional(),
});

/** `config/rules.yml`: the platform team's rules every app config must satisfy. */
export const rulesSchema = z.strictObject({
  bakeInstanceTypes: z.array(z.string()).min(1),
  allowedServices: z.array(z.string()).min(1),
  requiredTags: z.array(z.string()).default([]),
  /** Allowed values for some tags (e.g. data-classification); tags not listed take any value. */
  tagValues: z.record(z.string(), z.array(z.string()).min(1)).default({}),
  minLogRetentionDays: z.number().int().min(1).default(30),
  /**
   * Every app log group name starts with this, `{appId}` replaced by the app's id: apps cannot
   * reach each other's groups or the pipeline's own, and log-export's IAM is scoped to the part
   * before `{appId}` (functions/log-export/function.yml).
   */
  logGroupNamePrefix: z
    .string()
    .regex(
      /^\/[A-Za-z0-9_\-/.#]*\{appId\}\/$/,
      'must be a log group name prefix holding {appId} and ending in /',
    )
    .default('/app/{appId}/'),
  environments: z.record(z.string(), environmentRulesSchema),
});

export type Rules = z.infer<typeof rulesSchema>;

export const loadRules = (dir: string = configDir()): Rules =>
  loadYamlFile(path.join(dir, 'rules.yml'), rulesSchema);

const list = (values: readonly string[]) => values.join(', ');

/**
 * Checks an app config against the platform rules for one environment and returns *every*
 * violation (an empty list means the config is allowed), each naming the field and the rule.
 */
export const checkRules = (app: AppConfig, rules: Rules, environment: string): string[] => {
  const violations: string[] = [];
  const env = rules.environments[environment];
  if (!env) {
    return [
      `environment: "${environment}" has no rules in config/rules.yml (known: ${list(Object.keys(rules.environments))})`,
    ];
  }
  if (!rules.bakeInstanceTypes.includes(app.bake.instanceType)) {
    violations.push(
      `bake.instanceType: ${app.bake.instanceType} is not allowed (allowed: ${list(rules.bakeInstanceTypes)})`,
    );
  }
  if (!env.runtimeInstanceTypes.includes(app.runtime.instanceType)) {
    violations.push(
      `runtime.instanceType: ${app.runtime.instanceType} is not allowed in ${environment} (allowed: ${list(env.runtimeInstanceTypes)})`,
    );
  }
  if (app.runtime.minSize < env.asgSize.min) {
    violations.push(
      `runtime.minSize: ${app.runtime.minSize} is below the ${environment} minimum of ${env.asgSize.min}`,
    );
  }
  if (app.runtime.maxSize > env.asgSize.max) {
    violations.push(
      `runtime.maxSize: ${app.runtime.maxSize} is above the ${environment} maximum of ${env.asgSize.max}`,
    );
  }
  const shareAccounts = env.shareAccounts;
  if (shareAccounts) {
    const allowed = `allowed in ${environment}: ${list(shareAccounts)}`;
    if (!shareAccounts.includes(app.shareWithAccountId)) {
      violations.push(
        `shareWithAccountId: ${app.shareWithAccountId} is not an account to share with (${allowed})`,
      );
    }
    app.distribution.accounts.forEach((account, i) => {
      if (!shareAccounts.includes(account))
        violations.push(
          `distribution.accounts[${i}]: ${account} is not an account to share with (${allowed})`,
        );
    });
  } else {
    app.distribution.accounts.forEach((account, i) =>
      violations.push(
        `distribution.accounts[${i}]: ${account}: apps in ${environment} share only with their shareWithAccountId (config/rules.yml environments.${environment}.shareAccounts lists no others)`,
      ),
    );
  }
  app.services.forEach((service, i) => {
    if (!rules.allowedServices.includes(service)) {
      violations.push(
        `services[${i}]: ${service} is not an allowed AWS service (allowed: ${list(rules.allowedServices)})`,
      );
    }
  });
  for (const tag of rules.requiredTags) {
    if (!(tag in app.tags)) violations.push(`tags.${tag}: is required by platform rules`);
  }
  for (const [tag, allowed] of Object.entries(rules.tagValues)) {
    const value = app.tags[tag];
    if (value !== undefined && !allowed.includes(value)) {
      violations.push(`tags.${tag}: "${value}" is not allowed (allowed: ${list(allowed)})`);
    }
  }
  if (app.inspec.allowedFailedControls > env.maxAllowedFailedControls) {
    violations.push(
      `inspec.allowedFailedControls: ${app.inspec.allowedFailedControls} exceeds the ${environment} limit of ${env.maxAllowedFailedControls}`,
    );
  }
  const logGroupPrefix = rules.logGroupNamePrefix.replace('{appId}', app.appId);
  app.logGroups.forEach((group, i) => {
    if (!group.name.startsWith(logGroupPrefix) || group.name.length === logGroupPrefix.length) {
      violations.push(
        `logGroups[${i}].name: ${group.name} must start with ${logGroupPrefix} (platform rule logGroupNamePrefix: ${rules.logGroupNamePrefix})`,
      );
    }
    if (group.retentionDays !== undefined && group.retentionDays < rules.minLogRetentionDays) {
      violations.push(
        `logGroups[${i}].retentionDays: ${group.retentionDays} is below the platform minimum of ${rules.minLogRetentionDays}`,
      );
    }
  });
  return violations;
};
