// First import: the handler module reads its environment (requireEnv) when it is loaded.
import { TEST_ENV } from './support/env';
import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SendTaskFailureCommand, SendTaskSuccessCommand, SFNClient, TaskTimedOut } from '@aws-sdk/client-sfn';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { run as runApprovalWorker } from '../../functions/approval/handler';
import { run as runDecideFunction } from '../../functions/approval-decide/handler';
import { AuditRepository } from '../../shared/audit';
import { decideApproval, type DecideDeps } from '../../shared/approval/decide';
import { requestApproval, type ApprovalRequest, type RequestDeps } from '../../shared/approval/request';
import { ApprovalStore, type ApprovalItem } from '../../shared/approval/store';
import {
  expireApproval,
  verifyApproval,
  type ApprovalCheck,
  type VerifyDeps,
} from '../../shared/approval/verify';
import { logger } from '../../shared/logger';
import { approvalRequestedSchema } from '../../shared/notification';
import { inCallOrder } from './support/call-order';
import { EXECUTION_ARN, RUN_ID } from './support/fixtures';

const dbMock = mockClient(DynamoDBDocumentClient);
const sfnMock = mockClient(SFNClient);
const snsMock = mockClient(SNSClient);

const TOKEN = 'AQCEAAAAKgAAAAMAAAAAAAAAA-secret-approval-token-0f9e8d';
const ACCOUNT = '123456789012';
const APPROVER_ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/ami-pipeline-dev-approver`;
const APPROVER = `arn:aws:sts::${ACCOUNT}:assumed-role/ami-pipeline-dev-approver/alice@example.com`;
const OUTCOME_TOPIC = `arn:aws:sns:eu-west-1:${ACCOUNT}:ami-pipeline-dev-outcome`;
const NOW = new Date('2025-03-04T12:00:00.000Z');
const KEY = { pk: `APPROVAL#${RUN_ID}` };

const db = DynamoDBDocumentClient.from(new DynamoDBClient({}));
const deps: RequestDeps & DecideDeps & VerifyDeps = {
  approvals: new ApprovalStore(db, TEST_ENV.COORDINATION_TABLE),
  db,
  auditTable: TEST_ENV.AUDIT_TABLE,
  audit: new AuditRepository(db, TEST_ENV.AUDIT_TABLE),
  sns: new SNSClient({}),
  sfn: new SFNClient({}),
  outcomeTopicArn: OUTCOME_TOPIC,
  reportsBucket: TEST_ENV.REPORTS_BUCKET,
  stage: 'dev',
  approverRoleArn: APPROVER_ROLE_ARN,
  now: () => NOW,
};

const REQUEST: ApprovalRequest = {
  action: 'request',
  taskToken: TOKEN,
  run: { runId: RUN_ID, appId: 'sample-app', environment: 'dev', executionArn: EXECUTION_ARN },
  version: '1.4.2',
  buildId: 'sample-app-release#118',
  requestedBy: 'jenkins@example.com',
  amiId: 'ami-0a1b2c3d4e5f60718',
  validate: { passed: 41, failed: 1, skipped: 2, reportKey: `dev/sample-app/${RUN_ID}/validate/inspec.json` },
  timeoutSeconds: 86400,
};

const PENDING: ApprovalItem = {
  ...KEY,
  kind: 'APPROVAL',
  runId: RUN_ID,
  appId: 'sample-app',
  environment: 'dev',
  executionArn: EXECUTION_ARN,
  status: 'PENDING',
  taskToken: TOKEN,
  requestedAt: '2025-03-04T11:00:00.000Z',
  deadline: '2025-03-05T11:00:00.000Z',
  expiresAt: 1741777200,
  notifiedAt: '2025-03-04T11:00:00.000Z',
};

/** What Lambda hands the function for a Function URL request after AWS_IAM authentication. */
const urlEvent = (body: unknown, userArn: string | null = APPROVER, method = 'POST') => ({
  version: '2.0',
  rawPath: '/',
  requestContext: {
    http: { method, path: '/' },
    ...(userArn === null
      ? {}
      : { authorizer: { iam: { userArn, accountId: ACCOUNT, userId: 'AROAEXAMPLE:alice@example.com' } } }),
  },
  body: JSON.stringify(body),
  isBase64Encoded: false,
});

const bodyOf = (response: { body: string }) => JSON.parse(response.body) as Record<string, unknown>;

/** Everything the logger writes while `fn` runs, at DEBUG. */
const logsOf = async (fn: () => Promise<unknown>): Promise<string> => {
  const written: string[] = [];
  const capture = (chunk: unknown) => {
    written.push(String(chunk));
    return true;
  };
  const spies = [
    jest.spyOn(process.stdout, 'write').mockImplementation(capture),
    jest.spyOn(process.stderr, 'write').mockImplementation(capture),
    ...(['log', 'info', 'warn', 'error', 'debug'] as const).map((level) =>
      jest.spyOn(console, level).mockImplementation((...args: unknown[]) => void capture(args.join(' '))),
    ),
  ];
  logger.setLogLevel('DEBUG');
  try {
    await fn();
  } finally {
    logger.setLogLevel('SILENT');
    spies.forEach((spy) => spy.mockRestore());
  }
  return written.join('\n');
};

const conditionFailed = () =>
  new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });

beforeEach(() => {
  dbMock.on(QueryCommand).resolves({ Items: [] });
  dbMock.on(PutCommand).resolves({});
  dbMock.on(UpdateCommand).resolves({});
  dbMock.on(GetCommand).resolves({});
  snsMock.on(PublishCommand).resolves({ MessageId: 'm-1' });
  sfnMock.on(SendTaskSuccessCommand).resolves({});
  sfnMock.on(SendTaskFailureCommand).resolves({});
});

afterEach(() => {
  dbMock.reset();
  sfnMock.reset();
  snsMock.reset();
});

describe('approval worker: a request from AwaitApproval', () => {
  beforeEach(() => {
    const { notifiedAt: _notified, ...fresh } = PENDING;
    dbMock.on(UpdateCommand, { Key: KEY, ReturnValues: 'ALL_NEW' }).resolves({
      Attributes: { ...fresh, requestedAt: NOW.toISOString(), deadline: '2025-03-05T12:00:00.000Z' },
    });
  });

  it('parks the token under APPROVAL#<runId>, audits the request and asks the outcome topic for a decision', async () => {
    const outcome = await requestApproval(REQUEST, deps);

    expect(dbMock).toHaveReceivedCommandWith(UpdateCommand, {
      TableName: TEST_ENV.COORDINATION_TABLE,
      Key: KEY,
      ConditionExpression: 'attribute_not_exists(pk) OR #status IN (:pending, :expired)',
      ExpressionAttributeValues: expect.objectContaining({
        ':token': TOKEN,
        ':pending': 'PENDING',
        ':deadline': '2025-03-05T12:00:00.000Z',
        // The table's TTL attribute: a week after the deadline.
        ':expiresAt': Date.parse('2025-03-12T12:00:00.000Z') / 1000,
      }),
    });
    expect(dbMock).toHaveReceivedCommandWith(PutCommand, {
      TableName: TEST_ENV.AUDIT_TABLE,
      Item: expect.objectContaining({
        pk: `RUN#${RUN_ID}`,
        type: 'APPROVAL_REQUESTED',
        stage: 'Approval',
        detail: expect.objectContaining({
          amiId: REQUEST.amiId,
          inspec: { passed: 41, failed: 1, skipped: 2 },
        }),
      }),
    });
    const published = snsMock.commandCalls(PublishCommand)[0]?.args[0].input;
    expect(published?.TopicArn).toBe(OUTCOME_TOPIC);
    expect(published?.MessageAttributes?.status).toEqual({
      DataType: 'String',
      StringValue: 'APPROVAL_REQUESTED',
    });
    const message = JSON.parse(String(published?.Message)) as Record<string, unknown>;
    expect(approvalRequestedSchema.safeParse(message).error?.issues ?? []).toEqual([]);
    expect(message).toMatchObject({
      runId: RUN_ID,
      appId: 'sample-app',
      version: '1.4.2',
      amiId: REQUEST.amiId,
      inspec: { passed: 41, failed: 1, skipped: 2 },
      report: `s3://${TEST_ENV.REPORTS_BUCKET}/${REQUEST.validate.reportKey}`,
      expiresAt: '2025-03-05T12:00:00.000Z',
      approveCommand: `ami-pipeline --stage dev approve ${RUN_ID} --reason "<why>"`,
      rejectCommand: `ami-pipeline --stage dev reject ${RUN_ID} --reason "<why>"`,
    });
    expect(dbMock).toHaveReceivedCommandWith(UpdateCommand, {
      Key: KEY,
      UpdateExpression: 'SET notifiedAt = :at',
    });
    expect(outcome).toEqual({
      runId: RUN_ID,
      status: 'PENDING',
      requestedAt: NOW.toISOString(),
      expiresAt: '2025-03-05T12:00:00.000Z',
      notified: true,
    });
  });

  it('never lets the token into its result, its logs, the notification or the audit table', async () => {
    let outcome: unknown;
    const logs = await logsOf(async () => {
      outcome = await requestApproval(REQUEST, deps);
    });

    expect(logs).toContain('approval requested');
    expect(logs).not.toContain(TOKEN);
    expect(JSON.stringify(outcome)).not.toContain(TOKEN);
    expect(JSON.stringify(snsMock.calls().map((c) => c.args[0].input))).not.toContain(TOKEN);
    expect(JSON.stringify(dbMock.commandCalls(PutCommand).map((c) => c.args[0].input))).not.toContain(TOKEN);
  });

  it('replaces the token on a retried attempt but does not ask for a decision twice', async () => {
    dbMock.on(UpdateCommand, { Key: KEY, ReturnValues: 'ALL_NEW' }).resolves({ Attributes: PENDING });

    const outcome = await requestApproval({ ...REQUEST, taskToken: `${TOKEN}-retry` }, deps);

    expect(dbMock).toHaveReceivedCommandWith(UpdateCommand, {
      Key: KEY,
      ExpressionAttributeValues: expect.objectContaining({ ':token': `${TOKEN}-retry` }),
    });
    expect(snsMock).toHaveReceivedCommandTimes(PublishCommand, 0);
    expect(outcome.notified).toBe(true);
  });

  it("answers a retried attempt's new token with the decision already made", async () => {
    dbMock.on(UpdateCommand, { Key: KEY, ReturnValues: 'ALL_NEW' }).rejects(conditionFailed());
    dbMock.on(GetCommand, { Key: KEY }).resolves({
      Item: {
        ...PENDING,
        taskToken: undefined,
        status: 'REJECTED',
        decidedBy: APPROVER,
        decidedAt: '2025-03-04T11:30:00.000Z',
        reason: 'no',
      },
    });

    await requestApproval({ ...REQUEST, taskToken: `${TOKEN}-retry` }, deps);

    expect(sfnMock).toHaveReceivedCommandWith(SendTaskFailureCommand, {
      taskToken: `${TOKEN}-retry`,
      error: 'ApprovalRejectedError',
      cause: `rejected by ${APPROVER}: no`,
    });
    expect(snsMock).toHaveReceivedCommandTimes(PublishCommand, 0);
  });

  it("marks the decision applied before it answers the retry's new token with it", async () => {
    dbMock.on(UpdateCommand, { Key: KEY, ReturnValues: 'ALL_NEW' }).rejects(conditionFailed());
    dbMock.on(GetCommand, { Key: KEY }).resolves({
      Item: { ...PENDING, status: 'APPROVED', decidedBy: APPROVER, decidedAt: '2025-03-04T11:30:00.000Z' },
    });

    await requestApproval({ ...REQUEST, taskToken: `${TOKEN}-retry` }, deps);

    const marked = dbMock
      .commandCalls(UpdateCommand)
      .find((c) => c.args[0].input.ConditionExpression === '#status = :decision AND decidedAt = :decidedAt');
    expect(marked?.args[0].input.ExpressionAttributeValues).toMatchObject({
      ':decision': 'APPROVED',
      ':decidedAt': '2025-03-04T11:30:00.000Z',
      ':by': 'request',
    });
    expect(inCallOrder(marked, sfnMock.commandCalls(SendTaskSuccessCommand)[0])).toBe(true);
  });

  it('parks the new token instead when the decision was expired before it could be applied', async () => {
    dbMock
      .on(UpdateCommand, { Key: KEY, ReturnValues: 'ALL_NEW' })
      .rejectsOnce(conditionFailed())
      .resolves({ Attributes: PENDING });
    dbMock.on(GetCommand, { Key: KEY }).resolves({
      Item: { ...PENDING, status: 'APPROVED', decidedBy: APPROVER, decidedAt: '2025-03-04T11:30:00.000Z' },
    });
    dbMock
      .on(UpdateCommand, { Key: KEY, ConditionExpression: '#status = :decision AND decidedAt = :decidedAt' })
      .rejects(conditionFailed());

    const outcome = await requestApproval({ ...REQUEST, taskToken: `${TOKEN}-retry` }, deps);

    expect(outcome.status).toBe('PENDING');
    expect(sfnMock.calls()).toHaveLength(0);
    expect(
      dbMock.commandCalls(UpdateCommand).filter((c) => c.args[0].input.ReturnValues === 'ALL_NEW'),
    ).toHaveLength(2);
  });

  it("does not answer a token with another execution's decision", async () => {
    dbMock.on(UpdateCommand, { Key: KEY, ReturnValues: 'ALL_NEW' }).rejects(conditionFailed());
    dbMock.on(GetCommand, { Key: KEY }).resolves({
      Item: { ...PENDING, status: 'APPROVED', decidedBy: APPROVER, decidedAt: '2025-03-04T11:30:00.000Z' },
    });

    await expect(
      requestApproval(
        {
          ...REQUEST,
          taskToken: 'someone-elses-token',
          run: { ...REQUEST.run, executionArn: `${EXECUTION_ARN}-x` },
        },
        deps,
      ),
    ).rejects.toThrow('belongs to another execution');
    expect(sfnMock.calls()).toHaveLength(0);
  });
});

describe('approval worker: a decision through the Function URL', () => {
  beforeEach(() => {
    dbMock.on(GetCommand, { Key: KEY }).resolves({ Item: PENDING });
  });

  it('approves: records the decision once, audits who, when and why, then answers the token', async () => {
    const response = await decideApproval(
      urlEvent({ runId: RUN_ID, decision: 'approve', reason: 'CAB-1234' }),
      deps,
    );

    expect(response.statusCode).toBe(200);
    expect(bodyOf(response)).toEqual({
      runId: RUN_ID,
      appId: 'sample-app',
      environment: 'dev',
      status: 'APPROVED',
      decidedBy: APPROVER,
      decidedAt: NOW.toISOString(),
      reason: 'CAB-1234',
    });
    expect(dbMock).toHaveReceivedCommandWith(UpdateCommand, {
      Key: KEY,
      ConditionExpression: '#status = :pending AND taskToken = :token',
      ExpressionAttributeValues: expect.objectContaining({ ':decision': 'APPROVED', ':by': APPROVER }),
    });
    expect(dbMock).toHaveReceivedCommandWith(PutCommand, {
      TableName: TEST_ENV.AUDIT_TABLE,
      Item: expect.objectContaining({
        type: 'APPROVED',
        at: NOW.toISOString(),
        detail: expect.objectContaining({
          principal: APPROVER,
          reason: 'CAB-1234',
          decidedAt: NOW.toISOString(),
        }),
      }),
    });
    expect(sfnMock).toHaveReceivedCommandWith(SendTaskSuccessCommand, {
      taskToken: TOKEN,
      output: JSON.stringify({ approvedBy: APPROVER, approvedAt: NOW.toISOString(), reason: 'CAB-1234' }),
    });
    // Applied by this decision, and the token is not kept.
    expect(dbMock).toHaveReceivedCommandWith(UpdateCommand, {
      Key: KEY,
      UpdateExpression: expect.stringMatching(/^SET appliedAt = .* REMOVE taskToken$/),
      ExpressionAttributeValues: expect.objectContaining({ ':by': 'decision' }),
    });
  });

  it('rejects: fails the task with ApprovalRejectedError, naming who rejected it and why', async () => {
    const response = await decideApproval(
      urlEvent({ runId: RUN_ID, decision: 'reject', reason: 'too many skipped controls' }),
      deps,
    );

    expect(response.statusCode).toBe(200);
    expect(sfnMock).toHaveReceivedCommandWith(SendTaskFailureCommand, {
      taskToken: TOKEN,
      error: 'ApprovalRejectedError',
      cause: `rejected by ${APPROVER}: too many skipped controls`,
    });
    expect(dbMock).toHaveReceivedCommandWith(PutCommand, {
      Item: expect.objectContaining({
        type: 'REJECTED',
        detail: expect.objectContaining({ principal: APPROVER }),
      }),
    });
  });

  it('never lets the token into its answer or its logs', async () => {
    let response: { body: string } | undefined;
    const logs = await logsOf(async () => {
      response = await decideApproval(urlEvent({ runId: RUN_ID, decision: 'approve' }), deps);
    });

    expect(logs).toContain('approval decided');
    expect(logs).not.toContain(TOKEN);
    expect(response?.body).not.toContain(TOKEN);
    expect(JSON.stringify(dbMock.commandCalls(PutCommand).map((c) => c.args[0].input))).not.toContain(TOKEN);
  });

  it.each([
    ['a session of another role', `arn:aws:sts::${ACCOUNT}:assumed-role/PlatformAdmin/mallory`],
    ['a session of the approver role of another account', APPROVER.replace(ACCOUNT, '210987654321')],
    ['a role whose name only starts like the approver role', APPROVER.replace('approver/', 'approver-x/')],
    ['an IAM user', `arn:aws:iam::${ACCOUNT}:user/alice`],
    ['the approver role itself rather than a session of it', APPROVER_ROLE_ARN],
    ['a caller IAM did not authenticate', null],
  ])('refuses %s with 403 and touches nothing', async (_case, userArn) => {
    const response = await decideApproval(
      urlEvent({ runId: RUN_ID, decision: 'approve', reason: 'ok' }, userArn),
      deps,
    );

    expect(response.statusCode).toBe(403);
    expect(bodyOf(response)).toMatchObject({ error: 'NotAnApproverError' });
    expect(dbMock.calls()).toHaveLength(0);
    expect(sfnMock.calls()).toHaveLength(0);
  });

  it.each<[string, unknown, RegExp]>([
    ['a rejection without a reason', { runId: RUN_ID, decision: 'reject' }, /^reason: is required to reject/],
    ['a blank reason', { runId: RUN_ID, decision: 'reject', reason: '   ' }, /^reason: must not be empty/],
    [
      'a reason over 500 characters',
      { runId: RUN_ID, decision: 'reject', reason: 'x'.repeat(501) },
      /^reason: /,
    ],
    ['an unknown decision', { runId: RUN_ID, decision: 'maybe', reason: 'x' }, /^decision: /],
    ['a malformed run id', { runId: 'run-1', decision: 'approve' }, /^runId: must be a run id/],
    ['a body that is not JSON', 'approve it', /must be JSON/],
  ])('refuses %s with 400, naming the field', async (_case, body, message) => {
    const event = urlEvent(body);
    if (typeof body === 'string') event.body = body;

    const response = await decideApproval(event, deps);

    expect(response.statusCode).toBe(400);
    expect(String(bodyOf(response).message)).toMatch(message);
    expect(sfnMock.calls()).toHaveLength(0);
  });

  it('answers 404 when the run never asked for approval', async () => {
    dbMock.on(GetCommand, { Key: KEY }).resolves({});

    const response = await decideApproval(urlEvent({ runId: RUN_ID, decision: 'approve' }), deps);

    expect(response.statusCode).toBe(404);
  });

  it('answers 409 to a second decision and changes nothing', async () => {
    dbMock.on(GetCommand, { Key: KEY }).resolves({
      Item: {
        ...PENDING,
        taskToken: undefined,
        status: 'APPROVED',
        decidedBy: APPROVER,
        decidedAt: '2025-03-04T11:30:00.000Z',
      },
    });

    const response = await decideApproval(
      urlEvent({ runId: RUN_ID, decision: 'reject', reason: 'late' }),
      deps,
    );

    expect(response.statusCode).toBe(409);
    expect(String(bodyOf(response).message)).toContain(`was approved by ${APPROVER}`);
    expect(dbMock).toHaveReceivedCommandTimes(UpdateCommand, 0);
    expect(sfnMock.calls()).toHaveLength(0);
  });

  it('answers 409 when another decision wins the race for the pending approval', async () => {
    dbMock
      .on(UpdateCommand, { Key: KEY, ConditionExpression: '#status = :pending AND taskToken = :token' })
      .rejects(conditionFailed());
    dbMock
      .on(GetCommand, { Key: KEY })
      .resolvesOnce({ Item: PENDING })
      .resolves({
        Item: { ...PENDING, status: 'REJECTED', decidedBy: 'someone', decidedAt: NOW.toISOString() },
      });

    const response = await decideApproval(urlEvent({ runId: RUN_ID, decision: 'approve' }), deps);

    expect(response.statusCode).toBe(409);
    expect(sfnMock.calls()).toHaveLength(0);
  });

  it('answers 410 and marks the approval EXPIRED when Step Functions says the task timed out', async () => {
    sfnMock
      .on(SendTaskSuccessCommand)
      .rejects(new TaskTimedOut({ message: 'Task Timed Out', $metadata: {} }));

    const response = await decideApproval(urlEvent({ runId: RUN_ID, decision: 'approve' }), deps);

    expect(response.statusCode).toBe(410);
    expect(bodyOf(response)).toMatchObject({ error: 'ApprovalExpiredError' });
    // Only its own decision on its own token, and never one a retried request applied.
    expect(dbMock).toHaveReceivedCommandWith(UpdateCommand, {
      Key: KEY,
      UpdateExpression: 'SET #status = :expired, expiredAt = :at REMOVE taskToken',
      ConditionExpression: 'taskToken = :token AND #status = :seen AND attribute_not_exists(appliedAt)',
      ExpressionAttributeValues: expect.objectContaining({ ':token': TOKEN, ':seen': 'APPROVED' }),
    });
    // The decision that came too late is on the record as not applied.
    expect(dbMock).toHaveReceivedCommandWith(PutCommand, {
      Item: expect.objectContaining({ type: 'DECISION_NOT_APPLIED' }),
    });
  });

  it("answers 200, not 410, when a retried AwaitApproval request applied the decision to its new token while this one's went stale", async () => {
    // The decision claims the pending item holding T1; AwaitApproval is retried with T2 meanwhile:
    // the retried request finds the decision, marks it applied and approves T2; then T1 is refused.
    sfnMock
      .on(SendTaskSuccessCommand, { taskToken: TOKEN })
      .rejects(new TaskTimedOut({ message: 'Task Timed Out', $metadata: {} }));
    dbMock
      .on(UpdateCommand, {
        Key: KEY,
        ConditionExpression: 'taskToken = :token AND #status = :seen AND attribute_not_exists(appliedAt)',
      })
      .rejects(conditionFailed());
    dbMock
      .on(GetCommand, { Key: KEY })
      .resolvesOnce({ Item: PENDING })
      .resolves({
        Item: {
          ...PENDING,
          status: 'APPROVED',
          decidedBy: APPROVER,
          decidedAt: NOW.toISOString(),
          appliedAt: NOW.toISOString(),
          appliedBy: 'request',
        },
      });

    const response = await decideApproval(urlEvent({ runId: RUN_ID, decision: 'approve' }), deps);

    expect(response.statusCode).toBe(200);
    expect(bodyOf(response)).toMatchObject({ status: 'APPROVED', decidedBy: APPROVER });
    // Nothing says it was not applied, and the item is not expired: it stays APPROVED.
    expect(dbMock).not.toHaveReceivedCommandWith(PutCommand, {
      Item: expect.objectContaining({ type: 'DECISION_NOT_APPLIED' }),
    });
    expect(
      dbMock
        .commandCalls(UpdateCommand)
        .filter((c) => c.args[0].input.UpdateExpression?.startsWith('SET #status = :expired'))
        .map((c) => c.args[0].input.ConditionExpression),
    ).toEqual(['taskToken = :token AND #status = :seen AND attribute_not_exists(appliedAt)']);
    expect(dbMock).toHaveReceivedCommandWith(UpdateCommand, {
      Key: KEY,
      UpdateExpression: expect.stringMatching(/REMOVE taskToken$/),
      ConditionExpression: '#status IN (:approved, :rejected)',
    });
  });

  it('answers 410 without calling Step Functions once the deadline has passed', async () => {
    dbMock
      .on(GetCommand, { Key: KEY })
      .resolves({ Item: { ...PENDING, deadline: '2025-03-04T11:59:59.000Z' } });

    const response = await decideApproval(urlEvent({ runId: RUN_ID, decision: 'approve' }), deps);

    expect(response.statusCode).toBe(410);
    expect(sfnMock.calls()).toHaveLength(0);
    // Only the pending item holding the token it read: not a retry's newer token.
    expect(dbMock).toHaveReceivedCommandWith(UpdateCommand, {
      Key: KEY,
      UpdateExpression: 'SET #status = :expired, expiredAt = :at REMOVE taskToken',
      ExpressionAttributeValues: expect.objectContaining({ ':token': TOKEN, ':seen': 'PENDING' }),
    });
  });

  it('puts the approval back to PENDING when Step Functions could not be reached, and says to try again', async () => {
    sfnMock.on(SendTaskSuccessCommand).rejects(
      Object.assign(new Error('throttled'), {
        name: 'ThrottlingException',
        $metadata: { httpStatusCode: 400 },
      }),
    );

    const response = await decideApproval(urlEvent({ runId: RUN_ID, decision: 'approve' }), deps);

    expect(response.statusCode).toBe(500);
    expect(response.body).not.toContain(TOKEN);
    expect(dbMock).toHaveReceivedCommandWith(UpdateCommand, {
      Key: KEY,
      UpdateExpression: 'SET #status = :pending REMOVE decidedBy, decidedAt, reason',
    });
  });

  it('refuses anything but POST', async () => {
    const response = await decideApproval(
      urlEvent({ runId: RUN_ID, decision: 'approve' }, APPROVER, 'GET'),
      deps,
    );

    expect(response.statusCode).toBe(400);
  });
});

describe('approval worker: VerifyApproval, after AwaitApproval was answered with success', () => {
  const CHECK: ApprovalCheck = { action: 'verify', run: REQUEST.run };
  const DECIDED_AT = '2025-03-04T11:30:00.000Z';
  const { taskToken: _token, ...decided } = PENDING;
  const APPROVED: ApprovalItem = {
    ...decided,
    status: 'APPROVED',
    decidedBy: APPROVER,
    decidedAt: DECIDED_AT,
    reason: 'CAB-1234',
    appliedAt: DECIDED_AT,
  };
  const EVENT_KEY = { pk: `RUN#${RUN_ID}`, sk: `EVENT#${DECIDED_AT}#APPROVED#${DECIDED_AT}` };
  const auditedEvent = {
    ...EVENT_KEY,
    entity: 'EVENT',
    type: 'APPROVED',
    detail: { principal: APPROVER, decidedAt: DECIDED_AT, reason: 'CAB-1234' },
  };

  beforeEach(() => {
    dbMock.on(GetCommand, { Key: KEY }).resolves({ Item: APPROVED });
    dbMock
      .on(GetCommand, { TableName: TEST_ENV.AUDIT_TABLE, Key: EVENT_KEY })
      .resolves({ Item: auditedEvent });
  });

  it("returns the approver's audited decision, read from the run's own approval item", async () => {
    await expect(verifyApproval(CHECK, deps)).resolves.toEqual({
      approvedBy: APPROVER,
      approvedAt: DECIDED_AT,
      reason: 'CAB-1234',
    });
    expect(dbMock).toHaveReceivedCommandWith(GetCommand, {
      TableName: TEST_ENV.AUDIT_TABLE,
      Key: EVENT_KEY,
      ConsistentRead: true,
    });
  });

  it.each<[string, Partial<ApprovalItem> | undefined, Record<string, unknown> | undefined, RegExp]>([
    [
      'the approval is still PENDING (the token was answered by someone else)',
      { status: 'PENDING' },
      auditedEvent,
      /is PENDING, not APPROVED/,
    ],
    ['the approval was REJECTED', { status: 'REJECTED' }, auditedEvent, /is REJECTED/],
    ['the run has no approval item', undefined, auditedEvent, /no approval item/],
    [
      'the item is of another execution',
      { executionArn: `${EXECUTION_ARN}-other` },
      auditedEvent,
      /another execution/,
    ],
    [
      'the approver is not a session of the approver role',
      { decidedBy: `arn:aws:sts::${ACCOUNT}:assumed-role/PlatformAdmin/mallory` },
      {
        ...auditedEvent,
        detail: {
          ...auditedEvent.detail,
          principal: `arn:aws:sts::${ACCOUNT}:assumed-role/PlatformAdmin/mallory`,
        },
      },
      /is not a session of/,
    ],
    ['the decision is not in the audit table', {}, undefined, /not in the audit table/],
    [
      'the audited decision names someone else',
      {},
      { ...auditedEvent, detail: { ...auditedEvent.detail, principal: APPROVER.replace('alice', 'bob') } },
      /not in the audit table/,
    ],
  ])('fails with ApprovalNotVerifiedError when %s', async (_case, item, event, message) => {
    dbMock
      .on(GetCommand, { Key: KEY })
      .resolves(item === undefined ? {} : { Item: { ...APPROVED, ...item } });
    dbMock
      .on(GetCommand, { TableName: TEST_ENV.AUDIT_TABLE, Key: EVENT_KEY })
      .resolves(event ? { Item: event } : {});

    const failure = verifyApproval(CHECK, deps);

    await expect(failure).rejects.toMatchObject({ name: 'ApprovalNotVerifiedError' });
    await expect(failure).rejects.toThrow(message);
  });
});

describe('approval worker: ExpireApproval, after the run left AwaitApproval without an approval', () => {
  it("expires the execution's approval only while it is PENDING, dropping the token", async () => {
    const outcome = await expireApproval({ action: 'expire', run: REQUEST.run }, deps);

    expect(outcome).toEqual({ runId: RUN_ID, expired: true });
    expect(dbMock).toHaveReceivedCommandWith(UpdateCommand, {
      Key: KEY,
      UpdateExpression: 'SET #status = :expired, expiredAt = :at REMOVE taskToken',
      ConditionExpression: '#status = :pending AND executionArn = :executionArn',
      ExpressionAttributeValues: expect.objectContaining({ ':executionArn': EXECUTION_ARN }),
    });
  });

  it('leaves a decided approval as it is', async () => {
    dbMock.on(UpdateCommand, { Key: KEY }).rejects(conditionFailed());

    await expect(expireApproval({ action: 'expire', run: REQUEST.run }, deps)).resolves.toEqual({
      runId: RUN_ID,
      expired: false,
    });
  });
});

describe('the two approval functions', () => {
  it("the state machine's worker refuses an event shaped like a Function URL request, even one claiming an approver", async () => {
    const forged = { ...urlEvent({ runId: RUN_ID, decision: 'approve' }), ...REQUEST };

    await expect(runApprovalWorker(forged, deps)).rejects.toMatchObject({ name: 'InvalidTaskInputError' });
    expect(dbMock.calls()).toHaveLength(0);
    expect(sfnMock.calls()).toHaveLength(0);
  });

  it("the approvers' function refuses a task's input (a direct invocation) with 400 and touches nothing", async () => {
    const response = await runDecideFunction(REQUEST, deps);

    expect(response.statusCode).toBe(400);
    expect(bodyOf(response)).toMatchObject({ error: 'InvalidDecisionError' });
    expect(dbMock.calls()).toHaveLength(0);
    expect(sfnMock.calls()).toHaveLength(0);
  });
});
