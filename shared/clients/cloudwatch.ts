import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';

export const cloudwatch = new CloudWatchClient({});
