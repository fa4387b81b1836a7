// First import: the handler module reads its environment (requireEnv) when it is loaded.
import { TEST_ENV } from './support/env';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, NoSuchKey, S3Client } from '@aws-sdk/client-s3';
import {
  AddTagsToResourceCommand,
  ParameterAlreadyExists,
  PutParameterCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { stringify } from 'yaml';
import { run } from '../../functions/pre-provision/handler';
import { AuditRepository } from '../../shared/audit';
import { loadRules } from '../../shared/config/rules';
import { loadStageConfig } from '../../shared/config/stage-file';
import {
  AppConfigInvalidError,
  AppConfigNotFoundError,
  InvalidTaskInputError,
  RunConfigTooLargeError,
} from '../../shared/errors';
import type { PreProvisionDeps } from '../../shared/pre-provision';
import {
  ARTIFACTS_BUCKET,
  CONFIG_DIR,
  EXECUTION_ARN_PREFIX,
  SAMPLE_APP_YAML,
  expectedRunId,
  s3Body,
  sampleAppConfig,
} from './support/fixtures';

const s3Mock = mockClient(S3Client);
const ssmMock = mockClient(SSMClient);
const dbMock = mockClient(DynamoDBDocumentClient);

const NOW = '2025-03-04T10:05:00.000Z';
const STARTED_AT = '2025-03-04T10:00:02.000Z';
const BUILD_ID = 'sample-app-release#118';
const RUN_ID = expectedRunId('sample-app', 'dev', BUILD_ID);
const EXECUTION_ARN = `${EXECUTION_ARN_PREFIX}:sample-app-dev-${RUN_ID}`;
const PARAMETER_NAME = `/ami-pipeline/dev/sample-app/${RUN_ID}`;
const APP_CONFIG_KEY = 'inputs/sample-app/118/app-config.yml';
const SECRET = 'planted-secret-d41d8cd98f00';

const deps: PreProvisionDeps = {
  stage: loadStageConfig('dev', CONFIG_DIR),
  rules: loadRules(CONFIG_DIR),
  platform: {
    kmsKeyArn: TEST_ENV.KMS_KEY_ARN,
    artifactsBucket: TEST_ENV.ARTIFACTS_BUCKET,
    reportsBucket: TEST_ENV.REPORTS_BUCKET,
    logsBucket: TEST_ENV.LOGS_BUCKET,
  },
  audit: new AuditRepository(DynamoDBDocumentClient.from(new DynamoDBClient({})), TEST_ENV.AUDIT_TABLE),
  s3: new S3Client({}),
  ssm: new SSMClient({}),
  now: () => new Date(NOW),
};

/** The task input the state machine hands pre-provision for sample-app build 118 in dev. */
const taskInput = (environment = 'dev') => ({
  trigger: {
    schemaVersion: 1,
    runId: RUN_ID,
    appId: 'sample-app',
    environment,
    version: '1.4.2',
    buildId: BUILD_ID,
    kind: 'release',
    appConfigUri: `s3://${ARTIFACTS_BUCKET}/${APP_CONFIG_KEY}`,
    artifact: {
      s3Uri: `s3://${ARTIFACTS_BUCKET}/inputs/sample-app/118/sample-app-1.4.2.tgz`,
      sha256: 'c'.repeat(64),
    },
    requestedBy: 'jenkins@ci.example.com',
  },
  run: { executionArn: EXECUTION_ARN, startedAt: STARTED_AT },
});

/** sample-app.yml with `change` applied, as the S3 object pre-provision reads. */
const givenAppConfig = (change: (config: Record<string, unknown>) => void = () => undefined): void => {
  const config = sampleAppConfig();
  change(config);
  s3Mock.on(GetObjectCommand).resolves({ Body: s3Body(stringify(config)) });
};

const bakeOf = (config: Record<string, unknown>) => config.bake as Record<string, unknown>;
const runtimeOf = (config: Record<string, unknown>) => config.runtime as Record<string, unknown>;

const storedValue = (): string => ssmMock.commandCalls(PutParameterCommand)[0]?.args[0].input.Value ?? '';

const auditItems = (): Record<string, unknown>[] =>
  dbMock.commandCalls(PutCommand).map((call) => call.args[0].input.Item ?? {});

/** Runs pre-provision and returns what it threw (the test fails if it did not throw). */
const failureOf = async (event: unknown, withDeps: PreProvisionDeps = deps): Promise<unknown> => {
  try {
    await run(event, withDeps);
  } catch (err) {
    return err;
  }
  throw new Error('expected pre-provision to fail');
};

beforeEach(() => {
  s3Mock.on(GetObjectCommand).resolves({ Body: s3Body(SAMPLE_APP_YAML) });
  ssmMock.on(PutParameterCommand).resolves({ Version: 1, Tier: 'Standard' });
  dbMock.on(PutCommand).resolves({});
});

afterEach(() => {
  s3Mock.reset();
  ssmMock.reset();
  dbMock.reset();
});

describe('pre-provision worker', () => {
  describe('with a valid app config', () => {
    it('reads the app config the trigger points to', async () => {
      await run(taskInput(), deps);

      expect(s3Mock).toHaveReceivedCommandWith(GetObjectCommand, {
        Bucket: ARTIFACTS_BUCKET,
        Key: APP_CONFIG_KEY,
      });
    });

    it('stores the run config as a standard SecureString under the stage key, named per run and tagged', async () => {
      await run(taskInput(), deps);

      expect(ssmMock).toHaveReceivedCommandTimes(PutParameterCommand, 1);
      expect(ssmMock).toHaveReceivedCommandWith(PutParameterCommand, {
        Name: PARAMETER_NAME,
        Type: 'SecureString',
        KeyId: TEST_ENV.KMS_KEY_ARN,
        Tier: 'Standard',
        Tags: [
          { Key: 'ami-pipeline:run-id', Value: RUN_ID },
          { Key: 'ami-pipeline:app-id', Value: 'sample-app' },
          { Key: 'ami-pipeline:stage', Value: 'dev' },
        ],
      });
    });

    it('merges the run, the release, the checked app config and the platform names into the run config', async () => {
      await run(taskInput(), deps);

      const runConfig = JSON.parse(storedValue());
      expect(runConfig).toEqual({
        schemaVersion: 1,
        run: {
          runId: RUN_ID,
          executionArn: EXECUTION_ARN,
          startedAt: STARTED_AT,
          stage: 'dev',
          region: 'eu-west-1',
        },
        release: {
          appId: 'sample-app',
          environment: 'dev',
          version: '1.4.2',
          buildId: BUILD_ID,
          kind: 'release',
          requestedBy: 'jenkins@ci.example.com',
          artifact: taskInput().trigger.artifact,
          appConfigUri: `s3://${ARTIFACTS_BUCKET}/${APP_CONFIG_KEY}`,
        },
        app: sampleAppConfig(),
        platform: {
          kmsKeyArn: TEST_ENV.KMS_KEY_ARN,
          artifactsBucket: TEST_ENV.ARTIFACTS_BUCKET,
          reportsBucket: TEST_ENV.REPORTS_BUCKET,
          logsBucket: TEST_ENV.LOGS_BUCKET,
          tags: {
            'ami-pipeline:run-id': RUN_ID,
            'ami-pipeline:app-id': 'sample-app',
            'ami-pipeline:stage': 'dev',
          },
        },
      });
    });

    it('fills schema defaults the app team left out', async () => {
      givenAppConfig((config) => {
        delete bakeOf(config).volumeSizeGiB;
        delete config.logGroups;
        delete config.traffic;
      });

      await run(taskInput(), deps);

      const { app } = JSON.parse(storedValue());
      expect(app.bake.volumeSizeGiB).toBe(20);
      expect(app.logGroups).toEqual([]);
      expect(app.traffic).toEqual({ steps: [10, 50, 100], soakSeconds: 300, max5xxRate: 0.01 });
    });

    it('returns only the parameter name and version', async () => {
      ssmMock.on(PutParameterCommand).resolves({ Version: 3, Tier: 'Standard' });

      const output = await run(taskInput(), deps);

      expect(output).toStrictEqual({ runConfigParameter: PARAMETER_NAME, runConfigVersion: 3 });
    });

    it('keeps a secret Chef attribute inside the SecureString value only', async () => {
      givenAppConfig((config) => {
        bakeOf(config).chefAttributes = { sample_app: { listen_port: 8080, db_password: SECRET } };
      });

      const output = await run(taskInput(), deps);

      expect(JSON.stringify(output)).not.toContain(SECRET);
      expect(storedValue()).toContain(SECRET);
      expect(JSON.stringify(auditItems())).not.toContain(SECRET);
      expect(JSON.stringify(ssmMock.commandCalls(PutParameterCommand)[0]?.args[0].input.Tags)).not.toContain(
        SECRET,
      );
    });

    it('records the run as RUNNING, the parameter as a resource and the PRE_PROVISIONED event', async () => {
      await run(taskInput(), deps);

      expect(dbMock).toHaveReceivedCommandTimes(PutCommand, 3);
      expect(auditItems()).toEqual([
        {
          pk: 'APP#sample-app',
          sk: `RUN#${STARTED_AT}#${RUN_ID}`,
          entity: 'RUN',
          runId: RUN_ID,
          appId: 'sample-app',
          environment: 'dev',
          version: '1.4.2',
          buildId: BUILD_ID,
          kind: 'release',
          requestedBy: 'jenkins@ci.example.com',
          executionArn: EXECUTION_ARN,
          startedAt: STARTED_AT,
          status: 'RUNNING',
          gsi1pk: `RUN#${RUN_ID}`,
          gsi1sk: 'RUN',
          gsi2pk: 'ENV#dev',
          gsi2sk: `${STARTED_AT}#RUN#${RUN_ID}`,
        },
        expect.objectContaining({
          pk: `RUN#${RUN_ID}`,
          sk: `RESOURCE#PARAMETER#${PARAMETER_NAME}`,
          entity: 'RESOURCE',
          resourceType: 'PARAMETER',
          resourceId: PARAMETER_NAME,
          executionArn: EXECUTION_ARN,
          buildId: BUILD_ID,
          createdAt: NOW,
          detail: {
            version: 1,
            tier: 'Standard',
            bytes: Buffer.byteLength(storedValue(), 'utf8'),
            kmsKeyArn: TEST_ENV.KMS_KEY_ARN,
          },
          gsi1pk: `RESOURCE#${PARAMETER_NAME}`,
        }),
        expect.objectContaining({
          pk: `RUN#${RUN_ID}`,
          sk: `EVENT#${NOW}#PRE_PROVISIONED`,
          entity: 'EVENT',
          type: 'PRE_PROVISIONED',
          stage: 'PreProvision',
          detail: { runConfigParameter: PARAMETER_NAME, runConfigVersion: 1 },
        }),
      ]);
    });

    it('reads an inline config the trigger stored as JSON', async () => {
      s3Mock.on(GetObjectCommand).resolves({ Body: s3Body(JSON.stringify(sampleAppConfig())) });

      const output = await run(taskInput(), deps);

      expect(output.runConfigParameter).toBe(PARAMETER_NAME);
      expect(JSON.parse(storedValue()).app).toEqual(sampleAppConfig());
    });

    it('switches to the advanced tier when the run config exceeds 4096 bytes', async () => {
      givenAppConfig((config) => {
        bakeOf(config).chefAttributes = { sample_app: { banner: 'x'.repeat(4000) } };
      });

      await run(taskInput(), deps);

      expect(Buffer.byteLength(storedValue(), 'utf8')).toBeGreaterThan(4096);
      expect(ssmMock).toHaveReceivedCommandWith(PutParameterCommand, { Tier: 'Advanced' });
    });

    it('overwrites and re-tags the parameter when a retried invocation finds it already written', async () => {
      ssmMock
        .on(PutParameterCommand)
        .rejectsOnce(new ParameterAlreadyExists({ message: 'exists', $metadata: {} }))
        .resolves({ Version: 2, Tier: 'Standard' });
      ssmMock.on(AddTagsToResourceCommand).resolves({});

      const output = await run(taskInput(), deps);

      expect(output).toEqual({ runConfigParameter: PARAMETER_NAME, runConfigVersion: 2 });
      expect(ssmMock).toHaveReceivedNthSpecificCommandWith(2, PutParameterCommand, {
        Name: PARAMETER_NAME,
        Overwrite: true,
        KeyId: TEST_ENV.KMS_KEY_ARN,
      });
      expect(ssmMock).toHaveReceivedCommandWith(AddTagsToResourceCommand, {
        ResourceType: 'Parameter',
        ResourceId: PARAMETER_NAME,
      });
    });
  });

  describe('with an app config that cannot be used', () => {
    it('lists every rule violation in one AppConfigInvalidError and stores nothing', async () => {
      givenAppConfig((config) => {
        bakeOf(config).instanceType = 'c5.4xlarge';
        runtimeOf(config).maxSize = 9;
        config.services = ['s3', 'ec2'];
        config.logGroups = [{ name: '/app/sample-app/application', retentionDays: 7 }];
        config.tags = { 'cost-centre': '4711' };
      });

      const err = await failureOf(taskInput());

      expect(err).toBeInstanceOf(AppConfigInvalidError);
      expect(err).toHaveProperty('name', 'AppConfigInvalidError');
      expect(err).toHaveProperty('violations', [
        'appConfig.bake.instanceType: c5.4xlarge is not allowed (allowed: t3.medium, t3.large, m5.large, m6i.large)',
        'appConfig.runtime.maxSize: 9 is above the dev maximum of 4',
        'appConfig.services[1]: ec2 is not an allowed AWS service (allowed: s3, dynamodb, sqs, sns, kms, ssm, secretsmanager, cloudwatch, logs, xray)',
        'appConfig.tags.data-classification: is required by platform rules',
        'appConfig.logGroups[0].retentionDays: 7 is below the platform minimum of 30',
      ]);
      expect(ssmMock).toHaveReceivedCommandTimes(PutParameterCommand, 0);
    });

    it('rejects sample-app for a prod run, listing each prod rule it breaks', async () => {
      const prodDeps = { ...deps, stage: loadStageConfig('prod', CONFIG_DIR) };

      const err = await failureOf(taskInput('prod'), prodDeps);

      expect(err).toBeInstanceOf(AppConfigInvalidError);
      expect(err).toHaveProperty('violations', [
        'appConfig.runtime.instanceType: t3.small is not allowed in prod (allowed: m5.large, m5.xlarge, m6i.large, m6i.xlarge, c5.large)',
        'appConfig.runtime.minSize: 1 is below the prod minimum of 2',
        'appConfig.inspec.allowedFailedControls: 2 exceeds the prod limit of 0',
      ]);
    });

    it('names schema errors with the appConfig. prefix', async () => {
      givenAppConfig((config) => {
        config.owner = { team: 'payments-platform', email: 'not-an-email' };
        config.shareWithAccountId = '1111';
        runtimeOf(config).port = 70000;
        config.debug = true;
        config.traffic = { steps: [50, 10, 100], soakSeconds: 300, max5xxRate: 0.01 };
      });

      const err = await failureOf(taskInput());

      expect(err).toBeInstanceOf(AppConfigInvalidError);
      expect(err).toHaveProperty('violations', [
        'appConfig.owner.email: Invalid email address',
        'appConfig.shareWithAccountId: must be a 12-digit AWS account id',
        'appConfig.runtime.port: Too big: expected number to be <=65535',
        'appConfig.traffic.steps: steps must increase',
        'appConfig: unknown field(s) "debug" (not in schemaVersion 1)',
      ]);
      expect(ssmMock).toHaveReceivedCommandTimes(PutParameterCommand, 0);
    });

    it('names a missing section as required', async () => {
      givenAppConfig((config) => {
        delete config.inspec;
      });

      const err = await failureOf(taskInput());

      expect(err).toHaveProperty('violations', ['appConfig.inspec: is required (object)']);
    });

    it("refuses a config whose appId differs from the trigger's", async () => {
      givenAppConfig((config) => {
        config.appId = 'billing-app';
        config.logGroups = [{ name: '/app/billing-app/application', retentionDays: 90 }];
      });

      const err = await failureOf(taskInput());

      expect(err).toBeInstanceOf(AppConfigInvalidError);
      expect(err).toHaveProperty('violations', [
        'appConfig.appId: "billing-app" does not match the trigger\'s appId "sample-app"',
      ]);
      expect(ssmMock).toHaveReceivedCommandTimes(PutParameterCommand, 0);
    });

    it('refuses a config that is neither YAML nor JSON', async () => {
      s3Mock.on(GetObjectCommand).resolves({ Body: s3Body('appId: [unclosed') });

      const err = await failureOf(taskInput());

      expect(err).toBeInstanceOf(AppConfigInvalidError);
      expect(err).toHaveProperty('violations', [
        expect.stringMatching(/^appConfig: is not valid YAML or JSON/),
      ]);
    });

    it('refuses a config with a duplicated key rather than silently keeping one value', async () => {
      s3Mock.on(GetObjectCommand).resolves({ Body: s3Body(`${SAMPLE_APP_YAML}\nappId: sample-app\n`) });

      const err = await failureOf(taskInput());

      expect(err).toBeInstanceOf(AppConfigInvalidError);
    });

    it('throws RunConfigTooLargeError when the run config exceeds 8192 bytes, storing nothing', async () => {
      givenAppConfig((config) => {
        bakeOf(config).chefAttributes = { sample_app: { banner: 'x'.repeat(8200) } };
      });

      const err = await failureOf(taskInput());

      expect(err).toBeInstanceOf(RunConfigTooLargeError);
      expect(err).toHaveProperty('name', 'RunConfigTooLargeError');
      expect(ssmMock).toHaveReceivedCommandTimes(PutParameterCommand, 0);
    });

    it('throws AppConfigNotFoundError naming the URI when the object does not exist', async () => {
      s3Mock
        .on(GetObjectCommand)
        .rejects(new NoSuchKey({ message: 'The specified key does not exist.', $metadata: {} }));

      const err = await failureOf(taskInput());

      expect(err).toBeInstanceOf(AppConfigNotFoundError);
      expect(err).toHaveProperty('name', 'AppConfigNotFoundError');
      expect(err).toHaveProperty(
        'message',
        `app config s3://${ARTIFACTS_BUCKET}/${APP_CONFIG_KEY} does not exist`,
      );
      expect(err).toHaveProperty('cause', expect.any(NoSuchKey));
      expect(ssmMock).toHaveReceivedCommandTimes(PutParameterCommand, 0);
    });

    it('propagates other S3 failures unchanged so the state machine retries them', async () => {
      const denied = new Error('Access Denied');
      s3Mock.on(GetObjectCommand).rejects(denied);

      await expect(run(taskInput(), deps)).rejects.toBe(denied);
    });
  });

  describe('with a task input that breaks its contract', () => {
    it('throws InvalidTaskInputError naming the field and touches nothing', async () => {
      const input = taskInput();
      const event = { ...input, run: { ...input.run, executionArn: 'not-an-arn' } };

      const err = await failureOf(event);

      expect(err).toBeInstanceOf(InvalidTaskInputError);
      expect(err).toHaveProperty('message', expect.stringContaining('run.executionArn'));
      expect(dbMock).toHaveReceivedCommandTimes(PutCommand, 0);
      expect(s3Mock).toHaveReceivedCommandTimes(GetObjectCommand, 0);
      expect(ssmMock).toHaveReceivedCommandTimes(PutParameterCommand, 0);
    });
  });
});
