import { AuditRepository } from './audit';
import { dynamodb } from './clients/dynamodb';
import { requireEnv } from './env';

/** The audit repository on the stage's table (AUDIT_TABLE), for workers that record what they made. */
export const auditFromEnv = (): AuditRepository => new AuditRepository(dynamodb, requireEnv('AUDIT_TABLE'));
