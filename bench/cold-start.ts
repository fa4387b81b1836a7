/**
 * Cold start (issue 7, section 1): for every Lambda in functions/*, the deployed bundle against a
 * "floor" (a bundle that only builds and calls the same AWS SDK clients), in bytes and in the time
 * a fresh Node process takes to load it, plus static checks on what the bundle carries and what
 * loading it does (network, timers, files read).
 *
 * Bundles are built with the esbuild options serverless-esbuild would use here (serverless.yml
 * `custom.esbuild` over the plugin's defaults), written to a temporary folder and loaded by a small
 * probe script in child processes whose cwd and LAMBDA_TASK_ROOT are the repository root (so
 * `config/` resolves as it does beside the bundle in Lambda).
 */
import { execFile } from 'node:child_process';
import { access, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Table from 'cli-table3';
import { build, type BuildOptions, type Metafile } from 'esbuild';
import { parse } from 'yaml';
import type { StageConfig } from '../shared/config/stage';
import { loadStageConfig } from '../shared/config/stage-file';
import { median, type BenchSection, type Target } from './section';

const ROOT = path.resolve(__dirname, '..');
const STAGE = 'dev';
const REGION = 'eu-west-1';
const ACCOUNT = '123456789012';
const LIMIT = 1.3;
/** Loads with --enable-source-maps: every third round (5 of 15), to keep the section near 2 minutes. */
const SOURCE_MAP_EVERY = 3;
/** Probe processes run at once: one per core, at most two (more would measure contention). */
const LANES = Math.max(1, Math.min(2, os.availableParallelism()));

type Yaml = Record<string, unknown>;

const isObject = (value: unknown): value is Yaml =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const kb = (bytes: number): string => (bytes / 1024).toFixed(0);
const ms = (value: number): string => value.toFixed(0);
const ratio = (value: number): string => `${value.toFixed(2)}×`;

// ---- build options ---------------------------------------------------------------------------

/** serverless-esbuild 1.57 options that are the plugin's own, removed before calling esbuild. */
const PLUGIN_ONLY_OPTIONS = [
  'concurrency',
  'zipConcurrency',
  'exclude',
  'nativeZip',
  'packager',
  'packagePath',
  'watch',
  'keepOutputDirectory',
  'packagerOptions',
  'installExtraArgs',
  'outputFileExtension',
  'outputBuildFolder',
  'outputWorkFolder',
  'nodeExternals',
  'skipBuild',
  'skipRebuild',
  'skipBuildExcludeFns',
  'stripEntryResolveExtensions',
  'disposeContext',
];

/**
 * The esbuild options serverless-esbuild passes for this service: its defaults (bundle, platform
 * node, `exclude: ['aws-sdk']` made external, target from the runtime) under `custom.esbuild`.
 * No `format` is set, so esbuild's default for a node bundle applies: CommonJS.
 */
const esbuildOptions = (serverless: Yaml): BuildOptions => {
  const custom =
    isObject(serverless.custom) && isObject(serverless.custom.esbuild) ? serverless.custom.esbuild : {};
  if (custom.config !== undefined || custom.plugins !== undefined) {
    throw new Error(
      'cold-start bench: custom.esbuild.config/plugins are not supported; extend bench/cold-start.ts',
    );
  }
  const runtime = isObject(serverless.provider) ? String(serverless.provider.runtime) : '';
  const runtimeTarget = /^nodejs(\d+)\.x$/.exec(runtime)?.[1];
  const merged: Yaml = {
    bundle: true,
    platform: 'node',
    target: runtimeTarget ? `node${runtimeTarget}` : 'node18',
    external: [],
    exclude: ['aws-sdk'],
    ...custom,
  };
  const exclude = Array.isArray(merged.exclude) ? (merged.exclude as string[]) : [];
  const external = [
    ...(Array.isArray(merged.external) ? (merged.external as string[]) : []),
    ...(exclude.includes('*') ? [] : exclude),
  ];
  const options = Object.fromEntries(
    Object.entries(merged).filter(([key]) => !PLUGIN_ONLY_OPTIONS.includes(key)),
  );
  return { ...options, external } as BuildOptions;
};

// ---- functions and their environment ---------------------------------------------------------

interface FunctionSpec {
  /** Folder name under functions/. */
  name: string;
  entry: string;
  env: Record<string, string>;
  /** package.patterns of the function (stage resolved). */
  patterns: string[];
  /** The export Lambda calls (`handler: functions/x/handler.<export>`). */
  handlerExport: string;
}

const kebab = (id: string): string => id.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();

/** A value of `custom.stage.<path>` (config/dev.yml with its defaults). */
const stageValue = (stage: StageConfig, dotted: string): unknown =>
  dotted.split('.').reduce<unknown>((node, key) => (isObject(node) ? node[key] : undefined), stage);

/** Serverless `${…}` variables this bench can resolve; anything else gets a placeholder. */
const resolveVariables = (text: string, stage: StageConfig): string =>
  text.replace(/\$\{([^}]+)\}/g, (_, variable: string) => {
    if (variable === 'sls:stage' || variable.startsWith('opt:stage')) return STAGE;
    if (variable === 'self:custom.assetsPrefix') return 'tooling/0123456789abcdef';
    // config/stage.cjs `json`: the validated stage config, as STAGE_CONFIG carries it.
    if (variable === 'self:custom.stageJson') return JSON.stringify(stage);
    const stagePath = /^self:custom\.stage\.([\w.]+)/.exec(variable)?.[1];
    if (stagePath !== undefined) {
      const value = stageValue(stage, stagePath);
      if (value !== undefined && !isObject(value)) return String(value);
    }
    return `bench-${variable.replace(/[^\w]+/g, '-')}`;
  });

/**
 * A plausible value for an environment variable set from CloudFormation (`Ref`, `Fn::GetAtt`):
 * what that reference returns for the resource's type (a name, an ARN, a queue URL).
 */
const cloudFormationValue = (
  variable: string,
  value: Yaml,
  resources: Yaml,
  stateMachineIds: Set<string>,
  stage: StageConfig,
): string => {
  const arn = (service: string, resource: string, region = REGION) =>
    `arn:aws:${service}:${region}:${ACCOUNT}:${resource}`;
  const ref = typeof value.Ref === 'string' ? value.Ref : undefined;
  const getAtt = Array.isArray(value['Fn::GetAtt']) ? (value['Fn::GetAtt'] as unknown[]) : undefined;
  const logicalId = ref ?? (getAtt ? String(getAtt[0]) : variable);
  const resource = isObject(resources[logicalId]) ? resources[logicalId] : {};
  const type = typeof resource.Type === 'string' ? resource.Type : '';
  const properties = isObject(resource.Properties) ? resource.Properties : {};
  const declaredName = Object.entries(properties).find(
    ([key, v]) => key.endsWith('Name') && typeof v === 'string' && key !== 'KeyName',
  )?.[1] as string | undefined;
  const name = declaredName
    ? resolveVariables(declaredName, stage)
    : `ami-pipeline-${STAGE}-${kebab(logicalId)}`;
  if (stateMachineIds.has(logicalId) || type === 'AWS::StepFunctions::StateMachine') {
    return arn('states', `stateMachine:${name}`);
  }
  const wantsArn = (getAtt && getAtt[1] === 'Arn') || /_ARN$/.test(variable) || type === 'AWS::SNS::Topic';
  if (wantsArn) {
    switch (type) {
      case 'AWS::KMS::Key':
        return arn('kms', 'key/00000000-0000-4000-8000-000000000000');
      case 'AWS::IAM::Role':
        return `arn:aws:iam::${ACCOUNT}:role/${name}`;
      case 'AWS::KinesisFirehose::DeliveryStream':
        return arn('firehose', `deliverystream/${name}`);
      case 'AWS::SNS::Topic':
        return arn('sns', name);
      case 'AWS::SQS::Queue':
        return arn('sqs', name);
      case 'AWS::DynamoDB::Table':
        return arn('dynamodb', `table/${name}`);
      case 'AWS::S3::Bucket':
        return `arn:aws:s3:::${name}`;
      case 'AWS::Logs::LogGroup':
        return arn('logs', `log-group:${name}`);
      default: {
        const service = /^AWS::(\w+)::/.exec(type)?.[1]?.toLowerCase() ?? 'bench';
        return arn(service, name);
      }
    }
  }
  if (type === 'AWS::SQS::Queue') return `https://sqs.${REGION}.amazonaws.com/${ACCOUNT}/${name}`;
  return name;
};

const envValue = (
  variable: string,
  value: unknown,
  resources: Yaml,
  stateMachineIds: Set<string>,
  stage: StageConfig,
): string => {
  if (typeof value === 'string') return resolveVariables(value, stage);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  // Fn::Sub of pseudo parameters and serverless variables (e.g. a role ARN built, not referenced).
  if (isObject(value) && typeof value['Fn::Sub'] === 'string') {
    const pseudo: Record<string, string> = {
      'AWS::Partition': 'aws',
      'AWS::AccountId': ACCOUNT,
      'AWS::Region': REGION,
    };
    return resolveVariables(
      value['Fn::Sub'].replace(/\$\{(AWS::\w+)\}/g, (whole, name: string) => pseudo[name] ?? whole),
      stage,
    );
  }
  if (isObject(value)) return cloudFormationValue(variable, value, resources, stateMachineIds, stage);
  return `bench-${variable.toLowerCase()}`;
};

const readYaml = async (file: string): Promise<Yaml> => {
  const parsed: unknown = parse(await readFile(file, 'utf8'));
  if (!isObject(parsed)) throw new Error(`${file}: not a YAML mapping`);
  return parsed;
};

const loadFunctions = async (serverless: Yaml): Promise<FunctionSpec[]> => {
  const stage = loadStageConfig(STAGE, path.join(ROOT, 'config'));
  const resources =
    isObject(serverless.resources) && isObject(serverless.resources.Resources)
      ? serverless.resources.Resources
      : {};
  const machines =
    isObject(serverless.stepFunctions) && isObject(serverless.stepFunctions.stateMachines)
      ? Object.values(serverless.stepFunctions.stateMachines)
      : [];
  const stateMachineIds = new Set(machines.filter(isObject).map((machine) => String(machine.id)));
  const provider = isObject(serverless.provider) ? serverless.provider : {};
  const providerEnv = isObject(provider.environment) ? provider.environment : {};

  const folders = (await readdir(path.join(ROOT, 'functions'), { withFileTypes: true }))
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
  const specs: FunctionSpec[] = [];
  for (const folder of folders) {
    const yml = path.join(ROOT, 'functions', folder, 'function.yml');
    const doc = await readYaml(yml).catch(() => undefined);
    if (!doc) continue;
    for (const [logicalName, definition] of Object.entries(doc)) {
      if (!isObject(definition) || typeof definition.handler !== 'string') continue;
      const handler = definition.handler;
      const base = handler.slice(0, handler.lastIndexOf('.'));
      const entry = (await exists(path.join(ROOT, `${base}.ts`))) ? `${base}.ts` : `${base}.js`;
      const declared = {
        ...providerEnv,
        ...(isObject(definition.environment) ? definition.environment : {}),
      };
      const env: Record<string, string> = {};
      for (const [variable, value] of Object.entries(declared)) {
        // NODE_OPTIONS (--enable-source-maps) is measured as its own column.
        if (variable === 'NODE_OPTIONS') continue;
        env[variable] = envValue(variable, value, resources, stateMachineIds, stage);
      }
      const pkg = isObject(definition.package) ? definition.package : {};
      const topPkg = isObject(serverless.package) ? serverless.package : {};
      const patterns = [
        ...(Array.isArray(topPkg.patterns) ? topPkg.patterns : []),
        ...(Array.isArray(pkg.patterns) ? pkg.patterns : []),
      ].map((pattern) => resolveVariables(String(pattern), stage));
      specs.push({
        name: folder,
        entry,
        env: {
          ...env,
          AWS_REGION: REGION,
          AWS_DEFAULT_REGION: REGION,
          AWS_LAMBDA_FUNCTION_NAME: `ami-pipeline-${STAGE}-${logicalName}`,
          AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(definition.memorySize ?? provider.memorySize ?? 1024),
        },
        patterns,
        handlerExport: handler.slice(handler.lastIndexOf('.') + 1),
      });
    }
  }
  return specs;
};

const exists = (file: string): Promise<boolean> =>
  access(file).then(
    () => true,
    () => false,
  );

/** Serverless-style glob (`**`, `*`, `?`, leading `!` excludes) against a repo-relative path. */
const packaged = (file: string, patterns: readonly string[]): boolean => {
  let included = false;
  for (const raw of patterns) {
    const negate = raw.startsWith('!');
    const glob = negate ? raw.slice(1) : raw;
    const source = glob
      .split(/(\*\*\/|\*\*|\*|\?)/)
      .map((part) => {
        if (part === '**/') return '(?:.*/)?';
        if (part === '**') return '.*';
        if (part === '*') return '[^/]*';
        if (part === '?') return '[^/]';
        return part.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      })
      .join('');
    if (new RegExp(`^${source}$`).test(file)) included = !negate;
  }
  return included;
};

// ---- metafile analysis -----------------------------------------------------------------------

const APP = '(app code)';

/** The npm package an esbuild input belongs to (the innermost node_modules), or APP. */
const packageOf = (input: string): string => {
  const at = input.lastIndexOf('node_modules/');
  if (at < 0) return APP;
  const [scope, name] = input.slice(at + 'node_modules/'.length).split('/');
  return scope?.startsWith('@') ? `${scope}/${name}` : (scope ?? input);
};

interface Output {
  jsBytes: number;
  mapBytes: number;
  jsFile: string;
  /** bytesInOutput of every input, by file. */
  inputs: Record<string, number>;
}

const outputOf = (metafile: Metafile): Output => {
  const entries = Object.entries(metafile.outputs);
  const js = entries.find(([file]) => file.endsWith('.js'));
  const map = entries.find(([file]) => file.endsWith('.js.map'));
  if (!js) throw new Error('esbuild wrote no .js output');
  return {
    jsBytes: js[1].bytes,
    mapBytes: map?.[1].bytes ?? 0,
    jsFile: path.resolve(ROOT, js[0]),
    inputs: Object.fromEntries(Object.entries(js[1].inputs).map(([file, v]) => [file, v.bytesInOutput])),
  };
};

const byPackage = (output: Output): Record<string, number> => {
  const totals: Record<string, number> = {};
  for (const [file, bytes] of Object.entries(output.inputs)) {
    const pkg = packageOf(file);
    totals[pkg] = (totals[pkg] ?? 0) + bytes;
  }
  return totals;
};

const SDK_CLIENT = /^@aws-sdk\/client-[a-z0-9-]+$/;
const LIB_DYNAMODB = '@aws-sdk/lib-dynamodb';

/** SDK client packages (and lib-dynamodb) in an output, sorted. */
const sdkPackages = (output: Output): string[] =>
  Object.entries(byPackage(output))
    .filter(([pkg, bytes]) => (SDK_CLIENT.test(pkg) || pkg === LIB_DYNAMODB) && bytes > 0)
    .map(([pkg]) => pkg)
    .sort();

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const IMPORT_FROM_SDK =
  /import\s+(type\s+)?\{([^}]*)\}\s*from\s*['"](@aws-sdk\/(?:client-[a-z0-9-]+|lib-dynamodb))['"]/g;

/**
 * SDK packages whose commands the bundle's own source files send: `new <X>Command(` or a
 * `paginate<X>(`/`waitUntil<X>(` imported (as a value) from that package. A lib-dynamodb command
 * is a call on client-dynamodb too. Static and per file: a file in the bundle counts as reachable.
 */
const calledPackages = async (
  output: Output,
): Promise<{ called: Set<string>; evidence: Record<string, string[]> }> => {
  const called = new Set<string>();
  const evidence: Record<string, string[]> = {};
  const note = (pkg: string, what: string) => {
    called.add(pkg);
    (evidence[pkg] ??= []).push(what);
  };
  const appFiles = Object.entries(output.inputs)
    .filter(([file, bytes]) => bytes > 0 && packageOf(file) === APP && /\.[cm]?[jt]s$/.test(file))
    .map(([file]) => file);
  for (const file of appFiles) {
    const text = await readFile(path.join(ROOT, file), 'utf8');
    for (const match of text.matchAll(IMPORT_FROM_SDK)) {
      if (match[1]) continue;
      const pkg = match[3] as string;
      const names = (match[2] as string)
        .split(',')
        .map((name) => name.trim())
        .filter((name) => name && !name.startsWith('type '))
        .map((name) => (name.split(/\s+as\s+/).pop() as string).trim());
      for (const local of names) {
        const used = /Command$/.test(local)
          ? new RegExp(`new\\s+${escapeRegExp(local)}\\s*\\(`).test(text)
          : /^(paginate|waitUntil|waitFor)[A-Z]/.test(local) &&
            new RegExp(`\\b${escapeRegExp(local)}\\s*\\(`).test(text);
        if (!used) continue;
        note(pkg, `${file}: ${local}`);
        if (pkg === LIB_DYNAMODB) note('@aws-sdk/client-dynamodb', `${file}: ${local} (lib-dynamodb)`);
      }
    }
  }
  return { called, evidence };
};

/**
 * The same, after tree-shaking: the function bundled with the same options but the SDK left
 * external and not minified, so the surviving app code shows each call as
 * `new import_client_x.XCommand(` or `(0, import_client_x.paginateX)(`. Code esbuild dropped (a
 * helper no handler path uses, in a file that is otherwise in the bundle) does not count.
 */
const reachablePackages = async (
  common: BuildOptions,
  entry: string,
): Promise<{ called: Set<string>; evidence: Record<string, string[]> }> => {
  const result = await build({
    ...common,
    entryPoints: [entry],
    outdir: path.join(os.tmpdir(), 'unused'),
    write: false,
    metafile: false,
    minify: false,
    sourcemap: false,
    external: [...(common.external ?? []), '@aws-sdk/*'],
  });
  const text = result.outputFiles?.find((file) => file.path.endsWith('.js'))?.text ?? '';
  const called = new Set<string>();
  const evidence: Record<string, string[]> = {};
  for (const [, variable, pkg] of text.matchAll(
    /var (\w+) = (?:__toESM\()?require\("(@aws-sdk\/[^"]+)"\)/g,
  )) {
    const v = escapeRegExp(variable as string);
    const use = new RegExp(
      `new ${v}\\.(\\w+Command)\\(|\\(0, ${v}\\.((?:paginate|waitUntil|waitFor)\\w+)\\)\\(`,
      'g',
    );
    for (const match of text.matchAll(use)) {
      const name = (match[1] ?? match[2]) as string;
      for (const target of pkg === LIB_DYNAMODB
        ? [LIB_DYNAMODB, '@aws-sdk/client-dynamodb']
        : [pkg as string]) {
        called.add(target);
        const list = (evidence[target] ??= []);
        if (!list.includes(name)) list.push(name);
      }
    }
  }
  return { called, evidence };
};

// ---- floor -----------------------------------------------------------------------------------

/** Client class and one real command per client this service uses; others are looked up. */
const KNOWN_CLIENTS: Record<string, [client: string, command: string, input: string]> = {
  '@aws-sdk/client-cloudformation': ['CloudFormationClient', 'DescribeStacksCommand', '{ StackName: "s" }'],
  '@aws-sdk/client-cloudwatch': ['CloudWatchClient', 'GetMetricStatisticsCommand', '{}'],
  '@aws-sdk/client-cloudwatch-logs': ['CloudWatchLogsClient', 'PutRetentionPolicyCommand', '{}'],
  '@aws-sdk/client-dynamodb': ['DynamoDBClient', 'GetItemCommand', '{ TableName: "t", Key: {} }'],
  '@aws-sdk/client-ec2': ['EC2Client', 'DescribeImagesCommand', '{ ImageIds: ["ami-0"] }'],
  '@aws-sdk/client-elastic-load-balancing-v2': [
    'ElasticLoadBalancingV2Client',
    'DescribeLoadBalancersCommand',
    '{}',
  ],
  '@aws-sdk/client-kms': ['KMSClient', 'CreateGrantCommand', '{}'],
  '@aws-sdk/client-s3': ['S3Client', 'GetObjectCommand', '{ Bucket: "b", Key: "k" }'],
  '@aws-sdk/client-sfn': ['SFNClient', 'StartExecutionCommand', '{}'],
  '@aws-sdk/client-sns': ['SNSClient', 'PublishCommand', '{}'],
  '@aws-sdk/client-sqs': ['SQSClient', 'SendMessageCommand', '{}'],
  '@aws-sdk/client-ssm': ['SSMClient', 'GetParameterCommand', '{ Name: "n" }'],
};

const clientClassAndCommand = async (pkg: string): Promise<[string, string, string]> => {
  const known = KNOWN_CLIENTS[pkg];
  if (known) return known;
  // Any other client: its exports name the client class and its commands.
  const exported = Object.keys((await import(require.resolve(pkg, { paths: [ROOT] }))) as object);
  const client = exported.find((name) => /^[A-Z]\w*Client$/.test(name) && name !== 'Client');
  const command = exported.find((name) => /^[A-Z]\w*Command$/.test(name) && name !== 'Command');
  if (!client || !command) throw new Error(`cold-start bench: no client/command class found in ${pkg}`);
  return [client, command, '{}'];
};

/** An entry that builds each client and sends one command on each (never run: only loaded). */
const floorSource = async (packages: readonly string[]): Promise<string> => {
  const imports: string[] = [];
  const calls: string[] = [];
  const clients = packages.filter((pkg) => SDK_CLIENT.test(pkg));
  if (packages.includes(LIB_DYNAMODB) && !clients.includes('@aws-sdk/client-dynamodb')) {
    clients.push('@aws-sdk/client-dynamodb');
  }
  for (const pkg of clients) {
    const [client, command, input] = await clientClassAndCommand(pkg);
    imports.push(`import { ${client}, ${command} } from '${pkg}';`);
    calls.push(`await new ${client}({}).send(new ${command}(${input}));`);
  }
  if (packages.includes(LIB_DYNAMODB)) {
    imports.push(`import { DynamoDBDocumentClient, GetCommand } from '${LIB_DYNAMODB}';`);
    calls.push(
      'await DynamoDBDocumentClient.from(new DynamoDBClient({})).send(new GetCommand({ TableName: "t", Key: { k: "v" } }));',
    );
  }
  return `${imports.join('\n')}\nexport const floor = async () => {\n  ${calls.join('\n  ')}\n};\n`;
};

// ---- load-time probe -------------------------------------------------------------------------

/**
 * Run in a fresh process: counts network calls and timers started while the bundle loads, records
 * files read (other than the bundle), and times the require with hrtime.
 */
const PROBE = String.raw`'use strict';
const fs = require('node:fs');
const path = require('node:path');
const counts = { network: 0, timeouts: 0, intervals: 0 };
const calls = [];
const count = (target, key, counter) => {
  const original = target[key];
  if (typeof original !== 'function') return;
  target[key] = function (...args) {
    counts[counter] += 1;
    calls.push(counter + ':' + key);
    return original.apply(this, args);
  };
};
for (const mod of ['node:http', 'node:https']) {
  count(require(mod), 'request', 'network');
  count(require(mod), 'get', 'network');
}
count(require('node:net'), 'connect', 'network');
count(require('node:net'), 'createConnection', 'network');
count(require('node:tls'), 'connect', 'network');
count(require('node:dns'), 'lookup', 'network');
count(globalThis, 'fetch', 'network');
count(globalThis, 'setTimeout', 'timeouts');
count(globalThis, 'setInterval', 'intervals');
const bundle = path.resolve(process.argv[2]);
const reads = new Set();
const readFileSync = fs.readFileSync;
fs.readFileSync = function (file, ...rest) {
  if (typeof file === 'string' || file instanceof URL) {
    const full = path.resolve(String(file instanceof URL ? file.pathname : file));
    if (full !== bundle && full !== bundle + '.map') reads.add(full);
  }
  return readFileSync.call(this, file, ...rest);
};
const heap0 = process.memoryUsage().heapUsed;
const t0 = process.hrtime.bigint();
const mod = require(bundle);
const t1 = process.hrtime.bigint();
const heap1 = process.memoryUsage().heapUsed;
fs.readFileSync = readFileSync;
const result = {
  ms: Number(t1 - t0) / 1e6,
  heapDeltaBytes: heap1 - heap0,
  counts,
  calls,
  reads: [...reads],
  exports: Object.keys(mod),
};
fs.writeSync(1, JSON.stringify(result) + '\n');
process.exit(0);
`;

interface ProbeResult {
  ms: number;
  heapDeltaBytes: number;
  counts: { network: number; timeouts: number; intervals: number };
  calls: string[];
  reads: string[];
  exports: string[];
}

/** The end of a child's stderr, each line cut short: Node echoes the (minified, huge) source line. */
const tail = (text: string): string =>
  text
    .trim()
    .split('\n')
    .slice(-15)
    .map((line) => (line.length > 300 ? `${line.slice(0, 300)}…` : line))
    .join('\n');

const probe = (probeFile: string, bundle: string, env: Record<string, string>, sourceMaps: boolean) =>
  new Promise<ProbeResult>((resolve, reject) => {
    const args = [...(sourceMaps ? ['--enable-source-maps'] : []), probeFile, bundle];
    execFile(
      process.execPath,
      args,
      {
        cwd: ROOT,
        // Only what the function declares, plus what Lambda sets: nothing from this shell
        // (NODE_OPTIONS, AWS_ENDPOINT_URL…) leaks in.
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          LAMBDA_TASK_ROOT: ROOT,
          TZ: 'UTC',
          // Lambda runs Node 22; the SDK's Node 20 deprecation warning is not part of its cold start.
          AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
          ...env,
        },
        maxBuffer: 16 * 1024 * 1024,
        timeout: 60_000,
      },
      (error, stdout, stderr) => {
        if (error) {
          reject(
            new Error(
              `cold-start bench: loading ${bundle}${sourceMaps ? ' (--enable-source-maps)' : ''} failed ` +
                `(exit ${String(error.code)}):\n${tail(stderr)}`,
            ),
          );
          return;
        }
        const line = stdout.trim().split('\n').pop() ?? '';
        try {
          resolve(JSON.parse(line) as ProbeResult);
        } catch {
          reject(
            new Error(
              `cold-start bench: probe of ${bundle} printed no result:\n${tail(stdout)}\n${tail(stderr)}`,
            ),
          );
        }
      },
    );
  });

// ---- the section -----------------------------------------------------------------------------

interface FunctionResult {
  name: string;
  bundle: { jsBytes: number; mapBytes: number; byPackage: Record<string, number> };
  floor: { key: string; jsBytes: number; mapBytes: number; byPackage: Record<string, number> };
  bytesRatio: number;
  loadMs: { median: number; samples: number[] };
  floorLoadMs: { median: number; samples: number[] };
  loadRatio: number;
  sourceMapsLoadMs: { median: number; samples: number[] };
  heapDeltaBytes: number;
  /** The loaded module exports the handler the function's yml names. */
  exportsHandler: boolean;
  clients: string[];
  calledClients: string[];
  /** Bundled clients no reachable (tree-shaken) code sends a command on: the target. */
  uncalledClients: string[];
  /** The same, per source file: a file in the bundle that names `new XCommand(` counts. */
  uncalledClientsFileLevel: string[];
  /** Commands, paginators and waiters the reachable code uses, by package. */
  callEvidence: Record<string, string[]>;
  /** File-level: `<file>: <name>` for each use in a bundled source file. */
  callEvidenceFileLevel: Record<string, string[]>;
  atLoad: { network: number; timeouts: number; intervals: number; calls: string[] };
  filesReadAtLoad: { file: string; packaged: boolean }[];
  /** Packages making up the bytes above the floor (function minus floor), largest first. */
  aboveFloor: { package: string; bytes: number }[];
}

const shortClient = (pkg: string): string => pkg.replace('@aws-sdk/client-', '').replace('@aws-sdk/', '');

export const coldStart = async (options: { runs?: number; quick?: boolean } = {}): Promise<BenchSection> => {
  const runs = options.runs ?? (options.quick ? 5 : 15);
  const started = Date.now();
  const serverless = await readYaml(path.join(ROOT, 'serverless.yml'));
  const buildOptions = esbuildOptions(serverless);
  const functions = await loadFunctions(serverless);
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'ami-pipeline-cold-start-'));
  try {
    const common: BuildOptions = {
      ...buildOptions,
      absWorkingDir: ROOT,
      metafile: true,
      write: true,
      logLevel: 'silent',
    };

    // 1. the functions' bundles, as serverless-esbuild builds them
    // (and, beside each, the tree-shaken app code that tells which SDK calls it makes)
    const bundles = await Promise.all(
      functions.map(async (fn) => {
        const result = await build({ ...common, entryPoints: [fn.entry], outdir: path.join(tmp, fn.name) });
        return outputOf(result.metafile as Metafile);
      }),
    );
    const reachables = await Promise.all(functions.map((fn) => reachablePackages(common, fn.entry)));

    const builtFunctions = Date.now();

    // 2. one floor per distinct set of SDK packages
    const floorKeys = bundles.map((output) => sdkPackages(output).join(','));
    const floors = new Map<string, Output>();
    await Promise.all(
      [...new Set(floorKeys)].map(async (key, i) => {
        const result = await build({
          ...common,
          stdin: {
            contents: await floorSource(key ? key.split(',') : []),
            resolveDir: ROOT,
            sourcefile: `floor-${i}.js`,
            loader: 'js',
          },
          outfile: path.join(tmp, `floor-${i}`, 'floor.js'),
        });
        floors.set(key, outputOf(result.metafile as Metafile));
      }),
    );

    const builtFloors = Date.now();

    // 3. load times: fresh processes, function / floor / function with source maps interleaved
    const probeFile = path.join(tmp, 'probe.cjs');
    await writeFile(probeFile, PROBE);
    const samples = functions.map(() => ({ plain: [] as number[], sourceMaps: [] as number[] }));
    const floorSamples = new Map<string, number[]>([...floors.keys()].map((key) => [key, []]));
    const firstProbe: (ProbeResult | undefined)[] = functions.map(() => undefined);
    // Each round queues every function, its floor (once per distinct floor) and, every third round,
    // the function with source maps, in turn; LANES processes run at a time (one per core, at most two).
    const tasks: (() => Promise<void>)[] = [];
    for (let round = 0; round < runs; round += 1) {
      const floorsQueued = new Set<string>();
      // Alternate the order each round so drift (another job on the machine) spreads evenly.
      const order = functions.map((_, i) => i);
      if (round % 2) order.reverse();
      for (const i of order) {
        const fn = functions[i] as FunctionSpec;
        const output = bundles[i] as Output;
        const key = floorKeys[i] as string;
        tasks.push(async () => {
          const plain = await probe(probeFile, output.jsFile, fn.env, false);
          firstProbe[i] ??= plain;
          samples[i]?.plain.push(plain.ms);
        });
        if (!floorsQueued.has(key)) {
          floorsQueued.add(key);
          tasks.push(async () => {
            const floor = await probe(probeFile, (floors.get(key) as Output).jsFile, fn.env, false);
            floorSamples.get(key)?.push(floor.ms);
          });
        }
        if (round % SOURCE_MAP_EVERY === 0) {
          tasks.push(async () => {
            samples[i]?.sourceMaps.push((await probe(probeFile, output.jsFile, fn.env, true)).ms);
          });
        }
      }
    }
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < tasks.length) {
        const task = tasks[next] as () => Promise<void>;
        next += 1;
        await task();
      }
    };
    await Promise.all(Array.from({ length: LANES }, lane));

    const measured = Date.now();

    // 4. static checks and the figures
    const results: FunctionResult[] = [];
    for (const [i, fn] of functions.entries()) {
      const output = bundles[i] as Output;
      const key = floorKeys[i] as string;
      const floor = floors.get(key) as Output;
      const loaded = firstProbe[i] as ProbeResult;
      const clients = sdkPackages(output);
      const fileLevel = await calledPackages(output);
      const reachable = reachables[i] as Awaited<ReturnType<typeof reachablePackages>>;
      const fnPackages = byPackage(output);
      const floorPackages = byPackage(floor);
      const aboveFloor = [...new Set([...Object.keys(fnPackages), ...Object.keys(floorPackages)])]
        .map((pkg) => ({ package: pkg, bytes: (fnPackages[pkg] ?? 0) - (floorPackages[pkg] ?? 0) }))
        .filter((entry) => entry.bytes !== 0)
        .sort((a, b) => b.bytes - a.bytes);
      const load = median(samples[i]?.plain ?? []);
      const floorLoad = median(floorSamples.get(key) ?? []);
      results.push({
        name: fn.name,
        bundle: { jsBytes: output.jsBytes, mapBytes: output.mapBytes, byPackage: fnPackages },
        floor: { key, jsBytes: floor.jsBytes, mapBytes: floor.mapBytes, byPackage: floorPackages },
        bytesRatio: output.jsBytes / floor.jsBytes,
        loadMs: { median: load, samples: samples[i]?.plain ?? [] },
        floorLoadMs: { median: floorLoad, samples: floorSamples.get(key) ?? [] },
        loadRatio: load / floorLoad,
        sourceMapsLoadMs: {
          median: median(samples[i]?.sourceMaps ?? []),
          samples: samples[i]?.sourceMaps ?? [],
        },
        heapDeltaBytes: loaded.heapDeltaBytes,
        exportsHandler: loaded.exports.includes(fn.handlerExport),
        clients,
        calledClients: clients.filter((pkg) => reachable.called.has(pkg)),
        uncalledClients: clients.filter((pkg) => !reachable.called.has(pkg)),
        uncalledClientsFileLevel: clients.filter((pkg) => !fileLevel.called.has(pkg)),
        callEvidence: reachable.evidence,
        callEvidenceFileLevel: fileLevel.evidence,
        atLoad: { ...loaded.counts, calls: loaded.calls },
        filesReadAtLoad: loaded.reads.map((file) => {
          const relative = path.relative(ROOT, file).split(path.sep).join('/');
          return { file: relative, packaged: !relative.startsWith('..') && packaged(relative, fn.patterns) };
        }),
        aboveFloor,
      });
    }

    // 5. text and targets
    const table = new Table({
      head: [
        'function',
        'bundle KB (js / map)',
        'floor KB',
        'ratio',
        'load ms',
        'floor ms',
        'ratio',
        'load ms, source maps',
        'clients (! = not called)',
      ],
      style: { head: [], border: [], compact: true },
    });
    for (const r of results) {
      table.push([
        r.name,
        `${kb(r.bundle.jsBytes)} / ${kb(r.bundle.mapBytes)}`,
        kb(r.floor.jsBytes),
        `${ratio(r.bytesRatio)}${r.bytesRatio > LIMIT ? ' ✗' : ''}`,
        ms(r.loadMs.median),
        ms(r.floorLoadMs.median),
        `${ratio(r.loadRatio)}${r.loadRatio > LIMIT ? ' ✗' : ''}`,
        ms(r.sourceMapsLoadMs.median),
        r.clients.map((pkg) => `${shortClient(pkg)}${r.uncalledClients.includes(pkg) ? '!' : ''}`).join(' '),
      ]);
    }
    const lines = [table.toString()];
    const heavy = results.filter((r) => r.bytesRatio > LIMIT || r.loadRatio > LIMIT);
    if (heavy.length) {
      lines.push('', 'Bytes above the floor, by package (top 5):');
      for (const r of heavy) {
        const top = r.aboveFloor
          .filter((entry) => entry.bytes > 0)
          .slice(0, 5)
          .map((entry) => `${entry.package} ${kb(entry.bytes)} KB`)
          .join(', ');
        lines.push(`  ${r.name}: +${kb(r.bundle.jsBytes - r.floor.jsBytes)} KB = ${top}`);
      }
    }
    const atLoad = results.filter((r) => r.atLoad.network || r.atLoad.timeouts || r.atLoad.intervals);
    lines.push(
      '',
      atLoad.length
        ? `At load: ${atLoad.map((r) => `${r.name} ${r.atLoad.network} network, ${r.atLoad.timeouts} setTimeout, ${r.atLoad.intervals} setInterval`).join('; ')}`
        : 'At load: no network call and no timer in any function.',
    );
    const noHandler = results.filter((r) => !r.exportsHandler);
    if (noHandler.length) {
      lines.push(`Bundles not exporting their handler: ${noHandler.map((r) => r.name).join(', ')}`);
    }
    const reads = results.filter((r) => r.filesReadAtLoad.length);
    if (reads.length) {
      lines.push(
        `Files read at load: ${reads
          .map(
            (r) =>
              `${r.name} ${r.filesReadAtLoad.map((f) => `${f.file}${f.packaged ? '' : ' (NOT PACKAGED)'}`).join(' ')}`,
          )
          .join('; ')}`,
      );
    }
    lines.push(
      `Medians of ${runs} fresh \`node\` processes, ${LANES} at a time (${process.version}; Lambda runs ${String(buildOptions.target)}), ` +
        `time inside the process around require() (with source maps: ${Math.ceil(runs / SOURCE_MAP_EVERY)} runs); ` +
        `${((Date.now() - started) / 1000).toFixed(0)} s in all.`,
    );

    const targets: Target[] = [];
    for (const r of results) {
      targets.push({
        name: `bundle ≤ ${LIMIT}× floor (${r.name})`,
        met: r.bytesRatio <= LIMIT,
        detail: `${ratio(r.bytesRatio)} (${kb(r.bundle.jsBytes)} KB vs ${kb(r.floor.jsBytes)} KB; limit ${LIMIT}×)`,
      });
    }
    for (const r of results) {
      targets.push({
        name: `load time ≤ ${LIMIT}× floor (${r.name})`,
        met: r.loadRatio <= LIMIT,
        detail: `${ratio(r.loadRatio)} (${ms(r.loadMs.median)} ms vs ${ms(r.floorLoadMs.median)} ms; limit ${LIMIT}×)`,
      });
    }
    const uncalled = results.filter((r) => r.uncalledClients.length);
    targets.push({
      name: 'no function bundles an SDK client it does not call',
      met: uncalled.length === 0,
      detail: uncalled.length
        ? uncalled.map((r) => `${r.name}: ${r.uncalledClients.map(shortClient).join(', ')}`).join('; ')
        : `${results.length} functions, every bundled client called from code that survives tree-shaking` +
          (results.some((r) => r.uncalledClientsFileLevel.length) ? '' : ' (and per source file)'),
    });
    const network = results.filter((r) => r.atLoad.network);
    targets.push({
      name: 'no network call at load',
      met: network.length === 0,
      detail: network.length
        ? network.map((r) => `${r.name}: ${r.atLoad.calls.join(', ')}`).join('; ')
        : `0 in ${results.length} functions`,
    });
    const unpackaged = results.filter((r) => r.filesReadAtLoad.some((f) => !f.packaged));
    targets.push({
      name: 'files read at load are in the function package (package.patterns)',
      met: unpackaged.length === 0,
      detail: unpackaged.length
        ? unpackaged
            .map(
              (r) =>
                `${r.name}: ${r.filesReadAtLoad
                  .filter((f) => !f.packaged)
                  .map((f) => f.file)
                  .join(', ')}`,
            )
            .join('; ')
        : `${reads.length} functions read config at load, all packaged`,
    });

    return {
      id: 'coldStart',
      title: 'Cold start: bundle size and load time against an SDK-only floor',
      text: lines.join('\n'),
      data: {
        runs,
        sourceMapRuns: Math.ceil(runs / SOURCE_MAP_EVERY),
        lanes: LANES,
        node: process.version,
        esbuildOptions: buildOptions,
        limit: LIMIT,
        seconds: {
          total: (Date.now() - started) / 1000,
          buildFunctions: (builtFunctions - started) / 1000,
          buildFloors: (builtFloors - builtFunctions) / 1000,
          loadTimes: (measured - builtFloors) / 1000,
        },
        functions: results,
      },
      targets,
    };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
};
