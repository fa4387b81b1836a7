import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { mockClient } from 'aws-sdk-client-mock';
import { openContext } from '../../cli/context';
import { CliError } from '../../cli/errors';
import { parseTime, parseWindow } from '../../cli/time';

const NOW = new Date('2026-11-21T12:00:00.000Z');

describe('--since / --until', () => {
  it('reads durations back from now', () => {
    expect(parseTime('90d', '--since', NOW)).toBe('2026-08-23T12:00:00.000Z');
    expect(parseTime('12h', '--since', NOW)).toBe('2026-11-21T00:00:00.000Z');
  });

  it('a date means its start for --since and its end for --until (UTC)', () => {
    expect(parseWindow({ since: '2026-11-01', until: '2026-11-01' }, NOW)).toEqual({
      since: '2026-11-01T00:00:00.000Z',
      until: '2026-11-01T23:59:59.999Z',
    });
  });

  it('takes a time with its zone, and refuses one without (it would depend on the host)', () => {
    expect(parseTime('2026-11-01T11:00+01:00', '--since', NOW)).toBe('2026-11-01T10:00:00.000Z');
    expect(() => parseTime('2026-11-01T10:00', '--since', NOW)).toThrow(CliError);
    expect(() => parseTime('yesterday', '--until', NOW)).toThrow(/--until: "yesterday" must be a date/);
  });

  it('refuses a window that ends before it starts, as a usage error', () => {
    expect(() => parseWindow({ since: '2026-11-02', until: '2026-11-01' }, NOW)).toThrow(
      expect.objectContaining({ exitCode: 2, message: '--since 2026-11-02 is after --until 2026-11-01' }),
    );
  });
});

describe('openContext against AWS', () => {
  const cfn = mockClient(CloudFormationClient);
  const outputs = {
    AuditTableName: 'ami-pipeline-dev-audit',
    ArtifactsBucketName: 'ami-pipeline-dev-artifacts-123456789012-eu-west-1',
    ReportsBucketName: 'ami-pipeline-dev-reports-123456789012-eu-west-1',
    TriggerTopicArn: 'arn:aws:sns:eu-west-1:123456789012:ami-pipeline-dev-trigger',
  };
  const stackWith = (values: Record<string, string>) => ({
    Stacks: [
      {
        StackName: 'ami-pipeline-dev',
        CreationTime: NOW,
        StackStatus: 'UPDATE_COMPLETE' as const,
        Outputs: Object.entries(values).map(([OutputKey, OutputValue]) => ({ OutputKey, OutputValue })),
      },
    ],
  });

  beforeEach(() => cfn.reset());
  afterAll(() => cfn.restore());

  it("reads the names from the stage's stack outputs, in the stage config's region unless --region says otherwise", async () => {
    cfn.on(DescribeStacksCommand).resolves(stackWith(outputs));

    const ctx = await openContext({ stage: 'dev', output: 'table' });
    await ctx.close();
    const regional = await openContext({ stage: 'dev', output: 'table', region: 'us-east-1' });
    await regional.close();

    expect(ctx.names).toEqual({
      auditTable: outputs.AuditTableName,
      artifactsBucket: outputs.ArtifactsBucketName,
      reportsBucket: outputs.ReportsBucketName,
      triggerTopicArn: outputs.TriggerTopicArn,
    });
    expect(cfn.commandCalls(DescribeStacksCommand)[0]?.args[0].input).toEqual({
      StackName: 'ami-pipeline-dev',
    });
    expect(await ctx.db.config.region()).toBe('eu-west-1');
    expect(await regional.db.config.region()).toBe('us-east-1');
  });

  it('says which stack and region when the stack is not there', async () => {
    cfn.on(DescribeStacksCommand).rejects(
      Object.assign(new Error('Stack with id ami-pipeline-dev does not exist'), {
        name: 'ValidationError',
      }),
    );

    await expect(openContext({ stage: 'dev', output: 'table' })).rejects.toThrow(
      'stack ami-pipeline-dev does not exist in eu-west-1',
    );
  });

  it('names the missing output of a stack deployed from an older version', async () => {
    const { ReportsBucketName: _missing, ...older } = outputs;
    cfn.on(DescribeStacksCommand).resolves(stackWith(older));

    await expect(openContext({ stage: 'dev', output: 'table' })).rejects.toThrow(
      /stack ami-pipeline-dev in eu-west-1 has no output ReportsBucketName/,
    );
  });

  it('an unknown stage is an error naming the config file', async () => {
    await expect(openContext({ stage: 'nope', output: 'table' })).rejects.toThrow(/nope\.yml/);
  });
});
