import { createHash, createHmac } from 'node:crypto';
import { run } from '../../cli/main';
import type { Io } from '../../cli/output';

const URL_ = 'https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws/';
const RUN_ID = '0123456789abcdef0123';
const CREDENTIALS = { accessKeyId: 'AKIAEXAMPLEAPPROVER', secretAccessKey: 'approver-secret-key-for-tests' };

interface Sent {
  url: string;
  headers: Record<string, string>;
  body: string;
}

const harness = (answer: { status: number; body: unknown }) => {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (t) => void out.push(t), err: (t) => void err.push(t), isTTY: false };
  const sent: Sent[] = [];
  const fakeFetch = (async (url: URL, init: { headers: Record<string, string>; body: string }) => {
    sent.push({ url: String(url), headers: init.headers, body: init.body });
    return new Response(JSON.stringify(answer.body), { status: answer.status });
  }) as unknown as typeof fetch;
  const cli = (argv: string[]) =>
    run(argv, { io, decision: () => ({ fetch: fakeFetch, credentials: CREDENTIALS }) });
  return { cli, out, err, sent };
};

const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data).digest();
const sha256 = (data: string) => createHash('sha256').update(data).digest('hex');

/**
 * The SigV4 signature of a request, computed here from the AWS documentation's algorithm (not with
 * the signer the CLI uses), so the test fails if the CLI signs for the wrong service, region or body.
 */
const expectedSignature = (sent: Sent, region: string, service: string): string => {
  const amzDate = sent.headers['x-amz-date'] ?? '';
  const day = amzDate.slice(0, 8);
  const signedHeaders = Object.keys(sent.headers)
    .map((h) => h.toLowerCase())
    .filter((h) => h !== 'authorization')
    .sort();
  const canonicalHeaders = signedHeaders
    .map(
      (h) =>
        `${h}:${String(Object.entries(sent.headers).find(([k]) => k.toLowerCase() === h)?.[1]).trim()}\n`,
    )
    .join('');
  const canonicalRequest = [
    'POST',
    new URL(sent.url).pathname,
    '',
    canonicalHeaders,
    signedHeaders.join(';'),
    sha256(sent.body),
  ].join('\n');
  const scope = `${day}/${region}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n');
  const key = hmac(
    hmac(hmac(hmac(`AWS4${CREDENTIALS.secretAccessKey}`, day), region), service),
    'aws4_request',
  );
  return `AWS4-HMAC-SHA256 Credential=${CREDENTIALS.accessKeyId}/${scope}, SignedHeaders=${signedHeaders.join(';')}, Signature=${createHmac('sha256', key).update(toSign).digest('hex')}`;
};

describe('ami-pipeline approve and reject', () => {
  it('posts the decision to the approval URL signed with SigV4 for Lambda in the stage region, and prints the outcome', async () => {
    const { cli, out, sent } = harness({
      status: 200,
      body: {
        runId: RUN_ID,
        status: 'APPROVED',
        decidedBy: 'arn:aws:sts::1:assumed-role/x/alice',
        decidedAt: 'now',
        reason: 'CAB-1',
      },
    });

    const code = await cli([
      '--stage',
      'prod',
      '--output',
      'json',
      'approve',
      RUN_ID,
      '--reason',
      'CAB-1',
      '--url',
      URL_,
    ]);

    expect(code).toBe(0);
    expect(sent).toHaveLength(1);
    const [request] = sent as [Sent];
    expect(JSON.parse(request.body)).toEqual({ runId: RUN_ID, decision: 'approve', reason: 'CAB-1' });
    expect(request.headers.authorization).toBe(expectedSignature(request, 'eu-west-1', 'lambda'));
    expect(JSON.parse(out.join(''))).toMatchObject({ runId: RUN_ID, status: 'APPROVED' });
  });

  it('refuses to reject without --reason before sending anything', async () => {
    const { cli, sent, err } = harness({ status: 200, body: {} });

    const code = await cli(['--stage', 'prod', 'reject', RUN_ID, '--url', URL_]);

    expect(code).toBe(2);
    expect(err.join('')).toContain('--reason');
    expect(sent).toHaveLength(0);
  });

  it("exits 1 with the function's message when the decision is refused", async () => {
    const { cli, err } = harness({
      status: 410,
      body: { error: 'ApprovalExpiredError', message: `run ${RUN_ID} no longer waits for approval` },
    });

    const code = await cli(['--stage', 'prod', 'reject', RUN_ID, '--reason', 'no', '--url', URL_]);

    expect(code).toBe(1);
    expect(err.join('')).toContain(`reject refused (HTTP 410): run ${RUN_ID} no longer waits for approval`);
  });

  it("exits 1 with IAM's message when AWS refuses the signed request before the function runs", async () => {
    const { cli, err } = harness({ status: 403, body: { Message: 'Forbidden. For troubleshooting …' } });

    const code = await cli(['--stage', 'prod', 'approve', RUN_ID, '--url', URL_]);

    expect(code).toBe(1);
    expect(err.join('')).toContain('approve refused (HTTP 403): Forbidden.');
  });

  it('has no --local mode', async () => {
    const { cli, sent } = harness({ status: 200, body: {} });

    expect(await cli(['--local', 'approve', RUN_ID, '--url', URL_])).toBe(2);
    expect(sent).toHaveLength(0);
  });
});
