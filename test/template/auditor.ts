import { AUDIT_INDEXES } from '../../shared/audit';
import { allows, grantLines, IAM_POLICY_TYPES, iamViolations, policyStatements } from './iam';
import { asList, at, isObject, renderArn, type Json, type JsonObject, type PackagedStack } from './stack';

/** The auditor role's logical id in serverless.yml. */
export const AUDITOR_ROLE_ID = 'AuditorRole';

const ACCOUNT_ROOT: Json = { 'Fn::Sub': 'arn:${AWS::Partition}:iam::${AWS::AccountId}:root' };

const STACK =
  'arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/${AWS::StackName}/*';
const TABLE = '${AuditTable.Arn}';
const INDEXES = Object.values(AUDIT_INDEXES).map((index) => `${TABLE}/index/${index}`);
const BUCKET = '${ReportsBucket.Arn}';
const OBJECTS = '${ReportsBucket.Arn}/*';
const KEY = '${PipelineKey.Arn}';
const THROUGH_DYNAMODB_AND_S3 = {
  StringEquals: {
    'kms:ViaService': [
      { 'Fn::Sub': 'dynamodb.${AWS::Region}.amazonaws.com' },
      { 'Fn::Sub': 's3.${AWS::Region}.amazonaws.com' },
    ],
  },
};

/** Scan in any form, and every call that writes, deletes or could expire or drop audit items. */
const DENIED_ON_AUDIT_TABLE = [
  'dynamodb:Scan',
  'dynamodb:PartiQLSelect',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
  'dynamodb:PartiQLInsert',
  'dynamodb:PartiQLUpdate',
  'dynamodb:PartiQLDelete',
  'dynamodb:DeleteTable',
  'dynamodb:UpdateTable',
  'dynamodb:UpdateTimeToLive',
  'dynamodb:UpdateContinuousBackups',
];

/**
 * Declares the tests of the read-only auditor role (`AuditorRole`) of one packaged stage. Call it
 * inside the `describe` of a stage whose template is already packaged: `getStack` is read only when
 * the tests run, after that block's `beforeAll`, so no stage is packaged twice.
 *
 * The trust policy is checked for stages whose config names no `audit.auditorPrincipals` (the
 * account root); test/unit/stage-cjs.test.ts covers principals named in the config.
 */
export const describeAuditorRole = (getStack: () => PackagedStack): void => {
  describe('auditor role', () => {
    const role = (): JsonObject => getStack().properties(AUDITOR_ROLE_ID, 'AWS::IAM::Role');

    const statements = (): JsonObject[] =>
      policyStatements(getStack().resource(AUDITOR_ROLE_ID, 'AWS::IAM::Role'));

    it('is ami-pipeline-<stage>-auditor, tagged with the stage, with sessions of at most an hour', () => {
      const { stage } = getStack();

      expect(role()).toMatchObject({
        RoleName: `ami-pipeline-${stage}-auditor`,
        MaxSessionDuration: 3600,
        Tags: [{ Key: 'ami-pipeline:stage', Value: stage }],
      });
    });

    it('allows exactly DescribeStacks on its stack, Query on the audit table and its indexes, reading the reports and the stage key through DynamoDB and S3', () => {
      const grants = grantLines(statements());

      expect(grants).toEqual(
        [
          `cloudformation:DescribeStacks ${STACK}`,
          ...[TABLE, ...INDEXES].map((resource) => `dynamodb:Query ${resource}`),
          `s3:GetObject ${OBJECTS}`,
          `s3:ListBucket ${BUCKET}`,
          `kms:Decrypt ${KEY} if ${JSON.stringify(THROUGH_DYNAMODB_AND_S3)}`,
          `kms:DescribeKey ${KEY} if ${JSON.stringify(THROUGH_DYNAMODB_AND_S3)}`,
        ].sort(),
      );
    });

    it('grants nothing on Resource "*" or by wildcard, only on the stage’s own stack, table, indexes, bucket and key', () => {
      const allowed = statements().filter((statement) => statement.Effect === 'Allow');
      const own = new Set([STACK, TABLE, ...INDEXES, BUCKET, OBJECTS, KEY]);

      expect(iamViolations(AUDITOR_ROLE_ID, allowed, [])).toEqual([]);
      expect(
        allowed.flatMap((statement) => asList(statement.Resource).map(renderArn)).filter((r) => !own.has(r)),
      ).toEqual([]);
    });

    it('gets no permission from elsewhere: no managed policy, no boundary, no policy resource attached', () => {
      const attached = IAM_POLICY_TYPES.filter((type) => type !== 'AWS::IAM::Role')
        .flatMap((type) => getStack().resourcesOfType(type))
        .filter(([, resource]) =>
          JSON.stringify(at(resource.Properties, 'Roles') ?? []).includes(`"${AUDITOR_ROLE_ID}"`),
        )
        .map(([id]) => id);

      expect(role().ManagedPolicyArns).toBeUndefined();
      expect(role().PermissionsBoundary).toBeUndefined();
      expect(attached).toEqual([]);
    });

    it('denies Scan, PartiQL and every write or delete on the audit table and its indexes, and allows none of them', () => {
      const denies = statements().filter((statement) => statement.Effect === 'Deny');

      expect(denies).toEqual([
        {
          Sid: 'AuditTableStaysReadOnly',
          Effect: 'Deny',
          Action: DENIED_ON_AUDIT_TABLE,
          Resource: [{ 'Fn::GetAtt': ['AuditTable', 'Arn'] }, { 'Fn::Sub': `${TABLE}/index/*` }],
        },
      ]);
      expect(DENIED_ON_AUDIT_TABLE.filter((action) => allows(statements(), action))).toEqual([]);
    });

    it('trusts the account root, the default when the stage config names no auditor principals', () => {
      expect(getStack().config.audit.auditorPrincipals).toBeUndefined();
      expect(asList(at(role(), 'AssumeRolePolicyDocument', 'Statement'))).toEqual([
        { Effect: 'Allow', Principal: { AWS: [ACCOUNT_ROOT] }, Action: 'sts:AssumeRole' },
      ]);
    });

    it('can use the stage key with an IAM statement alone: the key policy delegates to the account’s IAM policies', () => {
      const keyPolicy = at(getStack().properties('PipelineKey', 'AWS::KMS::Key'), 'KeyPolicy', 'Statement');
      const keyStatements = asList(keyPolicy).filter(isObject);

      expect(keyStatements).toContainEqual(
        expect.objectContaining({ Effect: 'Allow', Principal: { AWS: ACCOUNT_ROOT }, Action: 'kms:*' }),
      );
      expect(keyStatements.filter((statement) => statement.Effect === 'Deny')).toEqual([]);
    });

    it('publishes its ARN as the AuditorRoleArn output', () => {
      expect(getStack().template.Outputs?.AuditorRoleArn).toEqual({
        Value: { 'Fn::GetAtt': [AUDITOR_ROLE_ID, 'Arn'] },
      });
    });
  });
};
