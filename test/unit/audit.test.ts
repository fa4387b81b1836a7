import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  InternalServerError,
} from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { AuditRepository, auditKeys, type ResourceRecord, type RunStarted } from '../../shared/audit';
import { AuditConflictError } from '../../shared/errors';

const dbMock = mockClient(DynamoDBDocumentClient);
const TABLE = 'ami-pipeline-dev-audit';
const audit = new AuditRepository(DynamoDBDocumentClient.from(new DynamoDBClient({})), TABLE);

const EXECUTION_ARN = 'arn:aws:states:eu-west-1:123456789012:execution:ami-pipeline-dev:sample-app-dev-r1';
const RUN: RunStarted = {
  runId: 'r1',
  appId: 'sample-app',
  environment: 'dev',
  version: '1.4.2',
  buildId: 'b-118',
  kind: 'release',
  requestedBy: 'jenkins',
  executionArn: EXECUTION_ARN,
  startedAt: '2025-03-04T10:00:02.000Z',
};
const RESOURCE: ResourceRecord = {
  runId: 'r1',
  appId: 'sample-app',
  environment: 'dev',
  executionArn: EXECUTION_ARN,
  buildId: 'b-118',
  version: '1.4.2',
  resourceType: 'AMI',
  resourceId: 'ami-0123456789abcdef0',
  createdAt: '2025-03-04T10:20:00.000Z',
};

const conditionFailed = () =>
  new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });

afterEach(() => {
  dbMock.reset();
});

describe('audit repository', () => {
  describe('recordRunStarted', () => {
    it('writes a RUNNING run item under APP#<appId> / RUN#<startedAt>#<runId>, only if it does not exist', async () => {
      dbMock.on(PutCommand).resolves({});

      await audit.recordRunStarted(RUN);

      expect(dbMock).toHaveReceivedCommandWith(PutCommand, {
        TableName: TABLE,
        ConditionExpression: 'attribute_not_exists(pk)',
        Item: {
          pk: 'APP#sample-app',
          sk: 'RUN#2025-03-04T10:00:02.000Z#r1',
          entity: 'RUN',
          ...RUN,
          status: 'RUNNING',
          gsi1pk: 'RUN#r1',
          gsi1sk: 'RUN',
          gsi2pk: 'ENV#dev',
          gsi2sk: '2025-03-04T10:00:02.000Z#RUN#r1',
        },
      });
    });

    it('accepts a retried write of the same run (same execution) without changing the item', async () => {
      dbMock.on(PutCommand).rejects(conditionFailed());
      dbMock.on(GetCommand).resolves({ Item: { ...RUN, status: 'SUCCEEDED' } });

      await expect(audit.recordRunStarted(RUN)).resolves.toBeUndefined();

      expect(dbMock).toHaveReceivedCommandWith(GetCommand, {
        TableName: TABLE,
        Key: auditKeys.run('sample-app', RUN.startedAt, 'r1'),
        ConsistentRead: true,
      });
      expect(dbMock).toHaveReceivedCommandTimes(PutCommand, 1);
    });

    it('throws AuditConflictError when another execution already owns the run item', async () => {
      dbMock.on(PutCommand).rejects(conditionFailed());
      dbMock.on(GetCommand).resolves({ Item: { ...RUN, executionArn: `${EXECUTION_ARN}-other` } });

      const attempt = audit.recordRunStarted(RUN);

      await expect(attempt).rejects.toThrow(AuditConflictError);
      await expect(attempt).rejects.toThrow(
        'audit item APP#sample-app / RUN#2025-03-04T10:00:02.000Z#r1 already exists with different content',
      );
    });

    it('throws AuditConflictError when the condition failed but the item cannot be read back', async () => {
      dbMock.on(PutCommand).rejects(conditionFailed());
      dbMock.on(GetCommand).resolves({});

      await expect(audit.recordRunStarted(RUN)).rejects.toThrow(AuditConflictError);
    });

    it('propagates other DynamoDB errors without reading the item', async () => {
      const failure = new InternalServerError({ message: 'internal', $metadata: {} });
      dbMock.on(PutCommand).rejects(failure);

      await expect(audit.recordRunStarted(RUN)).rejects.toBe(failure);
      expect(dbMock).toHaveReceivedCommandTimes(GetCommand, 0);
    });
  });

  describe('recordResource', () => {
    it('writes the resource under its run with indexes by resource id and by environment and time', async () => {
      dbMock.on(PutCommand).resolves({});

      await audit.recordResource({ ...RESOURCE, detail: { region: 'eu-west-1' } });

      expect(dbMock).toHaveReceivedCommandWith(PutCommand, {
        TableName: TABLE,
        ConditionExpression: 'attribute_not_exists(pk)',
        Item: {
          pk: 'RUN#r1',
          sk: 'RESOURCE#AMI#ami-0123456789abcdef0',
          entity: 'RESOURCE',
          ...RESOURCE,
          detail: { region: 'eu-west-1' },
          gsi1pk: 'RESOURCE#ami-0123456789abcdef0',
          gsi1sk: '2025-03-04T10:20:00.000Z#r1',
          gsi2pk: 'ENV#dev',
          gsi2sk: '2025-03-04T10:20:00.000Z#RESOURCE#ami-0123456789abcdef0',
        },
      });
    });

    it('accepts a retried write of the same resource by the same run', async () => {
      dbMock.on(PutCommand).rejects(conditionFailed());
      dbMock.on(GetCommand).resolves({ Item: { ...RESOURCE } });

      await expect(audit.recordResource(RESOURCE)).resolves.toBeUndefined();
    });
  });

  describe('recordEvent', () => {
    it('writes the event under its run, keyed by time and type', async () => {
      dbMock.on(PutCommand).resolves({});

      await audit.recordEvent({ runId: 'r1', type: 'BAKED', stage: 'Bake', at: '2025-03-04T10:20:00.000Z' });

      expect(dbMock).toHaveReceivedCommandWith(PutCommand, {
        Item: {
          pk: 'RUN#r1',
          sk: 'EVENT#2025-03-04T10:20:00.000Z#BAKED',
          entity: 'EVENT',
          runId: 'r1',
          type: 'BAKED',
          stage: 'Bake',
          at: '2025-03-04T10:20:00.000Z',
        },
        ConditionExpression: 'attribute_not_exists(pk)',
      });
    });

    it('appends the id to the sort key so two events of one type at the same instant both stay', async () => {
      dbMock.on(PutCommand).resolves({});
      const at = '2025-03-04T10:20:00.000Z';

      await audit.recordEvent({
        runId: 'r1',
        type: 'UNDONE',
        stage: 'Compensate',
        at,
        id: 'DELETE_SNAPSHOT#snap-1',
      });
      await audit.recordEvent({
        runId: 'r1',
        type: 'UNDONE',
        stage: 'Compensate',
        at,
        id: 'DELETE_SNAPSHOT#snap-2',
      });

      expect(dbMock.commandCalls(PutCommand).map((call) => call.args[0].input.Item?.sk)).toEqual([
        `EVENT#${at}#UNDONE#DELETE_SNAPSHOT#snap-1`,
        `EVENT#${at}#UNDONE#DELETE_SNAPSHOT#snap-2`,
      ]);
      expect(dbMock).toHaveReceivedCommandWith(PutCommand, {
        Item: expect.objectContaining({ pk: 'RUN#r1', id: 'DELETE_SNAPSHOT#snap-1', type: 'UNDONE' }),
      });
    });

    it('accepts a retried write of an event that is already recorded', async () => {
      dbMock.on(PutCommand).rejects(conditionFailed());
      dbMock.on(GetCommand).resolves({ Item: { pk: 'RUN#r1', sk: 'EVENT#2025-03-04T10:20:00.000Z#BAKED' } });

      await expect(
        audit.recordEvent({ runId: 'r1', type: 'BAKED', stage: 'Bake', at: '2025-03-04T10:20:00.000Z' }),
      ).resolves.toBeUndefined();
    });
  });

  describe('recordRejection', () => {
    it('writes a REJECTED item per environment, keyed by receipt time and SNS message id', async () => {
      dbMock.on(PutCommand).resolves({});
      const rejection = {
        environment: 'dev',
        messageId: 'sns-1',
        receivedAt: '2025-03-04T10:00:01.000Z',
        topicArn: 'arn:aws:sns:eu-west-1:123456789012:trigger',
        reason: 'version: must match',
        violations: ['version: must match'],
        appId: 'sample-app',
        messageSha256: 'f'.repeat(64),
        excerpt: '{"version":""}',
        queueMessageId: 'q-1',
      };

      await audit.recordRejection(rejection);

      expect(dbMock).toHaveReceivedCommandWith(PutCommand, {
        TableName: TABLE,
        ConditionExpression: 'attribute_not_exists(pk)',
        Item: {
          pk: 'REJECTED#dev',
          sk: '2025-03-04T10:00:01.000Z#sns-1',
          entity: 'REJECTION',
          status: 'REJECTED',
          ...rejection,
          gsi2pk: 'ENV#dev',
          gsi2sk: '2025-03-04T10:00:01.000Z#REJECTED#sns-1',
        },
      });
    });
  });

  describe('findRun', () => {
    it('finds the run item with one Query on the byResource index, keyed RUN#<runId> / RUN', async () => {
      const item = { ...RUN, status: 'RUNNING' };
      dbMock.on(QueryCommand).resolves({ Items: [item] });

      const found = await audit.findRun('r1');

      expect(found).toEqual(item);
      expect(dbMock).toHaveReceivedCommandTimes(QueryCommand, 1);
      expect(dbMock).toHaveReceivedCommandWith(QueryCommand, {
        TableName: TABLE,
        IndexName: 'byResource',
        KeyConditionExpression: 'gsi1pk = :pk AND gsi1sk = :sk',
        ExpressionAttributeValues: { ':pk': 'RUN#r1', ':sk': 'RUN' },
      });
    });

    it('returns undefined when no run has that id', async () => {
      dbMock.on(QueryCommand).resolves({ Items: [] });

      await expect(audit.findRun('r404')).resolves.toBeUndefined();
    });
  });

  describe('resourcesOf', () => {
    it('queries the run partition for resources of one type, following every page', async () => {
      const snap1 = { ...RESOURCE, resourceType: 'SNAPSHOT', resourceId: 'snap-1' };
      const snap2 = { ...RESOURCE, resourceType: 'SNAPSHOT', resourceId: 'snap-2' };
      const lastKey = { pk: 'RUN#r1', sk: 'RESOURCE#SNAPSHOT#snap-1' };
      dbMock
        .on(QueryCommand)
        .resolvesOnce({ Items: [snap1], LastEvaluatedKey: lastKey })
        .resolvesOnce({ Items: [snap2] });

      const found = await audit.resourcesOf('r1', 'SNAPSHOT');

      expect(found).toEqual([snap1, snap2]);
      expect(dbMock).toHaveReceivedCommandTimes(QueryCommand, 2);
      expect(dbMock).toHaveReceivedNthSpecificCommandWith(1, QueryCommand, {
        TableName: TABLE,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':pk': 'RUN#r1', ':prefix': 'RESOURCE#SNAPSHOT#' },
      });
      // The SDK paginator reuses its input object, so only the count and the last page's key are checked.
      expect(dbMock).toHaveReceivedCommandTimes(QueryCommand, 2);
      expect(dbMock).toHaveReceivedNthSpecificCommandWith(2, QueryCommand, { ExclusiveStartKey: lastKey });
    });

    it('lists every resource of the run when no type is given', async () => {
      dbMock.on(QueryCommand).resolves({ Items: [RESOURCE] });

      const found = await audit.resourcesOf('r1');

      expect(found).toEqual([RESOURCE]);
      expect(dbMock).toHaveReceivedCommandWith(QueryCommand, {
        ExpressionAttributeValues: { ':pk': 'RUN#r1', ':prefix': 'RESOURCE#' },
      });
    });

    it('returns an empty list when the run recorded nothing', async () => {
      dbMock.on(QueryCommand).resolves({});

      await expect(audit.resourcesOf('r1', 'KMS_GRANT')).resolves.toEqual([]);
    });
  });

  describe('eventsOf', () => {
    const event = (at: string, type: string) => ({
      pk: 'RUN#r1',
      sk: `EVENT#${at}#${type}`,
      entity: 'EVENT',
      runId: 'r1',
      type,
      stage: 'PostProvision',
      at,
    });

    it("queries the run's EVENT# items, following every page, oldest first", async () => {
      const preProvisioned = event('2025-03-04T10:05:00.000Z', 'PRE_PROVISIONED');
      const shifted = event('2025-03-04T11:30:00.000Z', 'TRAFFIC_SHIFTED');
      const lastKey = { pk: 'RUN#r1', sk: preProvisioned.sk };
      dbMock
        .on(QueryCommand)
        .resolvesOnce({ Items: [preProvisioned], LastEvaluatedKey: lastKey })
        .resolvesOnce({ Items: [shifted] });

      const found = await audit.eventsOf('r1');

      expect(found).toEqual([preProvisioned, shifted]);
      expect(dbMock).toHaveReceivedCommandTimes(QueryCommand, 2);
      expect(dbMock).toHaveReceivedNthSpecificCommandWith(1, QueryCommand, {
        TableName: TABLE,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':pk': 'RUN#r1', ':prefix': 'EVENT#' },
      });
      // The SDK paginator reuses its input object, so only the count and the last page's key are checked.
      expect(dbMock).toHaveReceivedCommandTimes(QueryCommand, 2);
      expect(dbMock.commandCalls(QueryCommand)[0]?.args[0].input.IndexName).toBeUndefined();
      expect(dbMock).toHaveReceivedNthSpecificCommandWith(2, QueryCommand, { ExclusiveStartKey: lastKey });
    });

    it('returns an empty list when the run recorded no event', async () => {
      dbMock.on(QueryCommand).resolves({});

      await expect(audit.eventsOf('r1')).resolves.toEqual([]);
    });
  });
});
