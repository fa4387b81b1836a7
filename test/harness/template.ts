import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import type { StageConfig } from '../../shared/config/stage';

/**
 * Reads the project's own deployment files (serverless.yml, functions/*\/function.yml and the ASL)
 * and resolves the few variables and intrinsics they use to local names, so the harness runs what
 * would be deployed: the same table keys and indexes, the same environment per function, the same
 * state machine definition.
 */
export const REPO_ROOT = path.resolve(__dirname, '..', '..');

export const LOCAL_ACCOUNT_ID = '000000000000';

/** Stands in for config/assets.cjs's content-addressed prefix (nothing runs the scripts locally). */
export const LOCAL_ASSETS_PREFIX = 'tooling/local';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface LocalResource {
  /** What CloudFormation's `Ref` returns for it. */
  ref: string;
  arn: string;
}

export interface FunctionDefinition {
  /** Key in serverless.yml (`preProvision`), used by `Fn::GetAtt: [preProvision, Arn]`. */
  key: string;
  /** Module path relative to the repo root and exported handler name. */
  modulePath: string;
  exportName: string;
  environment: Record<string, string>;
  timeoutSeconds: number;
  /** function.yml `memorySize`, else the provider's (what Lambda bills duration by). */
  memorySize: number;
  /** Lambda async-invoke retries (function.yml `maximumRetryAttempts`, Lambda's default 2). */
  maximumRetryAttempts: number;
}

const readYaml = (file: string): Json => parse(readFileSync(path.join(REPO_ROOT, file), 'utf8')) as Json;

const asObject = (value: Json | undefined, what: string): Record<string, Json> => {
  if (value === null || value === undefined || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`${what} is not an object`);
  }
  return value;
};

/** Serverless's logical id for a function key: `preProvision` → `PreProvisionLambdaFunction`. */
export const functionLogicalId = (key: string): string =>
  `${key.charAt(0).toUpperCase()}${key.slice(1).replace(/-/g, 'Dash').replace(/_/g, 'Underscore')}LambdaFunction`;

export class LocalTemplate {
  readonly resources: Record<string, LocalResource> = {};
  private readonly serverless = asObject(readYaml('serverless.yml'), 'serverless.yml');

  constructor(
    readonly stage: StageConfig,
    readonly accountId: string = LOCAL_ACCOUNT_ID,
  ) {
    const { stage: s, region } = stage;
    const arn = (service: string, resource: string) =>
      `arn:aws:${service}:${region}:${accountId}:${resource}`;
    const bucket = (name: string): LocalResource => ({ ref: name, arn: `arn:aws:s3:::${name}` });
    const keyId = '11111111-2222-3333-4444-555555555555';
    Object.assign(this.resources, {
      PipelineKey: { ref: keyId, arn: arn('kms', `key/${keyId}`) },
      TriggerTopic: {
        ref: arn('sns', `ami-pipeline-${s}-trigger`),
        arn: arn('sns', `ami-pipeline-${s}-trigger`),
      },
      OutcomeTopic: {
        ref: arn('sns', `ami-pipeline-${s}-outcome`),
        arn: arn('sns', `ami-pipeline-${s}-outcome`),
      },
      RejectionsQueue: {
        ref: `https://sqs.${region}.amazonaws.com/${accountId}/ami-pipeline-${s}-rejections`,
        arn: arn('sqs', `ami-pipeline-${s}-rejections`),
      },
      TriggerDeadLetterQueue: {
        ref: `https://sqs.${region}.amazonaws.com/${accountId}/ami-pipeline-${s}-trigger-dlq`,
        arn: arn('sqs', `ami-pipeline-${s}-trigger-dlq`),
      },
      AuditTable: { ref: `ami-pipeline-${s}-audit`, arn: arn('dynamodb', `table/ami-pipeline-${s}-audit`) },
      CoordinationTable: {
        ref: `ami-pipeline-${s}-coordination`,
        arn: arn('dynamodb', `table/ami-pipeline-${s}-coordination`),
      },
      ArtifactsBucket: bucket(`ami-pipeline-${s}-artifacts-${accountId}-${region}`),
      ReportsBucket: bucket(`ami-pipeline-${s}-reports-${accountId}-${region}`),
      LogsBucket: bucket(`ami-pipeline-${s}-logs-${accountId}-${region}`),
      TerraformLockTable: {
        ref: `ami-pipeline-${s}-tflock`,
        arn: arn('dynamodb', `table/ami-pipeline-${s}-tflock`),
      },
      CommandLogGroup: {
        ref: `/ami-pipeline/${s}/commands`,
        arn: arn('logs', `log-group:/ami-pipeline/${s}/commands`),
      },
      BakeDocument: { ref: `ami-pipeline-${s}-bake`, arn: arn('ssm', `document/ami-pipeline-${s}-bake`) },
      ProvisionDocument: {
        ref: `ami-pipeline-${s}-provision`,
        arn: arn('ssm', `document/ami-pipeline-${s}-provision`),
      },
      ValidateDocument: {
        ref: `ami-pipeline-${s}-validate`,
        arn: arn('ssm', `document/ami-pipeline-${s}-validate`),
      },
      LogsDeliveryStream: {
        ref: `ami-pipeline-${s}-logs`,
        arn: arn('firehose', `deliverystream/ami-pipeline-${s}-logs`),
      },
      LogsDeliveryRole: {
        ref: `ami-pipeline-${s}-LogsDeliveryRole-LOCAL`,
        arn: `arn:aws:iam::${accountId}:role/ami-pipeline-${s}-LogsDeliveryRole-LOCAL`,
      },
      LogsSubscriptionRole: {
        ref: `ami-pipeline-${s}-LogsSubscriptionRole-LOCAL`,
        arn: `arn:aws:iam::${accountId}:role/ami-pipeline-${s}-LogsSubscriptionRole-LOCAL`,
      },
      LogsDeliveryLogGroup: {
        ref: `/ami-pipeline/${s}/logs-delivery`,
        arn: arn('logs', `log-group:/ami-pipeline/${s}/logs-delivery:*`),
      },
      AmiPipelineStateMachine: {
        ref: arn('states', `stateMachine:ami-pipeline-${s}`),
        arn: arn('states', `stateMachine:ami-pipeline-${s}`),
      },
      DecommissionStateMachine: {
        ref: arn('states', `stateMachine:ami-pipeline-${s}-decommission`),
        arn: arn('states', `stateMachine:ami-pipeline-${s}-decommission`),
      },
    });
    for (const fn of this.functionKeys()) {
      const fnArn = arn('lambda', `function:ami-pipeline-${s}-${fn}`);
      this.resources[fn] = { ref: `ami-pipeline-${s}-${fn}`, arn: fnArn };
      this.resources[functionLogicalId(fn)] = { ref: `ami-pipeline-${s}-${fn}`, arn: fnArn };
    }
  }

  resource(logicalId: string): LocalResource {
    const found = this.resources[logicalId];
    if (!found) throw new Error(`the local harness has no stand-in for resource ${logicalId}`);
    return found;
  }

  /** CloudFormation `Properties` of a resource declared in serverless.yml, resolved. */
  resourceProperties(logicalId: string): Record<string, Json> {
    const resources = asObject(
      asObject(this.serverless.resources, 'resources').Resources,
      'resources.Resources',
    );
    const resource = asObject(resources[logicalId], `resource ${logicalId}`);
    return asObject(this.resolve(resource.Properties ?? null), `${logicalId}.Properties`);
  }

  /** The state machine definition exactly as serverless-step-functions would deploy it. */
  stateMachineDefinition(file = 'statemachines/ami-pipeline.asl.yml'): Record<string, Json> {
    return asObject(this.resolve(readYaml(file)), `state machine definition ${file}`);
  }

  functionKeys(): string[] {
    return readdirSync(path.join(REPO_ROOT, 'functions'), { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .flatMap((d) => Object.keys(asObject(readYaml(`functions/${d.name}/function.yml`), d.name)));
  }

  functions(): FunctionDefinition[] {
    const provider = asObject(this.serverless.provider, 'provider');
    const providerEnv = asObject(this.resolve(provider.environment ?? {}), 'provider.environment');
    return readdirSync(path.join(REPO_ROOT, 'functions'), { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .flatMap((d) =>
        Object.entries(asObject(readYaml(`functions/${d.name}/function.yml`), d.name)).map(([key, raw]) => {
          const def = asObject(raw, key);
          const handler = String(def.handler);
          const dot = handler.lastIndexOf('.');
          const env = {
            ...providerEnv,
            ...asObject(this.resolve(def.environment ?? {}), `${key}.environment`),
          };
          return {
            key,
            modulePath: handler.slice(0, dot),
            exportName: handler.slice(dot + 1),
            environment: Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)])),
            timeoutSeconds: Number(def.timeout ?? provider.timeout ?? 6),
            memorySize: Number(def.memorySize ?? provider.memorySize ?? 1024),
            maximumRetryAttempts: Number(def.maximumRetryAttempts ?? 2),
          };
        }),
      );
  }

  /** Resolves `${sls:stage}`, `${self:custom.stage.*}`, `${self:custom.stageJson}`, `${self:service}`, Ref, Fn::GetAtt and Fn::Sub. */
  resolve(value: Json): Json {
    if (typeof value === 'string') {
      // A value that is one variable keeps the variable's type (a number stays a number), as in Serverless.
      const whole = /^\$\{self:custom\.stage\.([A-Za-z0-9.]+)\}$/.exec(value);
      if (whole?.[1]) return this.stageValue(whole[1]) as Json;
      // config/stage.cjs `json`: the (here: the harness's merged) stage config as JSON.
      if (value === '${self:custom.stageJson}') return JSON.stringify(this.stage);
      return this.resolveString(value);
    }
    if (Array.isArray(value)) return value.map((v) => this.resolve(v));
    if (value === null || typeof value !== 'object') return value;
    if ('Ref' in value) return this.resolveRef(String(value.Ref));
    if ('Fn::GetAtt' in value) {
      const [id, attr] = value['Fn::GetAtt'] as [string, string];
      if (attr !== 'Arn') throw new Error(`Fn::GetAtt ${id}.${attr} has no local stand-in`);
      return this.resource(id).arn;
    }
    if ('Fn::Sub' in value) {
      const template = this.resolveString(String(value['Fn::Sub']));
      return template.replace(/\$\{([A-Za-z0-9:.]+)\}/g, (_, name: string) =>
        name.endsWith('.Arn') ? this.resource(name.slice(0, -4)).arn : this.resolveRef(name),
      );
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.resolve(v)]));
  }

  private resolveRef(id: string): string {
    switch (id) {
      case 'AWS::Region':
        return this.stage.region;
      case 'AWS::AccountId':
        return this.accountId;
      case 'AWS::Partition':
        return 'aws';
      default:
        return this.resource(id).ref;
    }
  }

  private resolveString(text: string): string {
    return text.replace(
      /\$\{(sls:stage|self:service|self:custom\.assetsPrefix|self:custom\.stage\.[A-Za-z0-9.]+)\}/g,
      (_, name: string) => {
        if (name === 'sls:stage') return this.stage.stage;
        if (name === 'self:service') return 'ami-pipeline';
        if (name === 'self:custom.assetsPrefix') return LOCAL_ASSETS_PREFIX;
        return String(this.stageValue(name.slice('self:custom.stage.'.length)));
      },
    );
  }

  private stageValue(dotted: string): unknown {
    const value = dotted
      .split('.')
      .reduce<unknown>((obj, part) => (obj as Record<string, unknown> | undefined)?.[part], this.stage);
    if (value === undefined)
      throw new Error(`\${self:custom.stage.${dotted}} is not set in config/${this.stage.stage}.yml`);
    return value;
  }
}
