import { parseDefinition, functionOf, reachableFrom } from './asl';
import { grantLines, policyStatements } from './iam';
import { asList, at, isObject, renderArn, type Json, type JsonObject, type PackagedStack } from './stack';

/** The approver role's logical id in serverless.yml (people assume it; no service does). */
export const APPROVER_ROLE_ID = 'ApproverRole';

const FUNCTION_ID = 'ApprovalLambdaFunction';
const FUNCTION_ARN = '${ApprovalLambdaFunction.Arn}';
const ACCOUNT_ROOT: Json = { 'Fn::Sub': 'arn:${AWS::Partition}:iam::${AWS::AccountId}:root' };
const STACK =
  'arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/${AWS::StackName}/*';

/** The framework's own statements on every function role (its log group, X-Ray). */
const FRAMEWORK_SERVICES = ['logs', 'xray'];

/**
 * Declares the tests of the approval gate of one packaged stage: the approval function (its Function
 * URL, its role), the approver role, and the AwaitApproval part of the definition. Call it inside
 * the `describe` of a stage whose template is already packaged (`getStack` is read when the tests run).
 */
export const describeApprovalGate = (getStack: () => PackagedStack): void => {
  describe('approval gate', () => {
    const stateMachine = () =>
      parseDefinition(getStack().properties('AmiPipelineStateMachine', 'AWS::StepFunctions::StateMachine'));
    const state = (name: string): JsonObject => {
      const found = at(stateMachine().definition, 'States', name);
      if (!isObject(found)) throw new Error(`the definition has no state ${name}`);
      return found;
    };
    /** A definition value, with an `Fn::Sub` placeholder replaced by what it stands for. */
    const value = (node: Json | undefined): Json | undefined => {
      const placeholder = typeof node === 'string' ? /^\$\{([^}]+)\}$/.exec(node)?.[1] : undefined;
      return placeholder === undefined ? node : stateMachine().variables[placeholder];
    };

    it('requires approval in prod and not in dev, and the definition carries the stage setting', () => {
      const { stage, config } = getStack();

      expect(config.approval.required).toBe(stage === 'prod');
      expect(value(at(state('Initialize'), 'Parameters', 'settings', 'approvalRequired'))).toBe(
        config.approval.required,
      );
    });

    it('asks after Validate, on a task token, and goes on to the smoke test only once the token is answered', () => {
      const { definition, variables } = stateMachine();
      const needs = state('NeedsApproval');
      const awaiting = state('AwaitApproval');

      expect(state('Validate').Next).toBe('NeedsApproval');
      expect({ Type: needs.Type, Choices: needs.Choices, Default: needs.Default }).toEqual({
        Type: 'Choice',
        Choices: [{ Variable: '$.settings.approvalRequired', BooleanEquals: true, Next: 'AwaitApproval' }],
        Default: 'SmokeTest',
      });
      expect({
        Resource: awaiting.Resource,
        function: functionOf(awaiting, variables),
        action: at(awaiting, 'Parameters', 'Payload', 'action'),
        taskToken: at(awaiting, 'Parameters', 'Payload', 'taskToken.$'),
        TimeoutSeconds: Number(value(awaiting.TimeoutSeconds)),
        ResultPath: awaiting.ResultPath,
        Next: awaiting.Next,
      }).toEqual({
        Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
        function: FUNCTION_ID,
        action: 'request',
        taskToken: '$$.Task.Token',
        TimeoutSeconds: getStack().config.approval.timeoutSeconds,
        ResultPath: '$.stages.approval',
        Next: 'SmokeTest',
      });
      // Rejection (ApprovalRejectedError) and the timeout (States.Timeout) are not retried: they
      // are caught, name the stage and compensate like any failure.
      const retried = asList(awaiting.Retry).flatMap((r) => asList(at(r, 'ErrorEquals')).map(String));
      expect(retried.filter((error) => error.startsWith('States.') || error.startsWith('Approval'))).toEqual(
        [],
      );
      expect(asList(awaiting.Catch).map((c) => [at(c, 'ErrorEquals'), at(c, 'Next')])).toEqual([
        [['States.ALL'], 'ApprovalFailed'],
      ]);
      expect(state('ApprovalFailed')).toMatchObject({
        Type: 'Pass',
        Result: 'Approval',
        ResultPath: '$.failure.stage',
        Next: 'Compensate',
      });
      expect(reachableFrom(definition, 'ApprovalFailed').has('RecordFailure')).toBe(true);
    });

    it('serves the approval function through a Function URL that only IAM-signed requests reach', () => {
      const stack = getStack();
      const urls = stack.resourcesOfType('AWS::Lambda::Url');
      const permissions = stack
        .resourcesOfType('AWS::Lambda::Permission')
        .filter(([, permission]) =>
          JSON.stringify(at(permission.Properties, 'FunctionName')).includes(FUNCTION_ID),
        );

      expect(
        urls.map(([id, url]) => [
          id,
          at(url.Properties, 'AuthType'),
          renderArn(at(url.Properties, 'TargetFunctionArn')),
        ]),
      ).toEqual([['ApprovalLambdaFunctionUrl', 'AWS_IAM', FUNCTION_ARN]]);
      // No resource policy opens it: the caller's own IAM policy (the approver role's) must allow it.
      expect(permissions).toEqual([]);
      expect(stack.template.Outputs?.ApprovalFunctionUrl).toEqual({
        Value: { 'Fn::GetAtt': ['ApprovalLambdaFunctionUrl', 'FunctionUrl'] },
      });
    });

    it("lets the approval function touch only approval items, append to the audit table, answer the pipeline machine's tokens and publish to the outcome topic", () => {
      const stack = getStack();
      const lines = grantLines(
        policyStatements(stack.resource('ApprovalIamRoleLambdaExecution', 'AWS::IAM::Role')),
        FRAMEWORK_SERVICES,
      );
      const approvalItems = ` if ${JSON.stringify({ 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['APPROVAL#*'] } })}`;

      expect(lines).toEqual(
        [
          `dynamodb:GetItem \${CoordinationTable.Arn}${approvalItems}`,
          `dynamodb:UpdateItem \${CoordinationTable.Arn}${approvalItems}`,
          'dynamodb:GetItem ${AuditTable.Arn}',
          'dynamodb:PutItem ${AuditTable.Arn}',
          'dynamodb:Query ${AuditTable.Arn}',
          'states:SendTaskSuccess ${AmiPipelineStateMachine}',
          'states:SendTaskFailure ${AmiPipelineStateMachine}',
          'sns:Publish ${OutcomeTopic}',
          'kms:GenerateDataKey ${PipelineKey.Arn}',
          'kms:Decrypt ${PipelineKey.Arn}',
        ].sort(),
      );
    });

    it('tells the function which role approves, by the same name the approver role has', () => {
      const stack = getStack();
      const variables = at(
        stack.properties(FUNCTION_ID, 'AWS::Lambda::Function'),
        'Environment',
        'Variables',
      );
      const role = stack.properties(APPROVER_ROLE_ID, 'AWS::IAM::Role');

      expect(role.RoleName).toBe(`ami-pipeline-${stack.stage}-approver`);
      expect(renderArn(at(variables, 'APPROVER_ROLE_ARN'))).toBe(
        `arn:\${AWS::Partition}:iam::\${AWS::AccountId}:role/${String(role.RoleName)}`,
      );
    });

    it('gives approvers a role that may only invoke the approval URL (IAM-authenticated) and read the stack outputs', () => {
      const stack = getStack();
      const role = stack.properties(APPROVER_ROLE_ID, 'AWS::IAM::Role');

      expect(at(role, 'AssumeRolePolicyDocument', 'Statement')).toEqual([
        {
          Effect: 'Allow',
          Principal: { AWS: stack.config.approval.approverPrincipals ?? [ACCOUNT_ROOT] },
          Action: 'sts:AssumeRole',
        },
      ]);
      expect(role.MaxSessionDuration).toBe(3600);
      expect(grantLines(policyStatements(stack.resource(APPROVER_ROLE_ID, 'AWS::IAM::Role')))).toEqual(
        [
          `cloudformation:DescribeStacks ${STACK}`,
          `lambda:InvokeFunctionUrl ${FUNCTION_ARN} if ${JSON.stringify({ StringEquals: { 'lambda:FunctionUrlAuthType': 'AWS_IAM' } })}`,
          `lambda:InvokeFunction ${FUNCTION_ARN} if ${JSON.stringify({ Bool: { 'lambda:InvokedViaFunctionUrl': 'true' } })}`,
        ].sort(),
      );
      expect(stack.template.Outputs?.ApproverRoleArn).toEqual({
        Value: { 'Fn::GetAtt': [APPROVER_ROLE_ID, 'Arn'] },
      });
    });
  });
};
