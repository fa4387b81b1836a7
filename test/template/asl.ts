import { asList, at, isObject, type JsonObject } from './stack';

/**
 * Every state of a definition, nested ones included (Parallel branches, Map item processors), as
 * `[name, state]`.
 */
export const allStates = (definition: JsonObject): [string, JsonObject][] => {
  const states = at(definition, 'States');
  if (!isObject(states)) return [];
  return Object.entries(states).flatMap(([name, state]): [string, JsonObject][] => {
    if (!isObject(state)) return [];
    const nested = [
      ...asList(state.Branches),
      at(state, 'ItemProcessor') ?? null,
      at(state, 'Iterator') ?? null,
    ].filter(isObject);
    return [[name, state], ...nested.flatMap(allStates)];
  });
};
