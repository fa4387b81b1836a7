import { parseDefinition, functionOf, reachableFrom } from './asl';
import { actionMatches, grantLines, IAM_POLICY_TYPES, policyStatements } from './iam';
import { asList, at, isObject, renderArn, type Json, type JsonObject, type PackagedStack } from './stack';

/** The approver role's logical id in serverless.yml (people assume it; no service does). */
export const APPROVER_ROLE_ID = 'ApproverRole';

/** The state machine's side (request, verify, expire): AwaitApproval, VerifyApproval, ExpireApproval invoke it. */
const FUNCTION_ID = 'ApprovalLambdaFunction';
/** Approvers' side: the Function URL; no state invokes it. */
const DECIDE_ID = 'ApprovalDecideLambdaFunction';
const DECIDE_ARN = '${ApprovalDecideLambdaFunction.Arn}';
/** The roles of the two approval functions: the only ones that may touch approval items. */
const APPROVAL_ROLES = ['ApprovalIamRoleLambdaExecution', 'ApprovalDecideIamRoleLambdaExecution'];
/** Every DynamoDB action that reads or writes items of a table by key. */
const ITEM_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:BatchGetItem',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
  'dynamodb:Query',
];
const STATE_MACHINE_ROLE = 'AmiPipelineStateMachineRole';
const APPROVAL_ITEMS_DENIED = { 'ForAnyValue:StringLike': { 'dynamodb:LeadingKeys': ['APPROVAL#*'] } };
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
        Next: 'VerifyApproval',
      });
      // Rejection (ApprovalRejectedError) and the timeout (States.Timeout) are not retried: they
      // are caught, name the stage and compensate like any failure.
      const retried = asList(awaiting.Retry).flatMap((r) => asList(at(r, 'ErrorEquals')).map(String));
      expect(retried.filter((error) => error.startsWith('States.') || error.startsWith('Approval'))).toEqual(
        [],
      );
      expect(asList(awaiting.Catch).map((c) => [at(c, 'ErrorEquals'), at(c, 'Next')])).toEqual([
        [['States.ALL'], 'ExpireApproval'],
      ]);
      expect(state('ApprovalFailed')).toMatchObject({
        Type: 'Pass',
        Result: 'Approval',
        ResultPath: '$.failure.stage',
        Next: 'Compensate',
      });
      expect(reachableFrom(definition, 'ApprovalFailed').has('RecordFailure')).toBe(true);
    });

    it("goes on to the smoke test only once the approval function verified an approver's audited approval, and expires an unanswered approval on every way out", () => {
      const { variables } = stateMachine();
      const verify = state('VerifyApproval');
      const expire = state('ExpireApproval');
      const catches = (task: JsonObject) =>
        asList(task.Catch).map((c) => [at(c, 'ErrorEquals'), at(c, 'ResultPath'), at(c, 'Next')]);

      expect({
        Resource: verify.Resource,
        function: functionOf(verify, variables),
        action: at(verify, 'Parameters', 'Payload', 'action'),
        run: at(verify, 'Parameters', 'Payload', 'run.$'),
        // The verified decision replaces whatever output the token was answered with.
        ResultPath: verify.ResultPath,
        Next: verify.Next,
        catches: catches(verify),
      }).toEqual({
        Resource: 'arn:aws:states:::lambda:invoke',
        function: FUNCTION_ID,
        action: 'verify',
        run: '$.run',
        ResultPath: '$.stages.approval',
        Next: 'SmokeTest',
        catches: [[['States.ALL'], '$.failure', 'ExpireApproval']],
      });
      // Best effort: the failure in $.failure goes on to the marker and compensation whatever happens.
      expect({
        Resource: expire.Resource,
        function: functionOf(expire, variables),
        action: at(expire, 'Parameters', 'Payload', 'action'),
        ResultPath: expire.ResultPath,
        Next: expire.Next,
        catches: catches(expire),
      }).toEqual({
        Resource: 'arn:aws:states:::lambda:invoke',
        function: FUNCTION_ID,
        action: 'expire',
        ResultPath: null,
        Next: 'ApprovalFailed',
        catches: [[['States.ALL'], null, 'ApprovalFailed']],
      });
    });

    it('never lets the state machine invoke the decision function: no state names it, and its role may not', () => {
      const stack = getStack();
      const { definition, variables } = stateMachine();
      const invoked = JSON.stringify(definition);
      const machineRole = JSON.stringify(
        policyStatements(stack.resource('AmiPipelineStateMachineRole', 'AWS::IAM::Role')),
      );

      expect(functionOf(state('AwaitApproval'), variables)).toBe(FUNCTION_ID);
      expect(invoked).not.toContain(DECIDE_ID);
      expect(invoked).not.toContain('approvalDecide');
      expect(machineRole).toContain(FUNCTION_ID);
      expect(machineRole).not.toContain(DECIDE_ID);
      // Nobody but the approver role is granted to invoke it, in any way.
      const invokers = IAM_POLICY_TYPES.flatMap((type) => stack.resourcesOfType(type))
        .filter(([, policy]) =>
          policyStatements(policy).some(
            (statement) =>
              statement.Effect === 'Allow' &&
              asList(statement.Action).some((action) =>
                actionMatches(String(action), 'lambda:InvokeFunction'),
              ) &&
              JSON.stringify(statement.Resource).includes(DECIDE_ID),
          ),
        )
        .map(([id]) => id);
      expect(invokers).toEqual([APPROVER_ROLE_ID]);
    });

    it("keeps every role but the approval functions' away from approval items: an explicit Deny, or grants scoped to other keys", () => {
      const stack = getStack();
      const coordination = '${CoordinationTable.Arn}';
      const policies = IAM_POLICY_TYPES.flatMap((type) => stack.resourcesOfType(type)).filter(
        ([id]) => !APPROVAL_ROLES.includes(id),
      );
      /** Grants on the table's items that are not scoped to keys other than APPROVAL#…. */
      const unscoped = (statements: JsonObject[]) =>
        statements.filter((statement) => {
          if (statement.Effect !== 'Allow') return false;
          if (!asList(statement.Resource).some((r) => renderArn(r) === coordination)) return false;
          const keys = asList(at(statement.Condition, 'ForAllValues:StringLike', 'dynamodb:LeadingKeys')).map(
            String,
          );
          return keys.length === 0 || keys.some((key) => 'APPROVAL#'.startsWith(key.replace(/\*.*$/, '')));
        });
      const denied = (statements: JsonObject[]) =>
        statements.some(
          (statement) =>
            statement.Effect === 'Deny' &&
            asList(statement.Resource).some((r) => renderArn(r) === coordination) &&
            ITEM_ACTIONS.every((action) =>
              asList(statement.Action).some((pattern) => actionMatches(String(pattern), action)),
            ) &&
            JSON.stringify(statement.Condition) === JSON.stringify(APPROVAL_ITEMS_DENIED),
        );
      const exposed = policies
        .filter(([id, policy]) => {
          const statements = policyStatements(policy);
          return unscoped(statements).length > 0 && !denied(statements) && id !== STATE_MACHINE_ROLE;
        })
        .map(([id]) => id);
      // The state machine's role (serverless-step-functions takes no Condition in its statements)
      // only deletes there, the locks its definition releases: it can never read a token.
      expect(
        grantLines(policyStatements(stack.resource(STATE_MACHINE_ROLE, 'AWS::IAM::Role'))).filter((line) =>
          line.includes(coordination),
        ),
      ).toEqual([`dynamodb:DeleteItem ${coordination}`]);
      const holders = policies
        .filter(([, policy]) => unscoped(policyStatements(policy)).length > 0)
        .map(([id]) => id);

      expect(exposed).toEqual([]);
      // The roles the Deny is for: every worker that keeps locks or command tasks there, and the
      // state machine (it releases locks).
      expect(holders.sort()).toEqual(
        [
          'AmiPipelineStateMachineRole',
          ...['Bake', 'CommandCompleted', 'Compensate', 'Lock', 'Provision', 'Reconciler', 'Validate'].map(
            (fn) => `${fn}IamRoleLambdaExecution`,
          ),
        ].sort(),
      );
    });

    it('serves the decision function, and it alone, through a Function URL that only IAM-signed requests reach', () => {
      const stack = getStack();
      const urls = stack.resourcesOfType('AWS::Lambda::Url');
      const permissions = stack
        .resourcesOfType('AWS::Lambda::Permission')
        .filter(([, permission]) =>
          [FUNCTION_ID, DECIDE_ID].some((id) =>
            JSON.stringify(at(permission.Properties, 'FunctionName')).includes(id),
          ),
        );

      expect(
        urls.map(([id, url]) => [
          id,
          at(url.Properties, 'AuthType'),
          renderArn(at(url.Properties, 'TargetFunctionArn')),
        ]),
      ).toEqual([['ApprovalDecideLambdaFunctionUrl', 'AWS_IAM', DECIDE_ARN]]);
      // No resource policy opens it: the caller's own IAM policy (the approver role's) must allow it.
      expect(permissions).toEqual([]);
      expect(stack.template.Outputs?.ApprovalFunctionUrl).toEqual({
        Value: { 'Fn::GetAtt': ['ApprovalDecideLambdaFunctionUrl', 'FunctionUrl'] },
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

    it("lets the decision function touch only approval items, append to the audit table and answer the pipeline machine's tokens", () => {
      const stack = getStack();
      const lines = grantLines(
        policyStatements(stack.resource('ApprovalDecideIamRoleLambdaExecution', 'AWS::IAM::Role')),
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
        ].sort(),
      );
    });

    it.each([FUNCTION_ID, DECIDE_ID])(
      'tells %s which role approves, by the same name the approver role has',
      (functionId) => {
        const stack = getStack();
        const variables = at(
          stack.properties(functionId, 'AWS::Lambda::Function'),
          'Environment',
          'Variables',
        );
        const role = stack.properties(APPROVER_ROLE_ID, 'AWS::IAM::Role');

        expect(role.RoleName).toBe(`ami-pipeline-${stack.stage}-approver`);
        expect(renderArn(at(variables, 'APPROVER_ROLE_ARN'))).toBe(
          `arn:\${AWS::Partition}:iam::\${AWS::AccountId}:role/${String(role.RoleName)}`,
        );
      },
    );

    it('gives approvers a role that may only invoke the decision URL (IAM-authenticated) and read the stack outputs', () => {
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
          `lambda:InvokeFunctionUrl ${DECIDE_ARN} if ${JSON.stringify({ StringEquals: { 'lambda:FunctionUrlAuthType': 'AWS_IAM' } })}`,
          `lambda:InvokeFunction ${DECIDE_ARN} if ${JSON.stringify({ Bool: { 'lambda:InvokedViaFunctionUrl': 'true' } })}`,
        ].sort(),
      );
      expect(stack.template.Outputs?.ApproverRoleArn).toEqual({
        Value: { 'Fn::GetAtt': [APPROVER_ROLE_ID, 'Arn'] },
      });
    });
  });
};
