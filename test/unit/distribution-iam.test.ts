import { distributionResources } from '../../shared/config/distribution-iam';

/**
 * What config/stage.cjs hands to the IAM statements of distribute, compensate and decommission:
 * the stage's region and exactly the distribution regions of config/<stage>.yml. The packaged dev
 * and prod templates (no distribution regions) are checked against it in test/template.
 */
describe('distribution IAM resources', () => {
  const FRANKFURT_KEY = 'arn:aws:kms:eu-central-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef';
  const VIRGINIA_KEY = 'arn:aws:kms:us-east-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef';
  const config = {
    stage: 'prod',
    distribution: {
      maxConcurrentCopies: 5,
      copyWaitSeconds: 780,
      copyRetries: 2,
      regions: { 'eu-central-1': { kmsKeyArn: FRANKFURT_KEY }, 'us-east-1': { kmsKeyArn: VIRGINIA_KEY } },
    },
  };

  it('names the stage key and the key of each distribution region, no other', () => {
    expect(distributionResources(config).keys).toEqual([
      { 'Fn::GetAtt': ['PipelineKey', 'Arn'] },
      FRANKFURT_KEY,
      VIRGINIA_KEY,
    ]);
  });

  it("names images and snapshots of the stage's region and each distribution region, no wildcard region", () => {
    expect(distributionResources(config).images).toEqual([
      { 'Fn::Sub': 'arn:${AWS::Partition}:ec2:${AWS::Region}::image/*' },
      { 'Fn::Sub': 'arn:${AWS::Partition}:ec2:${AWS::Region}::snapshot/*' },
      { 'Fn::Sub': 'arn:${AWS::Partition}:ec2:eu-central-1::image/*' },
      { 'Fn::Sub': 'arn:${AWS::Partition}:ec2:eu-central-1::snapshot/*' },
      { 'Fn::Sub': 'arn:${AWS::Partition}:ec2:us-east-1::image/*' },
      { 'Fn::Sub': 'arn:${AWS::Partition}:ec2:us-east-1::snapshot/*' },
    ]);
  });

  it("names only this stage's latest-ami parameters, in the account, in each region", () => {
    expect(distributionResources(config).latestAmiParameters).toEqual([
      {
        'Fn::Sub':
          'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/ami-pipeline/prod/*/latest-ami',
      },
      {
        'Fn::Sub':
          'arn:${AWS::Partition}:ssm:eu-central-1:${AWS::AccountId}:parameter/ami-pipeline/prod/*/latest-ami',
      },
      {
        'Fn::Sub':
          'arn:${AWS::Partition}:ssm:us-east-1:${AWS::AccountId}:parameter/ami-pipeline/prod/*/latest-ami',
      },
    ]);
  });

  it('is the stage region alone when the stage distributes nowhere else', () => {
    const none = distributionResources({ ...config, distribution: { ...config.distribution, regions: {} } });
    expect(none.keys).toHaveLength(1);
    expect(none.images).toHaveLength(2);
    expect(none.latestAmiParameters).toHaveLength(1);
  });
});
