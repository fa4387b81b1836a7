// First import: the smoke-test handler reads its environment (requireEnv, stage config) when it is loaded.
import './support/env';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { run } from '../../functions/smoke-test/handler';
import { ConfigurationError, InvalidTaskInputError, SmokeTestFailedError } from '../../shared/errors';
import { smokeTest, type SmokeDeps, type SmokeInput } from '../../shared/release/smoke';
import type { RunConfig } from '../../shared/run-config';
import { RUN_CONFIG_PARAMETER, RUN_ID, RUN_REF, runConfigFixture } from './support/fixtures';

const ssmMock = mockClient(SSMClient);

const ALB_DNS = 'sample-app-dev-1234567890.eu-west-1.elb.amazonaws.com';
const HEALTH_URL = `http://${ALB_DNS}/health`;
const BASE_DELAY_MS = 250;
const SECRET = 'planted-secret-d41d8cd98f00';

const input = (albDns = ALB_DNS): SmokeInput => ({
  run: { ...RUN_REF },
  runConfigParameter: RUN_CONFIG_PARAMETER,
  provision: {
    launchTemplateId: 'lt-0a1b2c3d4e5f60718',
    asgName: `sample-app-dev-${RUN_ID}`,
    targetGroupArn:
      'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/sample-app-green/0123456789abcdef',
    albDns,
    terraformStateVersion: 'Vx1.c3RhdGUtdmVyc2lvbg',
  },
});

/** The ALB as the smoke test sees it: one answer (a status, or a thrown error) per request, in order. */
let fetchFake: jest.Mock<ReturnType<typeof fetch>, Parameters<typeof fetch>>;
let sleepFake: jest.Mock<Promise<void>, [number]>;
let deps: SmokeDeps;

const answers = (...outcomes: (number | Error)[]): void => {
  for (const outcome of outcomes) {
    if (typeof outcome === 'number') fetchFake.mockResolvedValueOnce(new Response(null, { status: outcome }));
    else fetchFake.mockRejectedValueOnce(outcome);
  }
};

const givenRunConfig = (config: RunConfig = runConfigFixture()): void => {
  ssmMock.on(GetParameterCommand, { Name: RUN_CONFIG_PARAMETER }).resolves({
    Parameter: { Name: RUN_CONFIG_PARAMETER, Type: 'SecureString', Value: JSON.stringify(config) },
  });
};

/** Runs the smoke test and returns what it threw (the test fails if it did not throw). */
const failureOf = async (smokeInput: SmokeInput = input()): Promise<unknown> => {
  try {
    await smokeTest(smokeInput, deps);
  } catch (err) {
    return err;
  }
  throw new Error('expected the smoke test to fail');
};

/** undici's error when nothing answers on the address. */
const connectionRefused = (): Error =>
  new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 10.0.1.17:80') });

beforeEach(() => {
  fetchFake = jest.fn<ReturnType<typeof fetch>, Parameters<typeof fetch>>();
  sleepFake = jest.fn<Promise<void>, [number]>(async () => undefined);
  deps = {
    ssm: new SSMClient({}),
    fetch: fetchFake,
    attempts: 4,
    baseDelayMs: BASE_DELAY_MS,
    timeoutMs: 5000,
    sleep: sleepFake,
  };
  givenRunConfig();
});

afterEach(() => {
  ssmMock.reset();
});

describe('smoke test', () => {
  describe('when green answers its health check', () => {
    it('reads the decrypted run config for the health check path and expected status', async () => {
      answers(200);

      await smokeTest(input(), deps);

      expect(ssmMock).toHaveReceivedCommandWith(GetParameterCommand, {
        Name: RUN_CONFIG_PARAMETER,
        WithDecryption: true,
      });
    });

    it('GETs the health check path through the ALB with the run header that routes to green', async () => {
      answers(200);

      await smokeTest(input(), deps);

      expect(fetchFake).toHaveBeenCalledTimes(1);
      const [url, init] = fetchFake.mock.calls[0] ?? [];
      expect(url).toBe(HEALTH_URL);
      expect(init?.method ?? 'GET').toBe('GET');
      expect(init?.headers).toEqual({ 'X-Ami-Pipeline-Run': RUN_ID });
    });

    it('bounds each request with a timeout and does not follow redirects', async () => {
      answers(200);

      await smokeTest(input(), deps);

      const [, init] = fetchFake.mock.calls[0] ?? [];
      expect(init?.signal).toBeInstanceOf(AbortSignal);
      expect(init?.redirect).toBe('manual');
    });

    it('returns the URL, the status and the number of attempts, without pausing', async () => {
      answers(200);

      const output = await smokeTest(input(), deps);

      expect(output).toStrictEqual({ url: HEALTH_URL, status: 200, attempts: 1 });
      expect(sleepFake).not.toHaveBeenCalled();
    });

    it("expects the app's own status, so a redirect the app promises passes and a 200 does not", async () => {
      const config = runConfigFixture();
      config.app.runtime.healthCheckExpectedStatus = 302;
      givenRunConfig(config);
      answers(200, 302);

      const output = await smokeTest(input(), deps);

      expect(output).toStrictEqual({ url: HEALTH_URL, status: 302, attempts: 2 });
    });

    it('uses the path the app configured', async () => {
      const config = runConfigFixture();
      config.app.runtime.healthCheckPath = '/internal/ready';
      givenRunConfig(config);
      answers(200);

      const output = await smokeTest(input(), deps);

      expect(fetchFake.mock.calls[0]?.[0]).toBe(`http://${ALB_DNS}/internal/ready`);
      expect(output.url).toBe(`http://${ALB_DNS}/internal/ready`);
    });

    it('keeps the port of an ALB reached by address', async () => {
      answers(200);

      const output = await smokeTest(input('127.0.0.1:49152'), deps);

      expect(fetchFake.mock.calls[0]?.[0]).toBe('http://127.0.0.1:49152/health');
      expect(output.url).toBe('http://127.0.0.1:49152/health');
    });
  });

  describe('when green is not ready yet', () => {
    it('retries a wrong status with exponential backoff until the expected one arrives', async () => {
      answers(503, 502, 404, 200);

      const output = await smokeTest(input(), deps);

      expect(output).toStrictEqual({ url: HEALTH_URL, status: 200, attempts: 4 });
      expect(fetchFake).toHaveBeenCalledTimes(4);
      expect(sleepFake.mock.calls).toEqual([[BASE_DELAY_MS], [2 * BASE_DELAY_MS], [4 * BASE_DELAY_MS]]);
    });

    it('retries when the request itself fails (refused, timed out)', async () => {
      answers(
        connectionRefused(),
        new DOMException('The operation was aborted due to timeout', 'TimeoutError'),
        200,
      );

      const output = await smokeTest(input(), deps);

      expect(output).toStrictEqual({ url: HEALTH_URL, status: 200, attempts: 3 });
      expect(sleepFake.mock.calls).toEqual([[BASE_DELAY_MS], [2 * BASE_DELAY_MS]]);
    });

    it('sends the run header on every attempt', async () => {
      answers(503, 200);

      await smokeTest(input(), deps);

      expect(fetchFake.mock.calls.map(([url, init]) => [url, init?.headers])).toEqual([
        [HEALTH_URL, { 'X-Ami-Pipeline-Run': RUN_ID }],
        [HEALTH_URL, { 'X-Ami-Pipeline-Run': RUN_ID }],
      ]);
    });
  });

  describe('when green never answers as expected', () => {
    it('throws SmokeTestFailedError after the configured attempts, pausing between them only', async () => {
      answers(503, 503, 503, 503, 200);

      const err = await failureOf();

      expect(err).toBeInstanceOf(SmokeTestFailedError);
      expect(err).toHaveProperty('name', 'SmokeTestFailedError');
      expect(fetchFake).toHaveBeenCalledTimes(4);
      expect(sleepFake.mock.calls).toEqual([[BASE_DELAY_MS], [2 * BASE_DELAY_MS], [4 * BASE_DELAY_MS]]);
    });

    it('names the URL, the header, the expected status, the attempts and the last status', async () => {
      answers(503, 503, 503, 502);

      const err = await failureOf();

      expect(err).toHaveProperty(
        'message',
        `GET ${HEALTH_URL} (green, X-Ami-Pipeline-Run: ${RUN_ID}) did not return 200 in 4 attempts; last: HTTP 502`,
      );
    });

    it('names the last error when the last attempt could not connect', async () => {
      answers(503, 503, 503, connectionRefused());

      const err = await failureOf();

      expect(err).toBeInstanceOf(SmokeTestFailedError);
      expect(err).toHaveProperty('message', expect.stringMatching(/; last: TypeError: fetch failed$/));
    });

    it('makes exactly one attempt, with no pause, when the stage allows one', async () => {
      deps = { ...deps, attempts: 1 };
      answers(500);

      const err = await failureOf();

      expect(err).toHaveProperty(
        'message',
        expect.stringContaining('did not return 200 in 1 attempts; last: HTTP 500'),
      );
      expect(sleepFake).not.toHaveBeenCalled();
    });

    it('keeps a secret in the run config out of the request and the error', async () => {
      const config = runConfigFixture();
      config.app.bake.chefAttributes = { sample_app: { db_password: SECRET } };
      givenRunConfig(config);
      answers(503, 503, 503, 503);

      const err = await failureOf();

      expect(JSON.stringify(fetchFake.mock.calls)).not.toContain(SECRET);
      expect(String(err)).not.toContain(SECRET);
    });
  });

  describe('before any request', () => {
    it('throws ConfigurationError and sends nothing when the run config does not match its schema', async () => {
      const config: Record<string, unknown> = { ...runConfigFixture() };
      delete config.app;
      ssmMock.on(GetParameterCommand).resolves({ Parameter: { Value: JSON.stringify(config) } });

      const err = await failureOf();

      expect(err).toBeInstanceOf(ConfigurationError);
      expect(fetchFake).not.toHaveBeenCalled();
    });
  });
});

describe('smoke-test worker', () => {
  it('throws InvalidTaskInputError naming the field when albDns is not a host name, and sends nothing', async () => {
    const event = input('http://alb.example.com/health');

    await expect(run(event, deps)).rejects.toThrow(InvalidTaskInputError);
    await expect(run(event, deps)).rejects.toThrow('provision.albDns');
    expect(fetchFake).not.toHaveBeenCalled();
    expect(ssmMock).toHaveReceivedCommandTimes(GetParameterCommand, 0);
  });

  it('runs the smoke test for a valid task input', async () => {
    answers(200);

    await expect(run(input(), deps)).resolves.toStrictEqual({ url: HEALTH_URL, status: 200, attempts: 1 });
  });
});
