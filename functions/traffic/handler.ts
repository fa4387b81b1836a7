import type { Context } from 'aws-lambda';
import { auditFromEnv } from '../../shared/audit-env';
import { cloudwatch } from '../../shared/clients/cloudwatch';
import { elbv2 } from '../../shared/clients/elbv2';
import { ssm } from '../../shared/clients/ssm';
import { withLogContext } from '../../shared/logger';
import {
  checkCanary,
  prepareTraffic,
  shiftTraffic,
  trafficInputSchema,
  type TrafficDeps,
  type TrafficInput,
} from '../../shared/release/traffic';
import { parseTaskInput } from '../../shared/task-input';

const defaultDeps: TrafficDeps = { elbv2, cloudwatch, ssm, audit: auditFromEnv(), now: () => new Date() };

/** Blue-green on the ALB listener: prepare (find blue, remember the listener), shift a step, check it. */
const dispatch = (input: TrafficInput, deps: TrafficDeps): Promise<unknown> => {
  switch (input.action) {
    case 'prepare':
      return prepareTraffic(input, deps);
    case 'shift':
      return shiftTraffic(input, deps);
    case 'check':
      return checkCanary(input, deps);
  }
};

export const run = async (event: unknown, deps: TrafficDeps = defaultDeps) =>
  dispatch(parseTaskInput(trafficInputSchema, event), deps);

export const handler = async (event: unknown, context: Context) => {
  const input = parseTaskInput(trafficInputSchema, event);
  return withLogContext(context, input.run, () => dispatch(input, defaultDeps));
};
