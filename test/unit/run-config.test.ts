import {
  AddTagsToResourceCommand,
  ParameterAlreadyExists,
  ParameterLimitExceeded,
  PutParameterCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { RunConfigTooLargeError } from '../../shared/errors';
import { runConfigParameterName, storeRunConfig } from '../../shared/run-config';

const ssmMock = mockClient(SSMClient);
const ssm = new SSMClient({});

const KMS_KEY_ARN = 'arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';
const NAME = '/ami-pipeline/dev/sample-app/0123456789abcdef0123';
const TAGS = { 'ami-pipeline:run-id': '0123456789abcdef0123', 'ami-pipeline:app-id': 'sample-app' };
const SDK_TAGS = [
  { Key: 'ami-pipeline:run-id', Value: '0123456789abcdef0123' },
  { Key: 'ami-pipeline:app-id', Value: 'sample-app' },
];

const store = (value: string) =>
  storeRunConfig(ssm, { name: NAME, value, kmsKeyId: KMS_KEY_ARN, tags: TAGS });

beforeEach(() => {
  ssmMock.on(PutParameterCommand).resolves({ Version: 1 });
});

afterEach(() => {
  ssmMock.reset();
});

describe('run config parameter', () => {
  it('is named /ami-pipeline/<stage>/<appId>/<runId>', () => {
    expect(runConfigParameterName('prod', 'sample-app', 'abc')).toBe('/ami-pipeline/prod/sample-app/abc');
  });

  it('is written once as a SecureString with the customer key, a description and the tags', async () => {
    const stored = await store('{"a":1}');

    expect(stored).toEqual({ name: NAME, version: 1, tier: 'Standard', bytes: 7 });
    expect(ssmMock).toHaveReceivedCommandTimes(PutParameterCommand, 1);
    expect(ssmMock).toHaveReceivedCommandWith(PutParameterCommand, {
      Name: NAME,
      Value: '{"a":1}',
      Type: 'SecureString',
      KeyId: KMS_KEY_ARN,
      Tier: 'Standard',
      Description: 'ami-pipeline run config (written by pre-provision)',
      Tags: SDK_TAGS,
    });
    expect(ssmMock.commandCalls(PutParameterCommand)[0]?.args[0].input.Overwrite).toBeUndefined();
  });

  it.each([
    ['exactly 4096 bytes', 'x'.repeat(4096), 'Standard'],
    ['4097 bytes', 'x'.repeat(4097), 'Advanced'],
    ['4098 bytes in 2049 two-byte characters', 'é'.repeat(2049), 'Advanced'],
    ['exactly 8192 bytes', 'x'.repeat(8192), 'Advanced'],
  ])('chooses the tier from the UTF-8 size: %s is %s', async (_case, value, tier) => {
    const stored = await store(value);

    expect(stored.tier).toBe(tier);
    expect(stored.bytes).toBe(Buffer.byteLength(value, 'utf8'));
    expect(ssmMock).toHaveReceivedCommandWith(PutParameterCommand, { Tier: tier });
  });

  it.each([
    ['8193 bytes', 'x'.repeat(8193)],
    ['4097 two-byte characters', 'é'.repeat(4097)],
  ])('refuses %s with RunConfigTooLargeError and writes nothing', async (_case, value) => {
    await expect(store(value)).rejects.toThrow(RunConfigTooLargeError);
    await expect(store(value)).rejects.toThrow(
      `run config is ${Buffer.byteLength(value, 'utf8')} bytes; an SSM parameter holds at most 8192`,
    );
    expect(ssmMock).toHaveReceivedCommandTimes(PutParameterCommand, 0);
  });

  it('overwrites without tags and then re-applies the tags when the parameter already exists', async () => {
    ssmMock
      .on(PutParameterCommand)
      .rejectsOnce(new ParameterAlreadyExists({ message: 'The parameter already exists.', $metadata: {} }))
      .resolves({ Version: 2 });
    ssmMock.on(AddTagsToResourceCommand).resolves({});

    const stored = await store('{"a":1}');

    expect(stored).toEqual({ name: NAME, version: 2, tier: 'Standard', bytes: 7 });
    expect(ssmMock).toHaveReceivedCommandTimes(PutParameterCommand, 2);
    expect(ssmMock).toHaveReceivedNthSpecificCommandWith(2, PutParameterCommand, {
      Name: NAME,
      Value: '{"a":1}',
      Type: 'SecureString',
      KeyId: KMS_KEY_ARN,
      Tier: 'Standard',
      Overwrite: true,
    });
    // PutParameter refuses Tags together with Overwrite.
    expect(ssmMock.commandCalls(PutParameterCommand)[1]?.args[0].input.Tags).toBeUndefined();
    expect(ssmMock).toHaveReceivedCommandWith(AddTagsToResourceCommand, {
      ResourceType: 'Parameter',
      ResourceId: NAME,
      Tags: SDK_TAGS,
    });
  });

  it('propagates any other SSM error without overwriting', async () => {
    ssmMock
      .on(PutParameterCommand)
      .rejects(new ParameterLimitExceeded({ message: 'too many parameters', $metadata: {} }));

    await expect(store('{"a":1}')).rejects.toThrow(ParameterLimitExceeded);
    expect(ssmMock).toHaveReceivedCommandTimes(PutParameterCommand, 1);
    expect(ssmMock).toHaveReceivedCommandTimes(AddTagsToResourceCommand, 0);
  });
});
