import { randomUUID } from 'node:crypto';
import {
  QueueDoesNotExist,
  type SendMessageCommandInput,
  type SendMessageCommandOutput,
} from '@aws-sdk/client-sqs';

export interface QueuedMessage {
  messageId: string;
  body: string;
  attributes: Record<string, string>;
  sentAt: Date;
}

/** SQS stand-in: named queues that keep what was sent (1 MiB message limit, like SQS). */
export class SqsSim {
  private readonly queues = new Map<string, QueuedMessage[]>();

  createQueue(url: string): void {
    this.queues.set(url, []);
  }

  sendMessage(input: SendMessageCommandInput): SendMessageCommandOutput {
    const queue = this.queues.get(input.QueueUrl ?? '');
    if (!queue)
      throw new QueueDoesNotExist({ message: `queue ${input.QueueUrl} does not exist`, $metadata: {} });
    const body = input.MessageBody ?? '';
    if (Buffer.byteLength(body, 'utf8') > 1024 * 1024) {
      throw Object.assign(new Error('message body exceeds 1 MiB'), { name: 'InvalidParameterValue' });
    }
    const messageId = randomUUID();
    const attributes = Object.fromEntries(
      Object.entries(input.MessageAttributes ?? {}).map(([k, v]) => [k, v.StringValue ?? '']),
    );
    queue.push({ messageId, body, attributes, sentAt: new Date() });
    return { MessageId: messageId, $metadata: {} };
  }

  messages(url: string): QueuedMessage[] {
    return [...(this.queues.get(url) ?? [])];
  }
}
