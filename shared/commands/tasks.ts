import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import {
  GetCommand,
  PutCommand,
  paginateQuery,
  UpdateCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import type { CommandStep } from './contract';

/**
 * The waiting side of a token stage, in the coordination table:
 * `TASK#<runId>#<step>` holds the task token (written before the command is sent, so a crash
 * between SendCommand and the next write still leaves the token findable), and
 * `COMMAND#<commandId>` points from SSM's command id back to it. While a task is pending it carries
 * `pendingPk`/`pendingSk`, a sparse index the reconciler queries (never scans).
 */
export const PENDING_INDEX = 'pending';

export type TaskStatus = 'PENDING' | 'DONE';

export interface CommandTask {
  runId: string;
  appId: string;
  environment: string;
  step: CommandStep;
  /** `apply` or `destroy` for provision; `run` otherwise. */
  mode: string;
  executionArn: string;
  taskToken: string;
  status: TaskStatus;
  commandId?: string | undefined;
  instanceId?: string | undefined;
  createdAt: string;
  expiresAt: number;
  outcome?: string | undefined;
}

const taskKey = (runId: string, step: CommandStep) => ({ pk: `TASK#${runId}#${step}` });
const commandKey = (commandId: string) => ({ pk: `COMMAND#${commandId}` });

export class TaskStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async get(runId: string, step: CommandStep): Promise<CommandTask | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: taskKey(runId, step), ConsistentRead: true }),
    );
    return Item as CommandTask | undefined;
  }

  /** Records a new attempt of a stage (a retried or redriven state replaces the earlier attempt). */
  async putPending(
    task: Omit<CommandTask, 'status' | 'commandId' | 'instanceId' | 'outcome'>,
  ): Promise<void> {
    await this.db.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          ...taskKey(task.runId, task.step),
          kind: 'TASK',
          ...task,
          status: 'PENDING',
          pendingPk: 'PENDING',
          pendingSk: `${task.createdAt}#${task.runId}#${task.step}`,
        },
      }),
    );
  }

  /** A retried state adopts the command its first attempt started: only the token changes. */
  async adopt(runId: string, step: CommandStep, commandId: string, taskToken: string): Promise<boolean> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: taskKey(runId, step),
          UpdateExpression: 'SET taskToken = :token',
          ConditionExpression: '#status = :pending AND commandId = :cid',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':token': taskToken, ':pending': 'PENDING', ':cid': commandId },
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  /**
   * A retried state takes over the finished command of an earlier attempt: the task is pending
   * again, for the new token, until a completion (the reconciler's) answers it from the command.
   */
  async reopen(task: CommandTask, taskToken: string): Promise<boolean> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: taskKey(task.runId, task.step),
          UpdateExpression:
            'SET taskToken = :token, #status = :pending, pendingPk = :pendingPk, pendingSk = :pendingSk REMOVE outcome',
          ConditionExpression: 'commandId = :cid',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':token': taskToken,
            ':pending': 'PENDING',
            ':pendingPk': 'PENDING',
            ':pendingSk': `${task.createdAt}#${task.runId}#${task.step}`,
            ':cid': task.commandId,
          },
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  async setCommand(task: CommandTask, commandId: string, instanceId: string): Promise<void> {
    await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: taskKey(task.runId, task.step),
        UpdateExpression: 'SET commandId = :cid, instanceId = :iid',
        ExpressionAttributeValues: { ':cid': commandId, ':iid': instanceId },
      }),
    );
    await this.db.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          ...commandKey(commandId),
          kind: 'COMMAND',
          runId: task.runId,
          step: task.step,
          expiresAt: task.expiresAt,
        },
      }),
    );
  }

  /** Whether some attempt recorded this command (its `COMMAND#` pointer exists). */
  async isRecorded(commandId: string): Promise<boolean> {
    const out = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: commandKey(commandId), ConsistentRead: true }),
    );
    return out?.Item !== undefined;
  }

  async findByCommand(commandId: string): Promise<CommandTask | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: commandKey(commandId), ConsistentRead: true }),
    );
    if (!Item) return undefined;
    return this.get(String(Item.runId), Item.step as CommandStep);
  }

  /**
   * Marks the task done (once: the condition makes a second completion a no-op) and drops it from
   * the pending index. Returns false when another completion got there first.
   */
  async complete(task: CommandTask, outcome: string): Promise<boolean> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: taskKey(task.runId, task.step),
          UpdateExpression: 'SET #status = :done, outcome = :outcome REMOVE pendingPk, pendingSk',
          ConditionExpression: '#status = :pending AND taskToken = :token',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':done': 'DONE',
            ':pending': 'PENDING',
            ':outcome': outcome,
            ':token': task.taskToken,
          },
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  async listPending(): Promise<CommandTask[]> {
    const tasks: CommandTask[] = [];
    const pages = paginateQuery(
      { client: this.db },
      {
        TableName: this.tableName,
        IndexName: PENDING_INDEX,
        KeyConditionExpression: 'pendingPk = :p',
        ExpressionAttributeValues: { ':p': 'PENDING' },
      },
    );
    for await (const page of pages) tasks.push(...((page.Items ?? []) as CommandTask[]));
    return tasks;
  }
}
