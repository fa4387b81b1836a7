import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';

export const elbv2 = new ElasticLoadBalancingV2Client({});
