// Serverless variable source: `${file(./config/stage.cjs):load}` returns config/<stage>.yml validated
// by the same zod schema the workers and tests use (shared/config/stage.ts), so a bad stage config
// fails `serverless package` instead of a deploy.
const { register } = require('tsx/cjs/api');

module.exports.load = async ({ resolveVariable }) => {
  const stage = await resolveVariable('sls:stage');
  const unregister = register();
  try {
    const { loadStageConfig } = require('../shared/config/stage.ts');
    return loadStageConfig(stage, __dirname);
  } finally {
    unregister();
  }
};
