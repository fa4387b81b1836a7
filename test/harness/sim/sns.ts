import { randomUUID } from 'node:crypto';

export interface PublishedMessage {
  messageId: string;
  topicArn: string;
  message: string;
  attributes: Record<string, string>;
  timestamp: string;
}

export type Subscriber = (message: PublishedMessage) => Promise<void>;

interface PublishInput {
  TopicArn?: string | undefined;
  Message?: string | undefined;
  MessageAttributes?: Record<string, { DataType?: string; StringValue?: string | undefined }> | undefined;
}

/**
 * SNS stand-in: topics keep every message published to them and hand each one to their
 * subscribers (asynchronously, as SNS does; the harness tracks deliveries so it can wait for them).
 */
export class SnsSim {
  private readonly topics = new Map<string, { messages: PublishedMessage[]; subscribers: Subscriber[] }>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly listeners = new Set<(message: PublishedMessage) => void>();

  createTopic(arn: string): void {
    this.topics.set(arn, { messages: [], subscribers: [] });
  }

  subscribe(arn: string, subscriber: Subscriber): void {
    this.topic(arn).subscribers.push(subscriber);
  }

  publish(input: PublishInput): { MessageId: string } {
    const topic = this.topic(input.TopicArn ?? '');
    const message = input.Message ?? '';
    if (Buffer.byteLength(message, 'utf8') > 256 * 1024) {
      throw Object.assign(new Error('message exceeds 256 KiB'), { name: 'InvalidParameterException' });
    }
    const published: PublishedMessage = {
      messageId: randomUUID(),
      topicArn: input.TopicArn ?? '',
      message,
      attributes: Object.fromEntries(
        Object.entries(input.MessageAttributes ?? {}).map(([k, v]) => [k, v.StringValue ?? '']),
      ),
      timestamp: new Date().toISOString(),
    };
    topic.messages.push(published);
    for (const listener of this.listeners) listener(published);
    this.deliver(topic.subscribers, published);
    return { MessageId: published.messageId };
  }

  /** Re-delivers an already published message, as SNS may (at-least-once delivery). */
  redeliver(message: PublishedMessage): void {
    this.deliver(this.topic(message.topicArn).subscribers, message);
  }

  messages(arn: string): PublishedMessage[] {
    return [...this.topic(arn).messages];
  }

  onPublish(listener: (message: PublishedMessage) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  busy(): boolean {
    return this.inFlight.size > 0;
  }

  /** Resolves once every delivery started so far has finished. */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private deliver(subscribers: Subscriber[], message: PublishedMessage): void {
    for (const subscriber of subscribers) {
      const delivery = subscriber(message).finally(() => this.inFlight.delete(delivery));
      this.inFlight.add(delivery);
    }
  }

  private topic(arn: string) {
    const topic = this.topics.get(arn);
    if (!topic) throw Object.assign(new Error(`topic ${arn} does not exist`), { name: 'NotFoundException' });
    return topic;
  }
}
