/**
 * `npm run diagram`: Mermaid flowcharts of the state machines, generated from the ASL files so the
 * pictures cannot drift from what is deployed. Writes docs/state-machine.md (every state machine)
 * and the README's section between the state-machine markers (the pipeline). With `--check` it
 * writes nothing and exits 1 when either file is stale; test/docs/diagram.test.ts checks the same.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';

export interface MermaidOptions {
  /** Flowchart direction; the docs use the default, top-down. */
  direction?: 'TD' | 'LR';
  /** Longest edge label (a Choice condition, a Catch's error list) before it is shortened. */
  maxLabelLength?: number;
}

type Obj = Record<string, unknown>;

const isObj = (value: unknown): value is Obj =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const asObj = (value: unknown): Obj => (isObj(value) ? value : {});
const asList = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);
const asString = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/** Words Mermaid's flowchart grammar reads as keywords (`end` closes a subgraph), so never node ids. */
const RESERVED_IDS = new Set([
  'end',
  'graph',
  'flowchart',
  'subgraph',
  'direction',
  'style',
  'linkstyle',
  'class',
  'classdef',
  'click',
  'call',
  'href',
  'default',
  'interpolate',
]);

/** Hands out Mermaid-safe node ids, unique across the whole chart (nested machines included). */
class IdAllocator {
  private readonly used = new Set<string>();

  take(name: string): string {
    let base = name.replace(/[^A-Za-z0-9_]/g, '_') || 'state';
    if (/^[0-9]/.test(base)) base = `s_${base}`;
    if (RESERVED_IDS.has(base.toLowerCase())) base = `${base}_`;
    let id = base;
    for (let n = 2; this.used.has(id); n += 1) id = `${base}_${n}`;
    this.used.add(id);
    return id;
  }
}

/**
 * Label text as Mermaid entity codes where a character would end the quoted label or be read as
 * HTML or markup; `#` first, since the codes themselves start with it.
 */
export const escapeLabel = (text: string): string =>
  text
    .replace(/\s+/g, ' ')
    .replace(/[#"<>`[\]{}()|]/g, (char) => `#${char.charCodeAt(0)};`)
    .trim();

const shorten = (text: string, max: number): string =>
  text.length <= max ? text : `${text.slice(0, Math.max(1, max - 1))}…`;

/** `A, B +3 more`: as many whole names as fit, never a name cut in half. */
const errorList = (names: string[], max: number): string => {
  let shown = names.length;
  const label = (count: number): string =>
    names.slice(0, count).join(', ') + (count < names.length ? ` +${names.length - count} more` : '');
  while (shown > 1 && label(shown).length > max) shown -= 1;
  return label(shown);
};

const COMPARISON =
  /^(String|Numeric|Boolean|Timestamp)(Equals|LessThan|GreaterThan|LessThanEquals|GreaterThanEquals)(Path)?$/;
const OPERATORS: Record<string, string> = {
  Equals: '==',
  LessThan: '<',
  GreaterThan: '>',
  LessThanEquals: '<=',
  GreaterThanEquals: '>=',
};
const TESTS = /^Is(Null|Present|Numeric|String|Boolean|Timestamp)$/;

const literal = (value: unknown): string =>
  typeof value === 'string' ? `'${value}'` : JSON.stringify(value);

/** A Choice rule as a short expression: `$.a == true`, `$.b > 3 or not ($.c == 'x' and $.d is present)`. */
const condition = (rule: Obj): string => {
  const nested = (inner: unknown): string => {
    const innerRule = asObj(inner);
    const text = condition(innerRule);
    return 'And' in innerRule || 'Or' in innerRule ? `(${text})` : text;
  };
  if (Array.isArray(rule.And)) return rule.And.map(nested).join(' and ');
  if (Array.isArray(rule.Or)) return rule.Or.map(nested).join(' or ');
  if (rule.Not !== undefined) return `not ${nested(rule.Not)}`;
  const jsonata = asString(rule.Condition);
  if (jsonata !== undefined) return jsonata.replace(/^\{%\s*|\s*%\}$/g, '');
  const variable = asString(rule.Variable) ?? '?';
  for (const [key, value] of Object.entries(rule)) {
    const comparison = COMPARISON.exec(key);
    if (comparison) {
      const operand = comparison[3] === undefined ? literal(value) : String(value);
      return `${variable} ${OPERATORS[comparison[2] ?? ''] ?? key} ${operand}`;
    }
    if (key === 'StringMatches') return `${variable} matches ${literal(value)}`;
    const test = TESTS.exec(key);
    if (test) return `${variable} is ${value === false ? 'not ' : ''}${(test[1] ?? '').toLowerCase()}`;
  }
  return variable;
};

/** The serverless.yml function key or name behind a Lambda `FunctionName` or Resource, if static. */
const functionName = (value: unknown): string | undefined => {
  if (typeof value === 'string') {
    if (value.includes('.$') || value.startsWith('$')) return undefined;
    return /:function:([^:]+)/.exec(value)?.[1] ?? value;
  }
  const object = asObj(value);
  const getAtt = object['Fn::GetAtt'];
  if (Array.isArray(getAtt)) return asString(getAtt[0]);
  if (typeof getAtt === 'string') return getAtt.split('.')[0];
  return asString(object.Ref);
};

/** `λ bake ⏳ waitForTaskToken`, `dynamodb:updateItem`, `sns:publish`, `activity:name`. */
const taskResource = (state: Obj): string => {
  const resource = state.Resource;
  if (typeof resource !== 'string') return `λ ${functionName(resource) ?? '?'}`;
  const integration = /^arn:[^:]+:states:::(.+?)(\.waitForTaskToken|\.sync(?::2)?)?$/.exec(resource);
  if (integration) {
    const [, api = '', pattern] = integration;
    const fn = api === 'lambda:invoke' ? functionName(asObj(state.Parameters).FunctionName) : undefined;
    const shown = fn === undefined ? api.replace(/^aws-sdk:/, '') : `λ ${fn}`;
    return pattern === undefined ? shown : `${shown} ⏳ ${pattern.slice(1)}`;
  }
  const activity = /:activity:(.+)$/.exec(resource)?.[1];
  if (activity !== undefined) return `activity:${activity}`;
  return `λ ${functionName(resource) ?? resource}`;
};

const waitDetail = (state: Obj): string => {
  if (state.Seconds !== undefined) return `wait ${String(state.Seconds)} s`;
  if (state.SecondsPath !== undefined) return `wait ${String(state.SecondsPath)}`;
  if (state.Timestamp !== undefined) return `until ${String(state.Timestamp)}`;
  if (state.TimestampPath !== undefined) return `until ${String(state.TimestampPath)}`;
  return 'wait';
};

const label = (...lines: string[]): string => `"${lines.map(escapeLabel).join('<br/>')}"`;

class Renderer {
  private readonly ids = new IdAllocator();
  private readonly lines: string[] = [];
  private readonly classes: Record<'marker' | 'succeed' | 'fail', string[]> = {
    marker: [],
    succeed: [],
    fail: [],
  };

  constructor(private readonly maxLabel: number) {}

  render(definition: Obj, direction: string): string {
    this.lines.push(`flowchart ${direction}`);
    this.machine(definition, 'start', 'end', 1);
    this.lines.push('  classDef marker fill:#333,stroke:#333,color:#fff');
    this.lines.push('  classDef succeed fill:#dfd,stroke:#393');
    this.lines.push('  classDef fail fill:#fdd,stroke:#c33');
    for (const [name, ids] of Object.entries(this.classes)) {
      if (ids.length > 0) this.lines.push(`  class ${ids.join(',')} ${name}`);
    }
    return `${this.lines.join('\n')}\n`;
  }

  /** One state machine (the definition, a Parallel branch, a Map's processor): nodes, then edges. */
  private machine(definition: Obj, startName: string, endName: string, depth: number): void {
    const indent = '  '.repeat(depth);
    const states = asObj(definition.States);
    const names = Object.keys(states);
    const ids = new Map(names.map((name) => [name, this.ids.take(name)]));
    const target = (from: string, name: unknown): string => {
      const id = typeof name === 'string' ? ids.get(name) : undefined;
      if (id === undefined) throw new Error(`state ${from}: no state ${String(name)} to go to`);
      return id;
    };
    const start = this.ids.take(startName);
    const endsHere = names.some((name) => asObj(states[name]).End === true);
    const end = endsHere ? this.ids.take(endName) : undefined;

    this.lines.push(`${indent}${start}(("start"))`);
    this.classes.marker.push(start);
    for (const name of names) this.state(name, asObj(states[name]), ids.get(name) ?? '', depth);
    if (end !== undefined) {
      this.lines.push(`${indent}${end}(("end"))`);
      this.classes.marker.push(end);
    }

    this.lines.push(`${indent}${start} --> ${target('StartAt', definition.StartAt)}`);
    for (const name of names) {
      const state = asObj(states[name]);
      const id = ids.get(name) ?? '';
      for (const choice of asList(state.Choices).map(asObj)) {
        const text = escapeLabel(shorten(condition(choice), this.maxLabel));
        this.lines.push(`${indent}${id} -->|"${text}"| ${target(name, choice.Next)}`);
      }
      if (state.Default !== undefined) {
        this.lines.push(`${indent}${id} -->|"Default"| ${target(name, state.Default)}`);
      }
      if (state.Next !== undefined) this.lines.push(`${indent}${id} --> ${target(name, state.Next)}`);
      for (const catcher of asList(state.Catch).map(asObj)) {
        const errors = asList(catcher.ErrorEquals).map(String);
        const text = escapeLabel(errorList(errors, this.maxLabel));
        this.lines.push(`${indent}${id} -.->|"${text}"| ${target(name, catcher.Next)}`);
      }
      if (state.End === true) this.lines.push(`${indent}${id} --> ${end ?? ''}`);
    }
  }

  private state(name: string, state: Obj, id: string, depth: number): void {
    const indent = '  '.repeat(depth);
    const title = asList(state.Retry).length > 0 ? `${name} ↻` : name;
    switch (state.Type) {
      case 'Task':
        this.lines.push(`${indent}${id}[${label(title, taskResource(state))}]`);
        return;
      case 'Pass':
        this.lines.push(`${indent}${id}(${label(title)})`);
        return;
      case 'Wait':
        this.lines.push(`${indent}${id}[/${label(title, waitDetail(state))}/]`);
        return;
      case 'Choice':
        this.lines.push(`${indent}${id}{${label(title)}}`);
        return;
      case 'Succeed':
        this.lines.push(`${indent}${id}([${label(title)}])`);
        this.classes.succeed.push(id);
        return;
      case 'Fail': {
        const error = asString(state.Error);
        this.lines.push(`${indent}${id}([${error === undefined ? label(title) : label(title, error)}])`);
        this.classes.fail.push(id);
        return;
      }
      case 'Map': {
        const concurrency = typeof state.MaxConcurrency === 'number' && state.MaxConcurrency > 0;
        const kind = concurrency ? `Map, ${String(state.MaxConcurrency)} at a time` : 'Map';
        this.subgraph(id, `${title} · ${kind}`, depth, () =>
          this.machine(asObj(state.ItemProcessor ?? state.Iterator), `${id}_start`, `${id}_end`, depth + 1),
        );
        return;
      }
      case 'Parallel':
        this.subgraph(id, `${title} · Parallel`, depth, () =>
          asList(state.Branches).forEach((branch, index) => {
            const branchId = this.ids.take(`${id}_branch${index + 1}`);
            this.subgraph(branchId, `branch ${index + 1}`, depth + 1, () =>
              this.machine(asObj(branch), `${branchId}_start`, `${branchId}_end`, depth + 2),
            );
          }),
        );
        return;
      default:
        throw new Error(`state ${name}: unknown Type ${String(state.Type)}`);
    }
  }

  private subgraph(id: string, title: string, depth: number, body: () => void): void {
    const indent = '  '.repeat(depth);
    this.lines.push(`${indent}subgraph ${id} [${label(title)}]`);
    this.lines.push(`${indent}  direction TB`);
    body();
    this.lines.push(`${indent}end`);
  }
}

/**
 * A Mermaid `flowchart` of an Amazon States Language definition (as parsed from the YAML; the
 * CloudFormation intrinsics in Parameters are ignored). Solid edges are `Next`, Choice rules and
 * `Default`; dashed edges are `Catch`, labelled with the errors; `↻` marks a state with `Retry`.
 * Map and Parallel states become subgraphs. The output follows the definition's order, so the same
 * definition always gives the same text. Throws on a transition to a state that does not exist.
 */
export const toMermaid = (definition: object, options: MermaidOptions = {}): string =>
  new Renderer(options.maxLabelLength ?? 48).render(asObj(definition), options.direction ?? 'TD');

// ---- the generated files --------------------------------------------------------------------------

export const REPO_ROOT = path.resolve(__dirname, '..');

export const STATE_MACHINES = [
  { name: 'ami-pipeline', file: 'statemachines/ami-pipeline.asl.yml' },
  { name: 'decommission', file: 'statemachines/decommission.asl.yml' },
] as const;

export const DOC_FILE = 'docs/state-machine.md';
export const README_FILE = 'README.md';
export const README_START = '<!-- state-machine:start -->';
export const README_END = '<!-- state-machine:end -->';

/** A state machine's definition: the ASL files hold it at the top level. */
export const readDefinition = (file: string, root: string = REPO_ROOT): object =>
  asObj(parse(readFileSync(path.join(root, file), 'utf8')));

const fence = (mermaid: string): string => `\`\`\`mermaid\n${mermaid}\`\`\`\n`;

/** docs/state-machine.md, already as Prettier leaves it. */
export const renderDoc = (diagrams: { name: string; file: string; mermaid: string }[]): string =>
  [
    '# State machines\n',
    'Generated from the ASL files by `npm run diagram`: do not edit by hand (a test fails when this file',
    'is stale). Solid arrows are `Next`, Choice rules and their `Default`; dashed arrows are `Catch`,',
    'labelled with the errors caught. ↻ marks a state with `Retry`; λ names the Lambda function (its',
    'key in serverless.yml); ⏳ marks a task that waits for a callback (`.waitForTaskToken`). Map and',
    'Parallel states are boxes around the states they run.\n',
    ...diagrams.flatMap(({ name, file, mermaid }) => [`## ${name}\n`, `From \`${file}\`.\n`, fence(mermaid)]),
  ]
    .join('\n')
    .replace(/\n+$/, '\n');

/** `text` with what lies between the README markers replaced by `block`; throws when they are missing. */
export const replaceBetweenMarkers = (text: string, block: string): string => {
  const start = text.indexOf(README_START);
  const end = text.indexOf(README_END);
  if (start < 0 || end < start || text.indexOf(README_START, start + 1) >= 0) {
    throw new Error(`${README_FILE} needs one ${README_START} followed by one ${README_END}`);
  }
  return `${text.slice(0, start + README_START.length)}\n\n${block}\n${text.slice(end)}`;
};

/** What docs/state-machine.md and README.md should contain, as `[file, content]`. */
export const generatedFiles = (root: string = REPO_ROOT): [string, string][] => {
  const diagrams = STATE_MACHINES.map(({ name, file }) => ({
    name,
    file,
    mermaid: toMermaid(readDefinition(file, root)),
  }));
  const pipeline = diagrams.find(({ name }) => name === 'ami-pipeline');
  if (pipeline === undefined) throw new Error('no ami-pipeline state machine');
  const readme = readFileSync(path.join(root, README_FILE), 'utf8');
  return [
    [DOC_FILE, renderDoc(diagrams)],
    [README_FILE, replaceBetweenMarkers(readme, fence(pipeline.mermaid))],
  ];
};

const readIfPresent = (file: string): string | undefined => {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
};

/** Writes the generated files, or with `--check` reports the stale ones; the exit code. */
export const main = (args: string[], root: string = REPO_ROOT): number => {
  const unknown = args.filter((arg) => arg !== '--check');
  if (unknown.length > 0) {
    console.error(`diagram: unknown argument ${unknown.join(' ')} (usage: npm run diagram [-- --check])`);
    return 2;
  }
  const files = generatedFiles(root);
  if (args.includes('--check')) {
    const stale = files.filter(([file, content]) => readIfPresent(path.join(root, file)) !== content);
    for (const [file] of stale) {
      console.error(`diagram: ${file} is stale; run \`npm run diagram\` and commit the result`);
    }
    if (stale.length === 0) console.log(`diagram: ${files.map(([file]) => file).join(' and ')} up to date`);
    return stale.length === 0 ? 0 : 1;
  }
  for (const [file, content] of files) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), content);
    console.log(`diagram: wrote ${file}`);
  }
  return 0;
};

if (require.main === module) process.exitCode = main(process.argv.slice(2));
