/** Types for config/plugins/upload-assets.cjs (the Serverless plugin uploading the builder assets). */
interface AwsProvider {
  getAwsSdkV3Config(): Promise<Record<string, unknown>>;
  naming: { getStackName(): string };
}

declare class UploadAssets {
  constructor(
    serverless: { getProvider(name: 'aws'): AwsProvider },
    options?: Record<string, unknown>,
    utils?: { log?: { notice(message: string): void; info(message: string): void } },
  );
  hooks: Record<string, () => Promise<void>>;
  upload(target?: { bucket: string; kmsKeyArn: string }): Promise<void>;
  uploadIfStackExists(): Promise<void>;
}

export = UploadAssets;
