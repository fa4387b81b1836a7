// Serverless variable source: `${file(./config/stage.cjs):load}` returns config/<stage>.yml validated
// by the same zod schema the workers and tests use (shared/config/stage.ts), so a bad stage config
// fails `serverless package` instead of a deploy.
const { Buffer } = require('node:buffer');
const { register } = require('tsx/cjs/api');

const loadStage = async (resolveVariable) => {
  const stage = await resolveVariable('sls:stage');
  const unregister = register();
  try {
    const { loadStageConfig } = require('../shared/config/stage-file.ts');
    return loadStageConfig(stage, __dirname);
  } finally {
    unregister();
  }
};

module.exports.load = async ({ resolveVariable }) => loadStage(resolveVariable);

// `${file(./config/stage.cjs):auditorPrincipals}`: the auditor role's trusted principals, the
// stage's `audit.auditorPrincipals` or, when it has none, the stage account's root. The root's ARN
// is left to CloudFormation because `serverless package` runs offline and cannot know the account.
module.exports.auditorPrincipals = async ({ resolveVariable }) => {
  const config = await loadStage(resolveVariable);
  return (
    config.audit.auditorPrincipals ?? [{ 'Fn::Sub': 'arn:${AWS::Partition}:iam::${AWS::AccountId}:root' }]
  );
};

// `${file(./config/stage.cjs):approverPrincipals}`: who may assume the approver role, the stage's
// `approval.approverPrincipals` or, when it has none, the stage account's root (as for auditors).
module.exports.approverPrincipals = async ({ resolveVariable }) => {
  const config = await loadStage(resolveVariable);
  return (
    config.approval.approverPrincipals ?? [{ 'Fn::Sub': 'arn:${AWS::Partition}:iam::${AWS::AccountId}:root' }]
  );
};

// `${file(./config/stage.cjs):json}`: the validated stage config as JSON, set on every function as
// STAGE_CONFIG (serverless.yml provider.environment), so a worker reads it without a file or a
// YAML parser at cold start (shared/config/stage.ts stageConfigFromEnv).
// Lambda allows 4 KB of environment per function, ARNs and names included: the config may use half.
const MAX_STAGE_CONFIG_BYTES = 2048;
module.exports.json = async ({ resolveVariable }) => {
  const json = JSON.stringify(await loadStage(resolveVariable));
  const bytes = Buffer.byteLength(json, 'utf8');
  if (bytes > MAX_STAGE_CONFIG_BYTES) {
    throw new Error(
      `config/<stage>.yml is ${bytes} bytes as JSON; STAGE_CONFIG may hold at most ${MAX_STAGE_CONFIG_BYTES} (Lambda's environment is limited to 4 KB). Name builders by tag rather than by instance id.`,
    );
  }
  return json;
};

// `${file(./config/stage.cjs):distributionKeys}`, `…:distributionImages`, `…:latestAmiParameters`:
// what distribute, compensate and decommission may touch in the stage's region and in each of its
// distribution regions (shared/config/distribution-iam.ts), resolved from the validated config.
const distributionResources = async (resolveVariable) => {
  const config = await loadStage(resolveVariable);
  const unregister = register();
  try {
    return require('../shared/config/distribution-iam.ts').distributionResources(config);
  } finally {
    unregister();
  }
};
module.exports.distributionKeys = async ({ resolveVariable }) =>
  (await distributionResources(resolveVariable)).keys;
module.exports.distributionImages = async ({ resolveVariable }) =>
  (await distributionResources(resolveVariable)).images;
module.exports.latestAmiParameters = async ({ resolveVariable }) =>
  (await distributionResources(resolveVariable)).latestAmiParameters;
