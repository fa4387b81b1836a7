import { asList, at, isObject, renderArn, type CfnResource, type Json, type JsonObject } from './stack';

/** `*` or a whole service (`s3:*`); partial wildcards such as `s3:Get*` are not matched here. */
const WILDCARD_ACTION = /^(\*|[a-z0-9-]+:\*)$/i;

export const IAM_POLICY_TYPES = ['AWS::IAM::Role', 'AWS::IAM::Policy', 'AWS::IAM::ManagedPolicy'];

/** The permission statements of a role (inline policies) or of a policy; not the trust policy. */
export const policyStatements = (resource: CfnResource): JsonObject[] => {
  const documents =
    resource.Type === 'AWS::IAM::Role'
      ? asList(at(resource.Properties, 'Policies')).map((policy) => at(policy, 'PolicyDocument'))
      : [at(resource.Properties, 'PolicyDocument')];
  return documents.flatMap((document) => asList(at(document, 'Statement'))).filter(isObject);
};

const strings = (value: Json | undefined): string[] => asList(value).map(String);

/**
 * Why each Allow statement breaks least privilege; an empty list means none does. `resourceStarActions`
 * are the only actions that may be allowed on `Resource: "*"`.
 */
export const iamViolations = (
  owner: string,
  statements: JsonObject[],
  resourceStarActions: readonly string[],
): string[] => {
  const allowedWithStar = new Set(resourceStarActions.map((action) => action.toLowerCase()));
  return statements.flatMap((statement, index) => {
    if (statement.Effect !== 'Allow') return [];
    const where = `${owner} statement ${index}`;
    const actions = strings(statement.Action);
    const violations: string[] = [];
    if (statement.NotAction !== undefined) violations.push(`${where} allows by NotAction`);
    if (statement.NotResource !== undefined) violations.push(`${where} allows by NotResource`);
    for (const action of actions.filter((a) => WILDCARD_ACTION.test(a))) {
      violations.push(`${where} allows action "${action}"`);
    }
    if (strings(statement.Resource).includes('*')) {
      const unjustified = actions.filter((action) => !allowedWithStar.has(action.toLowerCase()));
      if (unjustified.length > 0) {
        violations.push(`${where} allows ${unjustified.join(', ')} on Resource "*"`);
      }
    }
    return violations;
  });
};

/** Every resource on which the statements allow `action` (matched case-insensitively, as IAM does). */
export const resourcesGranted = (statements: JsonObject[], action: string): Json[] =>
  statements
    .filter(
      (statement) =>
        statement.Effect === 'Allow' &&
        strings(statement.Action).some((a) => a.toLowerCase() === action.toLowerCase()),
    )
    .flatMap((statement) => asList(statement.Resource));

const escapeRegExp = (text: string): string => text.replace(/[.+^${}()|[\]\\]/g, '\\$&');

/** Whether an IAM Action pattern (`*` and `?` wildcards, case-insensitive, as IAM reads it) covers `action`. */
export const actionMatches = (pattern: string, action: string): boolean =>
  new RegExp(
    `^${pattern
      .split('')
      .map((char) => (char === '*' ? '.*' : char === '?' ? '.' : escapeRegExp(char)))
      .join('')}$`,
    'i',
  ).test(action);

/** Whether any Allow statement covers `action`, through a wildcard too, on whatever resource. */
export const allows = (statements: JsonObject[], action: string): boolean =>
  statements.some(
    (statement) =>
      statement.Effect === 'Allow' &&
      strings(statement.Action).some((pattern) => actionMatches(pattern, action)),
  );

/**
 * Everything the Allow statements grant, one sorted line per action and resource:
 * `action resource`, then ` if <condition as JSON>` when the statement has one. A role's whole
 * permission set in a form a test can compare exactly. Actions of the `ignoredServices` prefixes
 * (e.g. the framework's own `logs:` and `xray:` statements) are left out.
 */
export const grantLines = (statements: JsonObject[], ignoredServices: readonly string[] = []): string[] =>
  statements
    .filter((statement) => statement.Effect === 'Allow')
    .flatMap((statement) => {
      const condition = statement.Condition === undefined ? '' : ` if ${JSON.stringify(statement.Condition)}`;
      return strings(statement.Action)
        .filter((action) => !ignoredServices.some((service) => action.startsWith(`${service}:`)))
        .flatMap((action) =>
          asList(statement.Resource).map((resource) => `${action} ${renderArn(resource)}${condition}`),
        );
    })
    .sort();
