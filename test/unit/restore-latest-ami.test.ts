import {
  GetParameterCommand,
  GetResourcePoliciesCommand,
  PutParameterCommand,
  PutResourcePolicyCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import type { AuditRepository } from '../../shared/audit';
import { restoreLatestAmiParameters, type UndoStep } from '../../shared/compensate';
import type { LatestAmiDetail } from '../../shared/distribution/publish';

/**
 * Compensation puts a run's latest-ami write back: the value and who may read it. A retried
 * compensation (an earlier attempt put the value back, then failed or died before the policy) must
 * still restore the policy, and nothing that someone published since may be touched.
 */
describe('restoring latest-ami parameters', () => {
  const ssmMock = mockClient(SSMClient);
  const NAME = '/ami-pipeline/dev/sample-app/latest-ami';
  const ARN = `arn:aws:ssm:eu-west-1:123456789012:parameter${NAME}`;
  const policyFor = (accounts: string[]) =>
    JSON.stringify({ Statement: [{ Sid: 'AmiPipelineConsumersRead', Principal: { AWS: accounts } }] });
  const detail: LatestAmiDetail = {
    region: 'eu-west-1',
    name: NAME,
    arn: ARN,
    amiId: 'ami-0bbbbbbbbbbbbbbbb',
    previous: { value: 'ami-0aaaaaaaaaaaaaaaa', version: 3 },
    previousPolicy: policyFor(['111122223333']),
  };
  const audit = {
    resourcesOf: async () => [{ resourceId: `eu-west-1:${NAME}`, detail }],
  } as unknown as AuditRepository;
  const steps: { action: string; undone: boolean }[] = [];
  const attempt: UndoStep = async (action, _resource, fn) => {
    steps.push({ action, undone: (await fn()) !== false });
  };

  beforeEach(() => {
    ssmMock.reset();
    steps.length = 0;
    ssmMock.on(GetResourcePoliciesCommand).resolves({
      Policies: [{ PolicyId: 'p-1', PolicyHash: 'h-1', Policy: policyFor(['111122223333', '444455556666']) }],
    });
    ssmMock.on(PutResourcePolicyCommand).resolves({});
    ssmMock.on(PutParameterCommand).resolves({ Version: 5 });
  });

  it("puts the value and the run's predecessor's policy back", async () => {
    ssmMock.on(GetParameterCommand).resolves({ Parameter: { Name: NAME, Value: detail.amiId as string } });

    await restoreLatestAmiParameters('run', { ssm: new SSMClient({}), audit }, attempt);

    expect(ssmMock.commandCalls(PutParameterCommand)[0]?.args[0].input).toMatchObject({
      Name: NAME,
      Value: 'ami-0aaaaaaaaaaaaaaaa',
      Overwrite: true,
    });
    expect(ssmMock.commandCalls(PutResourcePolicyCommand)[0]?.args[0].input).toEqual({
      ResourceArn: ARN,
      Policy: detail.previousPolicy,
      PolicyId: 'p-1',
      PolicyHash: 'h-1',
    });
    expect(steps).toEqual([{ action: 'RESTORE_PARAMETER', undone: true }]);
  });

  it('restores the policy on a retry that finds the value already back', async () => {
    ssmMock.on(GetParameterCommand).resolves({ Parameter: { Name: NAME, Value: 'ami-0aaaaaaaaaaaaaaaa' } });

    await restoreLatestAmiParameters('run', { ssm: new SSMClient({}), audit }, attempt);

    expect(ssmMock.commandCalls(PutParameterCommand)).toHaveLength(0);
    expect(ssmMock.commandCalls(PutResourcePolicyCommand)).toHaveLength(1);
  });

  it('leaves a value someone published since, and its policy, alone', async () => {
    ssmMock.on(GetParameterCommand).resolves({ Parameter: { Name: NAME, Value: 'ami-0ccccccccccccccccc' } });

    await restoreLatestAmiParameters('run', { ssm: new SSMClient({}), audit }, attempt);

    expect(ssmMock.commandCalls(PutParameterCommand)).toHaveLength(0);
    expect(ssmMock.commandCalls(PutResourcePolicyCommand)).toHaveLength(0);
    expect(steps).toEqual([{ action: 'RESTORE_PARAMETER', undone: false }]);
  });
});
