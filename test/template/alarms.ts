import { asList, at, isObject, type Json, type JsonObject, type PackagedStack } from './stack';

/** Every metric an alarm watches, as `Namespace/MetricName(dimension=ref)`. */
const watched = (alarm: JsonObject): string[] => {
  const stats = alarm.Metrics
    ? asList(alarm.Metrics)
        .filter(isObject)
        .map((m) => at(m, 'MetricStat', 'Metric'))
        .filter(isObject)
    : [alarm];
  return stats.map((metric) => {
    const dims = asList(metric.Dimensions)
      .filter(isObject)
      .map((d) => `${String(d.Name)}=${JSON.stringify(d.Value)}`);
    return `${String(metric.Namespace)}/${String(metric.MetricName)}(${dims.join(',')})`;
  });
};

const ref = (id: string) => JSON.stringify({ Ref: id });

/**
 * Issue 6: alarms on failed executions, DLQ depth, reconciler errors and compensation failures,
 * each routed to the stage's outcome topic, which CloudWatch may publish to (key and topic policy).
 */
export const describeAlarms = (getStack: () => PackagedStack) => {
  describe('alarms', () => {
    const alarms = () =>
      new Map(
        getStack()
          .resourcesOfType('AWS::CloudWatch::Alarm')
          .map(([id, alarm]) => [id, alarm.Properties ?? {}]),
      );
    const alarm = (id: string): JsonObject => {
      const found = alarms().get(id);
      if (!found) throw new Error(`no alarm ${id}`);
      return found;
    };

    it('alarm on failed, timed-out or aborted executions of both state machines', () => {
      expect(watched(alarm('FailedExecutionsAlarm')).sort()).toEqual(
        ['AmiPipelineStateMachine', 'DecommissionStateMachine']
          .flatMap((sm) =>
            ['ExecutionsFailed', 'ExecutionsTimedOut', 'ExecutionsAborted'].map(
              (m) => `AWS/States/${m}(StateMachineArn=${ref(sm)})`,
            ),
          )
          .sort(),
      );
    });

    it('alarm when the trigger dead-letter queue holds a message', () => {
      expect(watched(alarm('TriggerDeadLetterAlarm'))).toEqual([
        `AWS/SQS/ApproximateNumberOfMessagesVisible(QueueName=${JSON.stringify({ 'Fn::GetAtt': ['TriggerDeadLetterQueue', 'QueueName'] })})`,
      ]);
    });

    it('alarm on reconciler errors', () => {
      expect(watched(alarm('ReconcilerErrorsAlarm'))).toEqual([
        `AWS/Lambda/Errors(FunctionName=${ref('ReconcilerLambdaFunction')})`,
      ]);
    });

    it('alarm on compensation failures: an undo step failed, a stack destroy failed, or compensate crashed', () => {
      const stage = getStack().stage;
      expect(watched(alarm('CompensationFailuresAlarm')).sort()).toEqual(
        [
          `ami-pipeline/${stage}/CompensationIncomplete()`,
          `ami-pipeline/${stage}/StackDestroyFailed()`,
          `AWS/Lambda/Errors(FunctionName=${ref('CompensateLambdaFunction')})`,
        ].sort(),
      );
      // The custom metrics come from the log lines the workers write, in the right log groups.
      const filters = getStack()
        .resourcesOfType('AWS::Logs::MetricFilter')
        .map(([, f]) => f.Properties ?? {})
        .map((f) => ({
          group: JSON.stringify(f.LogGroupName),
          pattern: f.FilterPattern,
          metric: at(asList(f.MetricTransformations)[0], 'MetricName'),
          namespace: at(asList(f.MetricTransformations)[0], 'MetricNamespace'),
        }));
      expect(filters).toEqual(
        expect.arrayContaining([
          {
            group: ref('CompensateLogGroup'),
            pattern: '{ $.message = "compensation incomplete" }',
            metric: 'CompensationIncomplete',
            namespace: `ami-pipeline/${stage}`,
          },
          {
            group: ref('CommandCompletedLogGroup'),
            pattern: '{ $.message = "stack destroy failed" }',
            metric: 'StackDestroyFailed',
            namespace: `ami-pipeline/${stage}`,
          },
        ]),
      );
    });

    it('every alarm fires on a single occurrence, treats no data as fine, and notifies the outcome topic', () => {
      expect(alarms().size).toBeGreaterThanOrEqual(4);
      for (const [id, props] of alarms()) {
        expect({ id, ...props }).toMatchObject({
          id,
          Threshold: 1,
          ComparisonOperator: 'GreaterThanOrEqualToThreshold',
          TreatMissingData: 'notBreaching',
          AlarmActions: [{ Ref: 'OutcomeTopic' }],
        });
        expect(String(props.AlarmName)).toMatch(new RegExp(`^ami-pipeline-${getStack().stage}-`));
      }
    });

    it('CloudWatch may publish to the encrypted outcome topic: key policy and topic policy, scoped to this account and these alarms', () => {
      const stack = getStack();
      const keyStatements = asList(
        at(stack.properties('PipelineKey', 'AWS::KMS::Key'), 'KeyPolicy', 'Statement'),
      ).filter(isObject);
      expect(keyStatements).toContainEqual(
        expect.objectContaining({
          Effect: 'Allow',
          Principal: { Service: 'cloudwatch.amazonaws.com' },
          Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
          Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
        }),
      );
      const topicStatements = stack
        .resourcesOfType('AWS::SNS::TopicPolicy')
        .flatMap(([, p]) => asList(at(p.Properties, 'PolicyDocument', 'Statement')))
        .filter(isObject);
      const allowCloudWatch = topicStatements.filter(
        (s) =>
          s.Effect === 'Allow' && JSON.stringify(s.Principal) === '{"Service":"cloudwatch.amazonaws.com"}',
      );
      expect(allowCloudWatch).toHaveLength(1);
      expect(allowCloudWatch[0]).toMatchObject({
        Action: 'sns:Publish',
        Resource: [{ Ref: 'OutcomeTopic' }],
        Condition: {
          StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
          ArnLike: {
            'aws:SourceArn': {
              'Fn::Sub': `arn:\${AWS::Partition}:cloudwatch:\${AWS::Region}:\${AWS::AccountId}:alarm:ami-pipeline-${stack.stage}-*`,
            },
          },
        },
      });
      // The TLS-only deny still covers both topics.
      expect(topicStatements).toContainEqual(
        expect.objectContaining({ Sid: 'DenyInsecureTransport', Effect: 'Deny' } as Record<string, Json>),
      );
    });
  });
};
