import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  DOC_FILE,
  README_END,
  README_FILE,
  README_START,
  REPO_ROOT,
  STATE_MACHINES,
  escapeLabel,
  generatedFiles,
  main,
  readDefinition,
  replaceBetweenMarkers,
  toMermaid,
} from '../../scripts/diagram';
import { statesWithin } from '../template/asl';
import { isObject, type Json, type JsonObject } from '../template/stack';

const linesOf = (mermaid: string): string[] => mermaid.split('\n').map((line) => line.trim());

const lambda = (fn: string, waitForTaskToken = false): object => ({
  Type: 'Task',
  Resource: `arn:aws:states:::lambda:invoke${waitForTaskToken ? '.waitForTaskToken' : ''}`,
  Parameters: { FunctionName: { 'Fn::GetAtt': [fn, 'Arn'] }, 'Payload.$': '$' },
});

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('toMermaid', () => {
  it('draws a Choice with one labelled edge per rule and its Default', () => {
    const definition = {
      StartAt: 'Route',
      States: {
        Route: {
          Type: 'Choice',
          Choices: [
            { Variable: '$.count', NumericGreaterThan: 3, Next: 'Many' },
            {
              And: [
                { Variable: '$.kind', StringEquals: 'app' },
                { Not: { Variable: '$.skip', IsPresent: true } },
              ],
              Next: 'Many',
            },
          ],
          Default: 'Few',
        },
        Many: { Type: 'Succeed' },
        Few: { Type: 'Fail', Error: 'TooFewError', Cause: 'not enough' },
      },
    };

    const lines = linesOf(toMermaid(definition));

    expect(lines[0]).toBe('flowchart TD');
    expect(lines).toContain('Route{"Route"}');
    expect(lines).toContain('start --> Route');
    expect(lines).toContain('Route -->|"$.count #62; 3"| Many');
    expect(lines).toContain(`Route -->|"$.kind == 'app' and not $.skip is present"| Many`);
    expect(lines).toContain('Route -->|"Default"| Few');
    expect(lines).toContain('Many(["Many"])');
    expect(lines).toContain('Few(["Few<br/>TooFewError"])');
    expect(lines).toContain('class Many succeed');
    expect(lines).toContain('class Few fail');
  });

  it('draws a Map as a subgraph around its item processor, with its own start and end', () => {
    const definition = {
      StartAt: 'Steps',
      States: {
        Steps: {
          Type: 'Map',
          MaxConcurrency: 1,
          ItemProcessor: {
            ProcessorConfig: { Mode: 'INLINE' },
            StartAt: 'Shift',
            States: {
              Shift: { ...lambda('traffic'), Next: 'Soak' },
              Soak: { Type: 'Wait', SecondsPath: '$.soakSeconds', End: true },
            },
          },
          Next: 'Done',
        },
        Done: { Type: 'Succeed' },
      },
    };

    const mermaid = toMermaid(definition);

    expect(mermaid).toContain(
      [
        '  subgraph Steps ["Steps · Map, 1 at a time"]',
        '    direction TB',
        '    Steps_start(("start"))',
        '    Shift["Shift<br/>λ traffic"]',
        '    Soak[/"Soak<br/>wait $.soakSeconds"/]',
        '    Steps_end(("end"))',
        '    Steps_start --> Shift',
        '    Shift --> Soak',
        '    Soak --> Steps_end',
        '  end',
      ].join('\n'),
    );
    expect(linesOf(mermaid)).toContain('Steps --> Done');
  });

  it('reads a Map written with the older Iterator field', () => {
    const definition = {
      StartAt: 'Each',
      States: {
        Each: {
          Type: 'Map',
          Iterator: { StartAt: 'Item', States: { Item: { Type: 'Pass', End: true } } },
          End: true,
        },
      },
    };

    const lines = linesOf(toMermaid(definition));

    expect(lines).toContain('subgraph Each ["Each · Map"]');
    expect(lines).toContain('Item("Item")');
    expect(lines).toContain('Item --> Each_end');
    expect(lines).toContain('Each --> end_');
  });

  it('draws a Parallel with a subgraph per branch', () => {
    const definition = {
      StartAt: 'Both',
      States: {
        Both: {
          Type: 'Parallel',
          Branches: [
            { StartAt: 'Left', States: { Left: { Type: 'Pass', End: true } } },
            { StartAt: 'Right', States: { Right: { Type: 'Wait', Seconds: 5, End: true } } },
          ],
          Retry: [{ ErrorEquals: ['States.ALL'] }],
          End: true,
        },
      },
    };

    const mermaid = toMermaid(definition);

    expect(mermaid).toContain(
      [
        '  subgraph Both ["Both ↻ · Parallel"]',
        '    direction TB',
        '    subgraph Both_branch1 ["branch 1"]',
        '      direction TB',
        '      Both_branch1_start(("start"))',
        '      Left("Left")',
        '      Both_branch1_end(("end"))',
        '      Both_branch1_start --> Left',
        '      Left --> Both_branch1_end',
        '    end',
        '    subgraph Both_branch2 ["branch 2"]',
      ].join('\n'),
    );
    expect(linesOf(mermaid)).toContain('Right[/"Right<br/>wait 5 s"/]');
    expect(linesOf(mermaid)).toContain('Both --> end_');
  });

  it('draws Catch as dashed edges labelled with the errors, shortening a long list', () => {
    const definition = {
      StartAt: 'Bake',
      States: {
        Bake: {
          ...lambda('bake', true),
          Retry: [{ ErrorEquals: ['Lambda.ServiceException'] }],
          Catch: [
            { ErrorEquals: ['BakeFailedError'], Next: 'Failed' },
            {
              ErrorEquals: [
                'Lambda.ServiceException',
                'Lambda.AWSLambdaException',
                'Lambda.SdkClientException',
                'States.ALL',
              ],
              Next: 'Failed',
            },
          ],
          Next: 'Record',
        },
        Record: {
          Type: 'Task',
          Resource: 'arn:aws:states:::dynamodb:updateItem',
          Parameters: { TableName: { Ref: 'AuditTable' } },
          Next: 'Notify',
        },
        Notify: {
          Type: 'Task',
          Resource: 'arn:aws:states:::sns:publish',
          Parameters: { TopicArn: { Ref: 'OutcomeTopic' } },
          End: true,
        },
        Failed: { Type: 'Fail' },
      },
    };

    const lines = linesOf(toMermaid(definition));

    expect(lines).toContain('Bake["Bake ↻<br/>λ bake ⏳ waitForTaskToken"]');
    expect(lines).toContain('Record["Record<br/>dynamodb:updateItem"]');
    expect(lines).toContain('Notify["Notify<br/>sns:publish"]');
    expect(lines).toContain('Bake --> Record');
    expect(lines).toContain('Bake -.->|"BakeFailedError"| Failed');
    expect(lines).toContain('Bake -.->|"Lambda.ServiceException +3 more"| Failed');
    expect(lines).toContain('Notify --> end_');
  });

  it('turns state names into safe, unique ids and escapes their labels', () => {
    const definition = {
      StartAt: 'Check "it" [now]',
      States: {
        'Check "it" [now]': { Type: 'Pass', Next: 'end' },
        end: { Type: 'Pass', Next: 'a b' },
        'a b': { Type: 'Pass', Next: 'a_b' },
        a_b: { Type: 'Pass', Next: '1st <step> #2' },
        '1st <step> #2': { Type: 'Succeed' },
      },
    };

    const lines = linesOf(toMermaid(definition));

    expect(lines).toContain('Check__it___now_("Check #34;it#34; #91;now#93;")');
    expect(lines).toContain('end_("end")');
    expect(lines).toContain('a_b("a b")');
    expect(lines).toContain('a_b_2("a_b")');
    expect(lines).toContain('s_1st__step___2(["1st #60;step#62; #35;2"])');
    expect(lines).toContain('start --> Check__it___now_');
    expect(lines).toContain('Check__it___now_ --> end_');
    expect(lines).toContain('end_ --> a_b');
    expect(lines).toContain('a_b --> a_b_2');
    expect(lines).toContain('a_b_2 --> s_1st__step___2');
  });

  it('gives the same text for the same definition and throws on a transition to nowhere', () => {
    const definition = readDefinition(STATE_MACHINES[0].file);

    expect(toMermaid(definition)).toBe(toMermaid(structuredClone(definition)));
    expect(() => toMermaid({ StartAt: 'A', States: { A: { Type: 'Pass', Next: 'B' } } })).toThrow(
      'state A: no state B to go to',
    );
  });

  it('escapes every character that would end or break a quoted label', () => {
    expect(escapeLabel('a "b" [c] {d} (e) <f> |g| `h` #i')).toBe(
      'a #34;b#34; #91;c#93; #123;d#125; #40;e#41; #60;f#62; #124;g#124; #96;h#96; #35;i',
    );
  });
});

describe('the generated state-machine docs', () => {
  const expected = new Map(generatedFiles());

  it.each([DOC_FILE, README_FILE])(
    '%s is up to date (run `npm run diagram` after changing the ASL)',
    (file) => {
      const committed = readFileSync(path.join(REPO_ROOT, file), 'utf8');

      expect(committed).toBe(expected.get(file));
    },
  );

  it('puts the ami-pipeline diagram between the README markers and nothing else', () => {
    const readme = readFileSync(path.join(REPO_ROOT, README_FILE), 'utf8');
    const between = readme.slice(
      readme.indexOf(README_START) + README_START.length,
      readme.indexOf(README_END),
    );

    expect(between).toBe(`\n\n\`\`\`mermaid\n${toMermaid(readDefinition(STATE_MACHINES[0].file))}\`\`\`\n\n`);
    expect(() => replaceBetweenMarkers('no markers here', 'x')).toThrow(README_START);
  });

  describe.each(STATE_MACHINES.map(({ name, file }) => [name, file]))('%s', (_name, file) => {
    const definition = readDefinition(file) as JsonObject;
    const lines = linesOf(toMermaid(definition));
    const states = statesWithin(definition);

    it('draws every state of the ASL, nested ones included', () => {
      expect(states.length).toBeGreaterThan(5);
      for (const { name, state } of states) {
        const declaration = ['Map', 'Parallel'].includes(String(state.Type))
          ? new RegExp(`^subgraph ${escapeRegExp(name)} \\["${escapeRegExp(name)}[ "]`)
          : new RegExp(`^${escapeRegExp(name)}[[({/]+"${escapeRegExp(name)}[ "<]`);
        expect(lines.filter((line) => declaration.test(line))).toHaveLength(1);
      }
    });

    it('draws every Next, Choice and Catch transition', () => {
      for (const { name, state } of states) {
        if (typeof state.Next === 'string') expect(lines).toContain(`${name} --> ${state.Next}`);
        if (typeof state.Default === 'string')
          expect(lines).toContain(`${name} -->|"Default"| ${state.Default}`);
        const rules = (arrow: string, list: Json | undefined): [string, Json | undefined][] =>
          (Array.isArray(list) ? list : []).map((rule) => [arrow, isObject(rule) ? rule.Next : undefined]);
        for (const [arrow, target] of [...rules('-->', state.Choices), ...rules('-.->', state.Catch)]) {
          const edge = `${name} ${arrow}|"`;
          expect(lines.some((line) => line.startsWith(edge) && line.endsWith(`"| ${String(target)}`))).toBe(
            true,
          );
        }
      }
    });
  });
});

describe('npm run diagram', () => {
  let root: string;

  beforeEach(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'ami-pipeline-diagram-'));
    cpSync(path.join(REPO_ROOT, 'statemachines'), path.join(root, 'statemachines'), { recursive: true });
    cpSync(path.join(REPO_ROOT, 'docs'), path.join(root, 'docs'), { recursive: true });
    cpSync(path.join(REPO_ROOT, README_FILE), path.join(root, README_FILE));
    jest.spyOn(console, 'log').mockImplementation(() => undefined);
    jest.spyOn(console, 'error').mockImplementation(() => undefined);
  });

  afterEach(() => {
    jest.restoreAllMocks();
    rmSync(root, { recursive: true, force: true });
  });

  it('with --check, exits 1 and names the stale files once the ASL changes, and 0 after a regenerate', () => {
    const asl = path.join(root, STATE_MACHINES[1].file);
    writeFileSync(asl, readFileSync(asl, 'utf8').replaceAll('Decommissioned', 'Retired'));

    const stale = main(['--check'], root);
    const staleMessages = jest.mocked(console.error).mock.calls.map(([message]) => String(message));
    const written = main([], root);
    const fresh = main(['--check'], root);

    expect(stale).toBe(1);
    expect(staleMessages).toEqual([
      'diagram: docs/state-machine.md is stale; run `npm run diagram` and commit the result',
    ]);
    expect(written).toBe(0);
    expect(fresh).toBe(0);
    expect(readFileSync(path.join(root, DOC_FILE), 'utf8')).toContain('Retired(["Retired"])');
  });

  it('with --check, reports a README whose diagram was edited by hand', () => {
    const readme = path.join(root, README_FILE);
    writeFileSync(readme, readFileSync(readme, 'utf8').replace('start --> Initialize', 'start --> Bake'));

    expect(main(['--check'], root)).toBe(1);
    expect(jest.mocked(console.error)).toHaveBeenCalledWith(
      'diagram: README.md is stale; run `npm run diagram` and commit the result',
    );
  });
});
