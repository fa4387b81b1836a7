import { S3Client } from '@aws-sdk/client-s3';

export const s3 = new S3Client({
  // S3-compatible endpoints reached by IP or without wildcard DNS need path-style addressing.
  forcePathStyle: process.env.AWS_S3_FORCE_PATH_STYLE === 'true',
});
