import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { SignatureV4 } from '@smithy/signature-v4';
import type {
  AwsCredentialIdentity,
  AwsCredentialIdentityProvider,
  Checksum,
  SourceData,
} from '@smithy/types';
import { stackName } from '../context';
import { CliError } from '../errors';
import type { CommandResult } from '../output';

/** The stack output holding the approval function's URL (serverless.yml). */
export const APPROVAL_URL_OUTPUT = 'ApprovalFunctionUrl';

export type DecisionKind = 'approve' | 'reject';

export interface DecisionRequest {
  url: string;
  region: string;
  runId: string;
  decision: DecisionKind;
  reason?: string | undefined;
}

export interface DecisionDeps {
  fetch: typeof fetch;
  credentials: AwsCredentialIdentity | AwsCredentialIdentityProvider;
}

/** SHA-256 (HMAC with a secret) for the SigV4 signer, from node:crypto: no extra dependency. */
class Sha256 implements Checksum {
  private hash: Hash | Hmac;

  constructor(private readonly secret?: SourceData) {
    this.hash = this.fresh();
  }

  update(data: Uint8Array | string): void {
    this.hash.update(data);
  }

  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }

  reset(): void {
    this.hash = this.fresh();
  }

  private fresh(): Hash | Hmac {
    if (this.secret === undefined) return createHash('sha256');
    const key =
      typeof this.secret === 'string'
        ? this.secret
        : ArrayBuffer.isView(this.secret)
          ? new Uint8Array(this.secret.buffer, this.secret.byteOffset, this.secret.byteLength)
          : new Uint8Array(this.secret);
    return createHmac('sha256', key);
  }
}

/** The caller's credentials: the SDK's default chain (env, profile, SSO, instance role …). */
export const defaultDecisionDeps = (profile?: string): DecisionDeps => ({
  fetch: globalThis.fetch,
  credentials: defaultProvider(profile ? { profile } : {}),
});

/** The approval function's URL from the stage's stack outputs (one DescribeStacks). */
export const approvalUrl = async (
  stage: string,
  config: { region: string; profile?: string | undefined },
): Promise<string> => {
  const cfn = new CloudFormationClient({
    region: config.region,
    ...(config.profile ? { profile: config.profile } : {}),
  });
  try {
    const { Stacks } = await cfn.send(new DescribeStacksCommand({ StackName: stackName(stage) }));
    const url = Stacks?.[0]?.Outputs?.find((o) => o.OutputKey === APPROVAL_URL_OUTPUT)?.OutputValue;
    if (!url) {
      throw new CliError(
        `stack ${stackName(stage)} in ${config.region} has no output ${APPROVAL_URL_OUTPUT} (deployed from an older version? run serverless deploy --stage ${stage}, or pass --url)`,
      );
    }
    return url;
  } finally {
    cfn.destroy();
  }
};

/**
 * Posts a decision to the approval function's URL, signed with SigV4 for the `lambda` service (the
 * URL's AuthType is AWS_IAM: Lambda checks the signature and the caller's permission). Returns the
 * status and the function's answer; a refusal (403, 409, 410 …) is a CliError with its message.
 */
export const sendDecision = async (request: DecisionRequest, deps: DecisionDeps) => {
  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    throw new CliError(`--url ${request.url} is not a URL`, 2);
  }
  if (url.protocol !== 'https:' && url.hostname !== '127.0.0.1' && url.hostname !== 'localhost') {
    throw new CliError(`the approval URL must use https, not ${url.protocol}`, 2);
  }
  const body = JSON.stringify({
    runId: request.runId,
    decision: request.decision,
    ...(request.reason === undefined ? {} : { reason: request.reason }),
  });
  const signer = new SignatureV4({
    service: 'lambda',
    region: request.region,
    credentials: deps.credentials,
    sha256: Sha256,
  });
  const signed = await signer.sign({
    method: 'POST',
    protocol: url.protocol,
    hostname: url.hostname,
    ...(url.port ? { port: Number(url.port) } : {}),
    path: url.pathname || '/',
    query: {},
    headers: { host: url.host, 'content-type': 'application/json' },
    body,
  });
  const response = await deps.fetch(url, { method: 'POST', headers: signed.headers, body });
  const text = await response.text();
  let answer: Record<string, unknown>;
  try {
    answer = JSON.parse(text) as Record<string, unknown>;
  } catch {
    answer = { message: text.trim() || response.statusText };
  }
  if (!response.ok) {
    // IAM refusing the signature or permission answers before the function runs, with `Message`.
    const message = String(answer.message ?? answer.Message ?? response.statusText);
    throw new CliError(`${request.decision} refused (HTTP ${response.status}): ${message}`);
  }
  return answer;
};

/** How the CLI prints an accepted decision. */
export const decisionResult = (answer: Record<string, unknown>): CommandResult => ({
  data: answer,
  tables: [
    {
      columns: ['runId', 'status', 'decidedBy', 'decidedAt', 'reason'],
      rows: [
        [
          String(answer.runId ?? ''),
          String(answer.status ?? ''),
          String(answer.decidedBy ?? ''),
          String(answer.decidedAt ?? ''),
          answer.reason === null || answer.reason === undefined ? '' : String(answer.reason),
        ],
      ],
    },
  ],
});
