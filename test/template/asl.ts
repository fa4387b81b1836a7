import { asList, at, isObject, type Json, type JsonObject } from './stack';

/** A state of a definition and the Map and Parallel states around it, outermost first. */
export interface NestedState {
  name: string;
  state: JsonObject;
  enclosing: [string, JsonObject][];
}

/** The state machines nested in a state: a Map's item processor, a Parallel's branches. */
const nestedMachines = (state: JsonObject): JsonObject[] =>
  [...asList(state.Branches), at(state, 'ItemProcessor') ?? null, at(state, 'Iterator') ?? null].filter(
    isObject,
  );

/** Every state of a definition, nested ones included, with the states that enclose it. */
export const statesWithin = (
  definition: JsonObject,
  enclosing: [string, JsonObject][] = [],
): NestedState[] => {
  const states = at(definition, 'States');
  if (!isObject(states)) return [];
  return Object.entries(states).flatMap(([name, state]): NestedState[] => {
    if (!isObject(state)) return [];
    const inner = nestedMachines(state).flatMap((machine) =>
      statesWithin(machine, [...enclosing, [name, state]]),
    );
    return [{ name, state, enclosing }, ...inner];
  });
};

/**
 * Every state of a definition, nested ones included (Parallel branches, Map item processors), as
 * `[name, state]`.
 */
export const allStates = (definition: JsonObject): [string, JsonObject][] =>
  statesWithin(definition).map(({ name, state }) => [name, state]);

/** The nested state machines of a definition (item processors, branches), at any depth. */
export const nestedDefinitions = (definition: JsonObject): JsonObject[] =>
  allStates(definition).flatMap(([, state]) => nestedMachines(state));

/** A packaged definition: the parsed ASL and the `Fn::Sub` variables its `${…}` placeholders stand for. */
export interface PackagedDefinition {
  definition: JsonObject;
  variables: JsonObject;
}

/** Reads `DefinitionString` (an `Fn::Sub` of the JSON text, with or without a variable map). */
export const parseDefinition = (stateMachineProperties: JsonObject): PackagedDefinition => {
  const sub = at(stateMachineProperties, 'DefinitionString', 'Fn::Sub');
  const [text, variables] = Array.isArray(sub) ? [sub[0], sub[1]] : [sub, undefined];
  if (typeof text !== 'string') throw new Error('DefinitionString is not an Fn::Sub of a string');
  const definition: unknown = JSON.parse(text);
  if (!isObject(definition as Json)) throw new Error('the definition is not a JSON object');
  return { definition: definition as JsonObject, variables: isObject(variables) ? variables : {} };
};

/**
 * The logical id of the Lambda function a Task's `FunctionName` names: directly (`Fn::GetAtt`) or
 * through an `Fn::Sub` placeholder (`${hash}` → `{ "Fn::GetAtt": [id, "Arn"] }`), as
 * serverless-step-functions writes it. `undefined` for anything else.
 */
export const functionOf = (state: JsonObject, variables: JsonObject): string | undefined => {
  const name = at(state, 'Parameters', 'FunctionName');
  const placeholder = typeof name === 'string' ? /^\$\{([^}]+)\}$/.exec(name)?.[1] : undefined;
  const target = placeholder === undefined ? name : variables[placeholder];
  const getAtt = at(target, 'Fn::GetAtt');
  return Array.isArray(getAtt) && typeof getAtt[0] === 'string' ? getAtt[0] : undefined;
};

/** The states a state can hand over to: `Next`, `Default`, each Choice rule's `Next`, each Catch's `Next`. */
export const transitionsOf = (state: JsonObject): string[] =>
  [
    state.Next,
    state.Default,
    ...asList(state.Choices).map((choice) => at(choice, 'Next')),
    ...asList(state.Catch).map((catcher) => at(catcher, 'Next')),
  ].filter((next): next is string => typeof next === 'string');

const topLevelStates = (definition: JsonObject): Record<string, JsonObject> => {
  const states = at(definition, 'States');
  if (!isObject(states)) return {};
  return Object.fromEntries(
    Object.entries(states).filter((entry): entry is [string, JsonObject] => isObject(entry[1])),
  );
};

/** Every top-level state reachable from `start` (itself included) through {@link transitionsOf}. */
export const reachableFrom = (definition: JsonObject, start: string): Set<string> => {
  const states = topLevelStates(definition);
  const seen = new Set<string>();
  const pending = [start];
  for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
    const state = states[name];
    if (seen.has(name) || state === undefined) continue;
    seen.add(name);
    pending.push(...transitionsOf(state));
  }
  return seen;
};

/**
 * A loop among the top-level transitions, as the path that closes it (`['A', 'B', 'A']`), or
 * `undefined` when there is none. Retriers are not transitions: they re-run a state, they do not
 * route the execution back through others.
 */
export const findCycle = (definition: JsonObject): string[] | undefined => {
  const states = topLevelStates(definition);
  const done = new Set<string>();
  const visit = (name: string, path: string[]): string[] | undefined => {
    if (path.includes(name)) return [...path.slice(path.indexOf(name)), name];
    const state = states[name];
    if (done.has(name) || state === undefined) return undefined;
    for (const next of transitionsOf(state)) {
      const cycle = visit(next, [...path, name]);
      if (cycle !== undefined) return cycle;
    }
    done.add(name);
    return undefined;
  };
  for (const name of Object.keys(states)) {
    const cycle = visit(name, []);
    if (cycle !== undefined) return cycle;
  }
  return undefined;
};

/**
 * The states a successful execution enters, in order: from `StartAt` along `Next` (a Choice's
 * `Default`) to the end. A Map's item processor is entered once per item, `mapItems` times, a
 * Parallel's branches once each; nested states are named `Outer/Inner`. This is what Step Functions
 * bills as state transitions. Throws on a loop or a missing state.
 */
export const successPath = (definition: JsonObject, mapItems: number, prefix = ''): string[] => {
  const states = topLevelStates(definition);
  const seen = new Set<string>();
  const path: string[] = [];
  let next: Json | undefined = definition.StartAt;
  while (typeof next === 'string') {
    const name: string = next;
    const state = states[name];
    if (state === undefined) throw new Error(`the success path reaches a missing state ${prefix}${name}`);
    if (seen.has(name)) throw new Error(`the success path loops through ${prefix}${name}`);
    seen.add(name);
    path.push(`${prefix}${name}`);
    const inner = `${prefix}${name}/`;
    if (state.Type === 'Map') {
      const [processor] = nestedMachines(state);
      for (let item = 0; processor !== undefined && item < mapItems; item += 1) {
        path.push(...successPath(processor, mapItems, inner));
      }
    } else {
      nestedMachines(state).forEach((branch) => path.push(...successPath(branch, mapItems, inner)));
    }
    next = state.Type === 'Choice' ? state.Default : state.End === true ? undefined : state.Next;
  }
  return path;
};
