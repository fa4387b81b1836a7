import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { stageConfigSchema, type StageConfig } from '../../shared/config/stage';

/**
 * Packages the service with the real Serverless CLI and reads what it wrote, so the assertions are
 * about the CloudFormation that would be deployed, after every plugin has had its say.
 */
export const REPO_ROOT = path.resolve(__dirname, '..', '..');

const SERVERLESS_BIN = path.join(REPO_ROOT, 'node_modules', '.bin', 'serverless');

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface CfnResource {
  Type: string;
  Properties?: JsonObject;
  DependsOn?: string | string[];
}

export interface CfnTemplate {
  Resources: Record<string, CfnResource>;
  Outputs?: JsonObject;
  Parameters?: JsonObject;
}

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** `Fn::GetAtt` of the stage's customer-managed key: what every encrypted resource must point at. */
export const STAGE_KEY_ARN: Json = { 'Fn::GetAtt': ['PipelineKey', 'Arn'] };

export const isObject = (value: Json | undefined): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** A value that IAM and CloudFormation accept as "one or a list". */
export const asList = (value: Json | undefined): Json[] =>
  value === undefined ? [] : Array.isArray(value) ? value : [value];

/** Follows a path of keys and indexes; `undefined` as soon as one is missing. */
export const at = (value: Json | undefined, ...keys: (string | number)[]): Json | undefined =>
  keys.reduce<Json | undefined>((node, key) => {
    if (typeof key === 'number') return Array.isArray(node) ? node[key] : undefined;
    return isObject(node) ? node[key] : undefined;
  }, value);

/**
 * Runs the project's Serverless CLI offline: dummy credentials (packaging calls no AWS API), no
 * telemetry, and a throwaway HOME because it writes ~/.serverless and ~/.serverlessrc.
 * Resolves with the exit code instead of rejecting, so a test can expect a failure.
 */
export const runServerless = (args: string[], home: string): Promise<CommandResult> => {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    AWS_ACCESS_KEY_ID: 'x',
    AWS_SECRET_ACCESS_KEY: 'x',
    SLS_TELEMETRY_DISABLED: '1',
  };
  // A profile or session token from the caller's shell would point at files absent from HOME.
  delete env.AWS_PROFILE;
  delete env.AWS_SESSION_TOKEN;
  return new Promise((resolve) => {
    execFile(
      SERVERLESS_BIN,
      args,
      { cwd: REPO_ROOT, env, maxBuffer: 16 * 1024 * 1024, timeout: 150_000 },
      (error, stdout, stderr) => {
        const exitCode = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ exitCode, stdout, stderr });
      },
    );
  });
};

/** Entry names of a zip file (`unzip -Z1` prints one per line). */
export const zipEntries = (file: string): Promise<string[]> =>
  new Promise((resolve, reject) => {
    execFile('unzip', ['-Z1', file], (error, stdout, stderr) => {
      if (error !== null) reject(new Error(`unzip -Z1 ${file} failed: ${stderr}`, { cause: error }));
      else resolve(stdout.split('\n').filter((line) => line !== ''));
    });
  });

/** `config/<stage>.yml` read with the yaml package and the project's own schema (defaults applied). */
export const readStageConfig = (stage: string): StageConfig =>
  stageConfigSchema.parse(parse(readFileSync(path.join(REPO_ROOT, 'config', `${stage}.yml`), 'utf8')));

/** What `serverless package --stage <stage> --package <dir>` produced. */
export class PackagedStack {
  private constructor(
    readonly stage: string,
    readonly dir: string,
    readonly template: CfnTemplate,
    readonly config: StageConfig,
  ) {}

  static async package(stage: string, dir: string, home: string): Promise<PackagedStack> {
    const result = await runServerless(['package', '--stage', stage, '--package', dir], home);
    if (result.exitCode !== 0) {
      throw new Error(
        `serverless package --stage ${stage} exited ${result.exitCode}:\n${result.stdout}\n${result.stderr}`,
      );
    }
    const file = path.join(dir, 'cloudformation-template-update-stack.json');
    const template = JSON.parse(readFileSync(file, 'utf8')) as CfnTemplate;
    if (!isObject(template.Resources as unknown as Json)) throw new Error(`${file} has no Resources`);
    return new PackagedStack(stage, dir, template, readStageConfig(stage));
  }

  /** `[logicalId, resource]` for every resource of a CloudFormation type. */
  resourcesOfType(type: string): [string, CfnResource][] {
    return Object.entries(this.template.Resources).filter(([, resource]) => resource.Type === type);
  }

  resource(logicalId: string, type: string): CfnResource {
    const found = this.template.Resources[logicalId];
    if (found === undefined) throw new Error(`${this.stage} template has no resource ${logicalId}`);
    if (found.Type !== type) throw new Error(`${logicalId} is a ${found.Type}, not a ${type}`);
    return found;
  }

  properties(logicalId: string, type: string): JsonObject {
    return this.resource(logicalId, type).Properties ?? {};
  }

  artifact(name: string): string {
    return path.join(this.dir, name);
  }

  hasArtifact(name: string): boolean {
    return existsSync(this.artifact(name));
  }
}

/**
 * Renders an ARN-building intrinsic as `Fn::Sub` text, so that `Fn::GetAtt [B, Arn]`,
 * `Fn::Sub ${B.Arn}/*` and `Fn::Join ['', [arn:, Ref AWS::Partition, …]]` can be compared as strings.
 */
export const renderArn = (value: Json | undefined): string => {
  if (typeof value === 'string') return value;
  if (isObject(value)) {
    if (typeof value.Ref === 'string') return `\${${value.Ref}}`;
    const getAtt = value['Fn::GetAtt'];
    if (Array.isArray(getAtt)) return `\${${getAtt.map(String).join('.')}}`;
    const sub = value['Fn::Sub'];
    if (typeof sub === 'string') return sub;
    const join = value['Fn::Join'];
    if (Array.isArray(join) && typeof join[0] === 'string' && Array.isArray(join[1])) {
      return join[1].map((part) => renderArn(part)).join(join[0]);
    }
  }
  return JSON.stringify(value);
};

const PSEUDO_PARAMETER = /^AWS::/;

/**
 * Every `Ref`, `Fn::GetAtt`, `${…}` in `Fn::Sub` and `DependsOn` that names neither a resource, a
 * parameter, a pseudo parameter nor a `Fn::Sub` variable. Packaging does not catch these; a
 * deploy fails on them.
 */
export const danglingReferences = (template: CfnTemplate): string[] => {
  const known = new Set([...Object.keys(template.Resources), ...Object.keys(template.Parameters ?? {})]);
  const dangling: string[] = [];
  const check = (name: string, where: string) => {
    if (!PSEUDO_PARAMETER.test(name) && !known.has(name)) dangling.push(`${where}: ${name}`);
  };
  const visit = (node: Json, where: string): void => {
    if (Array.isArray(node)) {
      node.forEach((child) => visit(child, where));
      return;
    }
    if (!isObject(node)) return;
    if (typeof node.Ref === 'string') check(node.Ref, where);
    const getAtt = node['Fn::GetAtt'];
    if (Array.isArray(getAtt) && typeof getAtt[0] === 'string') check(getAtt[0], where);
    if (typeof getAtt === 'string') check(getAtt.split('.')[0] ?? getAtt, where);
    const sub = node['Fn::Sub'];
    const [text, variables] = Array.isArray(sub) ? [sub[0], sub[1]] : [sub, undefined];
    if (typeof text === 'string') {
      const local = new Set(isObject(variables) ? Object.keys(variables) : []);
      for (const match of text.matchAll(/\$\{([^!}][^}]*)\}/g)) {
        const name = (match[1] ?? '').split('.')[0] ?? '';
        if (!local.has(name)) check(name, where);
      }
    }
    Object.values(node).forEach((child) => visit(child, where));
  };
  for (const [id, resource] of Object.entries(template.Resources)) {
    visit(resource.Properties ?? {}, id);
    asList(resource.DependsOn).forEach((name) => check(String(name), `${id}.DependsOn`));
  }
  visit(template.Outputs ?? {}, 'Outputs');
  return dangling;
};

const RATE_UNIT_SECONDS: Record<string, number> = { minute: 60, hour: 3600, day: 86400 };

/** Seconds between runs of an EventBridge `rate(n unit)` expression; throws for anything else (cron). */
export const rateSeconds = (expression: string): number => {
  const match = /^rate\((\d+) (minute|hour|day)s?\)$/.exec(expression);
  const unit = RATE_UNIT_SECONDS[match?.[2] ?? ''];
  if (match === null || unit === undefined) throw new Error(`not a rate expression: ${expression}`);
  return Number(match[1]) * unit;
};
