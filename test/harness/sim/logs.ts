import {
  InvalidParameterException,
  LimitExceededException,
  ResourceAlreadyExistsException,
  ResourceNotFoundException,
  type AssociateKmsKeyCommandInput,
  type CreateLogGroupCommandInput,
  type DeleteSubscriptionFilterCommandInput,
  type DescribeSubscriptionFiltersCommandInput,
  type ListTagsForResourceCommandInput,
  type PutRetentionPolicyCommandInput,
  type PutSubscriptionFilterCommandInput,
} from '@aws-sdk/client-cloudwatch-logs';
import type { KmsSim } from './kms';

export interface SimSubscriptionFilter {
  filterName: string;
  filterPattern: string;
  destinationArn: string;
  roleArn: string;
}

export interface SimLogGroup {
  name: string;
  kmsKeyId: string | undefined;
  retentionInDays: number | undefined;
  tags: Record<string, string>;
  filters: Map<string, SimSubscriptionFilter>;
}

const metadata = { $metadata: {} };

/** CloudWatch Logs allows two subscription filters per log group. */
const MAX_FILTERS = 2;

/**
 * CloudWatch Logs for the app log groups, and the stage's Firehose stream they are subscribed to.
 * Groups keep their key, retention, tags and subscription filters; like the service, a filter is
 * refused unless its destination is a stream that exists and its role is one CloudWatch Logs may
 * assume for it, and a key must exist. Nothing is delivered: the tests look at the subscriptions.
 */
export class LogsSim {
  readonly groups = new Map<string, SimLogGroup>();

  constructor(
    private readonly kms: KmsSim,
    private readonly region: string,
    private readonly accountId: string,
    /** The delivery stream (LogsDeliveryStream) and the role CloudWatch Logs puts into it with. */
    private readonly stream: { arn: string; subscriptionRoleArn: string },
  ) {}

  createLogGroup(input: CreateLogGroupCommandInput) {
    const name = input.logGroupName ?? '';
    if (this.groups.has(name)) {
      throw new ResourceAlreadyExistsException({
        message: 'The specified log group already exists',
        ...metadata,
      });
    }
    this.requireKey(input.kmsKeyId);
    this.groups.set(name, {
      name,
      kmsKeyId: input.kmsKeyId,
      retentionInDays: undefined,
      tags: { ...(input.tags ?? {}) },
      filters: new Map(),
    });
    return metadata;
  }

  associateKmsKey(input: AssociateKmsKeyCommandInput) {
    const group = this.group(input.logGroupName);
    this.requireKey(input.kmsKeyId);
    group.kmsKeyId = input.kmsKeyId;
    return metadata;
  }

  putRetentionPolicy(input: PutRetentionPolicyCommandInput) {
    this.group(input.logGroupName).retentionInDays = input.retentionInDays;
    return metadata;
  }

  listTagsForResource(input: ListTagsForResourceCommandInput) {
    const prefix = `arn:aws:logs:${this.region}:${this.accountId}:log-group:`;
    const arn = input.resourceArn ?? '';
    if (!arn.startsWith(prefix) || arn.endsWith(':*')) {
      throw new InvalidParameterException({ message: `${arn} is not a log group ARN`, ...metadata });
    }
    return { tags: { ...this.group(arn.slice(prefix.length)).tags }, ...metadata };
  }

  describeSubscriptionFilters(input: DescribeSubscriptionFiltersCommandInput) {
    const group = this.group(input.logGroupName);
    return {
      subscriptionFilters: [...group.filters.values()]
        .filter((f) => f.filterName.startsWith(input.filterNamePrefix ?? ''))
        .map((f) => ({ ...f, logGroupName: group.name })),
      ...metadata,
    };
  }

  putSubscriptionFilter(input: PutSubscriptionFilterCommandInput) {
    const group = this.group(input.logGroupName);
    const filterName = input.filterName ?? '';
    // The service test-writes to the destination with the role before it accepts the filter.
    if (input.destinationArn !== this.stream.arn) {
      throw new InvalidParameterException({
        message: `Could not deliver test message to specified destination ${input.destinationArn}`,
        ...metadata,
      });
    }
    if (input.roleArn !== this.stream.subscriptionRoleArn) {
      throw new InvalidParameterException({
        message: `Could not deliver test message to specified Firehose stream. Check if the given Firehose stream is in ACTIVE state and ${input.roleArn} can be assumed`,
        ...metadata,
      });
    }
    if (!group.filters.has(filterName) && group.filters.size >= MAX_FILTERS) {
      throw new LimitExceededException({ message: 'Resource limit exceeded.', ...metadata });
    }
    group.filters.set(filterName, {
      filterName,
      filterPattern: input.filterPattern ?? '',
      destinationArn: input.destinationArn,
      roleArn: input.roleArn,
    });
    return metadata;
  }

  deleteSubscriptionFilter(input: DeleteSubscriptionFilterCommandInput) {
    const group = this.group(input.logGroupName);
    if (!group.filters.delete(input.filterName ?? '')) {
      throw new ResourceNotFoundException({ message: 'The specified filter does not exist.', ...metadata });
    }
    return metadata;
  }

  private group(name: string | undefined): SimLogGroup {
    const group = this.groups.get(name ?? '');
    if (!group) {
      throw new ResourceNotFoundException({
        message: 'The specified log group does not exist.',
        ...metadata,
      });
    }
    return group;
  }

  private requireKey(keyId: string | undefined): void {
    if (keyId !== undefined && !this.kms.hasKey(keyId)) {
      throw new InvalidParameterException({
        message: `Specified KMS key ${keyId} does not exist or is not allowed to be used`,
        ...metadata,
      });
    }
  }
}
