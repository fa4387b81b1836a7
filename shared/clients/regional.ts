import { EC2Client } from '@aws-sdk/client-ec2';
import { KMSClient } from '@aws-sdk/client-kms';
import { SSMClient } from '@aws-sdk/client-ssm';

/**
 * Clients for another region (a copy's destination), made on first use and kept for the life of
 * the container. Like the shared clients they leave `endpoint` alone, so AWS_ENDPOINT_URL_<SERVICE>
 * still applies.
 */
export interface RegionalClients {
  ec2: EC2Client;
  kms: KMSClient;
  ssm: SSMClient;
}

const made = new Map<string, RegionalClients>();

export const clientsIn = (region: string): RegionalClients => {
  let clients = made.get(region);
  if (!clients) {
    clients = {
      ec2: new EC2Client({ region }),
      kms: new KMSClient({ region }),
      ssm: new SSMClient({ region }),
    };
    made.set(region, clients);
  }
  return clients;
};
