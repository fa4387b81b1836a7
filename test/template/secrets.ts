import { type JsonObject } from './stack';

/** Names that say "this is a credential"; such a variable must not carry its value in the template. */
const SECRET_NAME = /SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY/i;

/** Values that look like a credential, whatever the variable is called. */
const SECRET_VALUES: [string, RegExp][] = [
  ['an AWS access key id', /\b(AKIA|ASIA)[0-9A-Z]{16}\b/],
  ['a PEM private key', /-----BEGIN [A-Z ]*PRIVATE KEY-----/],
  ['a JWT', /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\./],
  ['a GitHub or Slack token', /\b(gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9-]{10,})/],
];

/** A long unbroken base64/hex run with plenty of both digits and letters: a generated secret, not a name. */
const looksRandom = (value: string): boolean =>
  (value.match(/[A-Za-z0-9+/=]{32,}/g) ?? []).some(
    (run) => (run.match(/[0-9]/g) ?? []).length >= 4 && (run.match(/[A-Za-z]/g) ?? []).length >= 4,
  );

/**
 * Why each variable of a Lambda environment looks like it carries a secret; empty when none does.
 * Only literal strings are judged: a `Ref`/`Fn::GetAtt` names a resource, it holds no value.
 */
export const secretLookingVariables = (variables: JsonObject): string[] =>
  Object.entries(variables).flatMap(([name, value]) => {
    if (typeof value !== 'string') return [];
    if (SECRET_NAME.test(name)) return [`${name} is named like a credential and has a literal value`];
    const match = SECRET_VALUES.find(([, pattern]) => pattern.test(value));
    if (match !== undefined) return [`${name} holds what looks like ${match[0]}`];
    return looksRandom(value) ? [`${name} holds a long random-looking string`] : [];
  });
