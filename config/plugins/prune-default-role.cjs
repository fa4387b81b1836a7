// Removes the framework's shared IamRoleLambdaExecution once serverless-iam-roles-per-function has
// given every function its own role: left in place it is an unused role with log, X-Ray and SQS
// permissions, against "one IAM role per function". Refuses to remove it while anything uses it.
class PruneDefaultRole {
  constructor(serverless) {
    this.serverless = serverless;
    this.hooks = { 'before:package:finalize': () => this.prune() };
  }

  prune() {
    const template = this.serverless.service.provider.compiledCloudFormationTemplate;
    const resources = template.Resources;
    if (!resources.IamRoleLambdaExecution) return;
    const rest = { ...resources };
    delete rest.IamRoleLambdaExecution;
    const stillUsed = JSON.stringify({ rest, outputs: template.Outputs ?? {} }).includes(
      '"IamRoleLambdaExecution"',
    );
    if (stillUsed) {
      throw new Error('IamRoleLambdaExecution is still referenced; a function has no role of its own');
    }
    delete resources.IamRoleLambdaExecution;
  }
}

module.exports = PruneDefaultRole;
