import { EC2Client } from '@aws-sdk/client-ec2';
import { KMSClient } from '@aws-sdk/client-kms';
import { SSMClient } from '@aws-sdk/client-ssm';

/**
 * Clients for another region (a copy's destination), made on first use and kept for the life of
 * the container. Like the shared clients they leave `endpoint` alone, so AWS_ENDPOINT_URL_<SERVICE>
 * still applies. One factory per service, so a function bundles only the clients it calls.
 */
const made = new Map<string, unknown>();
const cached = <T>(key: string, make: () => T): T => {
  if (!made.has(key)) made.set(key, make());
  return made.get(key) as T;
};

export const ec2In = (region: string): EC2Client => cached(`ec2 ${region}`, () => new EC2Client({ region }));
export const kmsIn = (region: string): KMSClient => cached(`kms ${region}`, () => new KMSClient({ region }));
export const ssmIn = (region: string): SSMClient => cached(`ssm ${region}`, () => new SSMClient({ region }));

export interface RegionalClients {
  ec2: EC2Client;
  kms: KMSClient;
  ssm: SSMClient;
}

export const clientsIn = (region: string): RegionalClients => ({
  ec2: ec2In(region),
  kms: kmsIn(region),
  ssm: ssmIn(region),
});
