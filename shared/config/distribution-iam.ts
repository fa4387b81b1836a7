import type { StageConfig } from './stage';

/** A CloudFormation value: a literal, or an intrinsic function such as Fn::Sub / Fn::GetAtt. */
export type CfnValue = string | { 'Fn::Sub': string } | { 'Fn::GetAtt': [string, string] };

/**
 * The resources the workers that copy, share and remove AMIs may touch, in the stage's region and in
 * each distribution region of `config/<stage>.yml` — and nowhere else (config/stage.cjs hands these
 * to the functions' IAM statements at package time).
 */
export const distributionResources = (config: Pick<StageConfig, 'stage' | 'distribution'>) => {
  const regions = ['${AWS::Region}', ...Object.keys(config.distribution.regions)];
  return {
    /** The stage key, then the stage key of each distribution region. */
    keys: [
      { 'Fn::GetAtt': ['PipelineKey', 'Arn'] } as CfnValue,
      ...Object.values(config.distribution.regions).map((r): CfnValue => r.kmsKeyArn),
    ],
    /** Images and snapshots (still conditioned on the stage tag by each statement). */
    images: regions.flatMap((region): CfnValue[] => [
      { 'Fn::Sub': `arn:\${AWS::Partition}:ec2:${region}::image/*` },
      { 'Fn::Sub': `arn:\${AWS::Partition}:ec2:${region}::snapshot/*` },
    ]),
    /** `/ami-pipeline/<stage>/<appId>/latest-ami` in each region. */
    latestAmiParameters: regions.map((region): CfnValue => ({
      'Fn::Sub': `arn:\${AWS::Partition}:ssm:${region}:\${AWS::AccountId}:parameter/ami-pipeline/${config.stage}/*/latest-ami`,
    })),
  };
};
