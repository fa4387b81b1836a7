import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { inspect } from 'node:util';
import { gunzipSync, gzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { StateMachine } from 'aws-local-stepfunctions';
import { sampleAppConfig, triggerMessage } from '../fixtures/messages';
import type { LambdaRuntime } from '../harness/lambda';
import { LocalPipeline } from '../harness/pipeline';
import type { ExecutionRecord } from '../harness/sim/sfn';
import { REPO_ROOT } from '../harness/template';

/**
 * Issue 6, part 4: no secret value ever appears in execution input/output, history, logs, command
 * parameters, notifications, messages, the audit table or S3 — only in the run config, a
 * SecureString encrypted with the stage's key. A unique value is planted in the app config's
 * bake.chefAttributes (which may hold sensitive values), whole releases and failing runs go through
 * the real state machine and handlers, and then everything they produced is searched for it. The
 * task tokens the state machine issued are searched for as well: they belong in the coordination
 * table and the Lambda payload of their state, nowhere else.
 */

const ENV = 'dev';
const APP = 'secret-app';
const RULES_APP = 'secret-rules-app';

type EventLog = Awaited<ReturnType<ReturnType<StateMachine['run']>['eventLogs']['next']>>['value'];

/** Ways a value can be written down without its plain text showing: base64 at each byte alignment. */
const encodedForms = (needle: string): string[] => {
  const forms = new Set([needle]);
  const bytes = Buffer.from(needle, 'utf8');
  for (let offset = 0; offset < 3; offset++) {
    const b64 = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
    // Drop the characters that also encode the unknown neighbours on either side.
    const stable = b64.slice(offset === 0 ? 0 : 4, -4);
    forms.add(stable);
    forms.add(stable.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return [...forms];
};

/** Text of a stored body; gzip (Firehose's CloudWatch Logs records) is opened first. */
const textOf = (body: Buffer): string => {
  const raw = body.toString('utf8');
  if (body[0] === 0x1f && body[1] === 0x8b) return `${raw}\n${gunzipSync(body).toString('utf8')}`;
  return raw;
};

const asText = (value: unknown): string =>
  typeof value === 'string' ? value : (JSON.stringify(value) ?? '');

interface Place {
  where: string;
  kind: string;
  text: string;
}

describe('secrets: a planted secret and the task tokens stay where they belong', () => {
  const secret = `planted-${randomBytes(16).toString('hex')}`;
  const secretForms = encodedForms(secret);
  let pipeline: LocalPipeline;
  let bucket: string;

  // ---- taps: what the handlers logged, the full execution history, every task's result -----------
  const logLines: { stream: string; line: string }[] = [];
  const history: { machine: string; execution: string; event: EventLog }[] = [];
  const taskResults: { functionKey: string; result: unknown }[] = [];
  const restores: (() => void)[] = [];
  /** The console as it was, for the test's own summary line. */
  const print = console.log.bind(console);

  beforeAll(async () => {
    // DEBUG: the most the handlers can say. The harness sets POWERTOOLS_DEV, so the Powertools
    // logger writes through the global console, captured here instead of printed.
    pipeline = await LocalPipeline.start({ logLevel: 'DEBUG' });
    bucket = pipeline.name('ArtifactsBucket');

    for (const method of ['log', 'debug', 'info', 'warn', 'error', 'trace'] as const) {
      const spy = jest.spyOn(console, method).mockImplementation((...args: unknown[]) => {
        logLines.push({
          stream: `console.${method}`,
          line: args.map((a) => (typeof a === 'string' ? a : inspect(a, { depth: null }))).join(' '),
        });
      });
      restores.push(() => spy.mockRestore());
    }
    for (const stream of [process.stdout, process.stderr]) {
      const write = stream.write.bind(stream);
      const spy = jest.spyOn(stream, 'write').mockImplementation(((chunk: unknown, ...rest: never[]) => {
        logLines.push({ stream: stream === process.stdout ? 'stdout' : 'stderr', line: String(chunk) });
        return write(chunk as string, ...rest);
      }) as typeof stream.write);
      restores.push(() => spy.mockRestore());
    }

    // The harness keeps each event's type and state name; Step Functions' history also holds every
    // state's input and output. Tee the emulator's own event stream (root executions only: a Map
    // iteration's events reach its root anyway) to search those too.
    const run = StateMachine.prototype.run;
    const spy = jest.spyOn(StateMachine.prototype, 'run').mockImplementation(function (
      this: StateMachine,
      input,
      options,
    ) {
      const execution = run.call(this, input, options);
      const nested = (options as { _rootAbortSignal?: unknown } | undefined)?._rootAbortSignal;
      if (nested) return execution;
      const context = options?.context as { Execution?: { Id?: string }; StateMachine?: { Id?: string } };
      const tee = async function* (source: typeof execution.eventLogs) {
        for await (const event of source) {
          history.push({
            machine: String(context?.StateMachine?.Id),
            execution: String(context?.Execution?.Id),
            event,
          });
          yield event;
        }
      };
      return { ...execution, eventLogs: tee(execution.eventLogs) };
    });
    restores.push(() => spy.mockRestore());

    const invoke = pipeline.lambda.invoke.bind(pipeline.lambda);
    pipeline.lambda.invoke = async (...args: Parameters<LambdaRuntime['invoke']>) => {
      const result = await invoke(...args);
      taskResults.push({ functionKey: pipeline.lambda.definition(args[0]).key, result });
      return result;
    };
  });

  afterAll(async () => {
    for (const restore of restores.reverse()) restore();
    await pipeline.stop();
  });

  /** Everything the runs produced, each record one place. */
  const collectPlaces = async (): Promise<Place[]> => {
    const places: Place[] = [];
    const add = (kind: string, where: string, value: unknown) =>
      places.push({ kind, where, text: asText(value) });

    const executions: ExecutionRecord[] = [...pipeline.sfn.list(), ...pipeline.decommissions.list()];
    for (const e of executions) {
      add('execution input', e.name, e.input);
      if (e.output !== undefined) add('execution output', e.name, e.output);
      add('execution error/cause', e.name, { error: e.error, cause: e.cause });
      for (const [i, event] of e.events.entries()) add('harness execution event', `${e.name}#${i}`, event);
    }
    for (const [i, h] of history.entries())
      add('history event (state input/output)', `${h.execution}#${i}`, h.event);
    for (const [i, invocation] of pipeline.lambda.invocations.entries()) {
      // The trigger's payload is the SNS delivery of Jenkins' message: an input, not something made.
      const input = invocation.functionKey === 'trigger';
      add(
        input ? 'trigger delivery (input)' : 'lambda payload',
        `${invocation.functionKey}#${i}`,
        invocation.payload,
      );
    }
    for (const [i, r] of taskResults.entries()) add('lambda result', `${r.functionKey}#${i}`, r.result);
    for (const [i, log] of logLines.entries()) add('log line', `${log.stream}#${i}`, log.line);

    for (const command of pipeline.commands.commands.values()) {
      add('ssm command', command.commandId, {
        documentName: command.documentName,
        parameters: command.parameters,
        comment: command.comment,
        outputBucket: command.outputBucket,
        outputPrefix: command.outputPrefix,
        stderr: command.stderr,
      });
    }
    for (const step of ['bake', 'provision', 'validate'])
      add('ssm document', step, readFileSync(path.join(REPO_ROOT, 'config/ssm', `${step}.yml`), 'utf8'));

    for (const topic of [pipeline.name('TriggerTopic'), pipeline.name('OutcomeTopic')]) {
      for (const m of pipeline.sns.messages(topic))
        add(
          topic === pipeline.name('TriggerTopic') ? 'trigger message (input)' : 'sns notification',
          m.messageId,
          m,
        );
    }
    // A rejected message is kept whole in the rejections queue (DESIGN: nothing is lost, to be
    // inspected and re-sent): that field is Jenkins' input, checked below to be exactly what was
    // published; the rest of the queued message (reason, violations, ids) is what the pipeline wrote.
    const published = new Set(pipeline.sns.messages(pipeline.name('TriggerTopic')).map((m) => m.message));
    for (const m of pipeline.sqs.messages(pipeline.name('RejectionsQueue'))) {
      const { message, ...written } = JSON.parse(m.body) as { message?: string };
      add('sqs message', m.messageId, { ...m, body: written });
      if (message !== undefined)
        add(
          published.has(message) ? 'rejected message kept whole (input)' : 'sqs message',
          m.messageId,
          message,
        );
    }
    for (const m of pipeline.sqs.messages(pipeline.name('TriggerDeadLetterQueue')))
      add('sqs message', m.messageId, m);

    for (const table of ['AuditTable', 'CoordinationTable']) {
      let ExclusiveStartKey: Record<string, unknown> | undefined;
      do {
        const page = await pipeline.db.send(
          new ScanCommand({ TableName: pipeline.name(table), ExclusiveStartKey }),
        );
        for (const item of page.Items ?? [])
          add(
            table === 'AuditTable' ? 'audit item' : 'coordination item',
            `${String(item.pk)} ${String(item.sk ?? '')}`,
            item,
          );
        ExclusiveStartKey = page.LastEvaluatedKey;
      } while (ExclusiveStartKey);
    }

    for (const logicalId of ['ArtifactsBucket', 'ReportsBucket', 'LogsBucket']) {
      const Bucket = pipeline.name(logicalId);
      let ContinuationToken: string | undefined;
      do {
        const page = await pipeline.s3.send(new ListObjectsV2Command({ Bucket, ContinuationToken }));
        for (const object of page.Contents ?? []) {
          const got = await pipeline.s3.send(new GetObjectCommand({ Bucket, Key: object.Key }));
          const body = Buffer.from((await got.Body?.transformToByteArray()) ?? []);
          const input = logicalId === 'ArtifactsBucket' && object.Key?.startsWith('inputs/');
          add(input ? 's3 object (app input)' : 's3 object', `s3://${Bucket}/${object.Key}`, textOf(body));
        }
        ContinuationToken = page.NextContinuationToken;
      } while (ContinuationToken);
    }

    for (const name of pipeline.ssm.names()) {
      const stored = pipeline.ssm.describe(name);
      const isRunConfig = name.startsWith(`/ami-pipeline/${ENV}/`);
      // A run config is searched as stored (ciphertext); any other parameter as its value.
      add(
        isRunConfig ? 'run config (stored)' : 'ssm parameter',
        name,
        isRunConfig ? stored : pipeline.ssm.getParameter({ Name: name, WithDecryption: true }).Parameter,
      );
    }

    for (const image of pipeline.ec2.images.values()) add('ec2 image', image.imageId, image);
    for (const snapshot of pipeline.ec2.snapshots.values())
      add('ec2 snapshot', snapshot.snapshotId, snapshot);
    for (const grant of pipeline.kms.grants.values()) add('kms grant', grant.grantId, grant);
    for (const group of pipeline.logs.groups.values())
      add('log group', group.name, { ...group, filters: [...group.filters.values()] });
    for (const lb of pipeline.elb.loadBalancers.values())
      add('load balancer', lb.arn, { arn: lb.arn, dnsName: lb.dnsName, listener: lb.listener });
    for (const tg of pipeline.elb.targetGroups.values()) add('target group', tg.arn, tg);
    for (const stack of pipeline.commands.stacks.values()) add('green stack', stack.runId, stack);
    return places;
  };

  const foundIn = (places: Place[], needles: string[]) =>
    places.filter((p) => needles.some((n) => p.text.includes(n)));

  it('finds its own needles: plain, inside JSON, base64 at any alignment, gzipped', () => {
    const places: Place[] = [
      { kind: 't', where: 'plain', text: `x${secret}y` },
      { kind: 't', where: 'json', text: JSON.stringify({ a: { b: [secret] } }) },
      ...[0, 1, 2].map((n) => ({
        kind: 't',
        where: `base64+${n}`,
        text: Buffer.from(`${'z'.repeat(n)}${secret}!`).toString('base64'),
      })),
      { kind: 't', where: 'gzip', text: textOf(gzipSync(Buffer.from(secret))) },
      { kind: 't', where: 'clean', text: secret.slice(0, -1) },
    ];
    expect(foundIn(places, secretForms).map((p) => p.where)).toEqual([
      'plain',
      'json',
      'base64+0',
      'base64+1',
      'base64+2',
      'gzip',
    ]);
  });

  it('keeps the secret out of everything two releases and two failing runs produced, and in the encrypted run config', async () => {
    // ---- arrange -------------------------------------------------------------------------------
    const appConfig = sampleAppConfig({
      appId: APP,
      bake: { chefAttributes: { sample_app: { listen_port: 8080, db_password: secret } } },
    });
    const release = async (version: string, message: Record<string, unknown>) => {
      pipeline.publishTrigger(message);
      await pipeline.settle();
      return pipeline.sfn
        .list()
        .find((e) => JSON.parse(e.input).version === version && e.name.startsWith(`${APP}-`));
    };

    // ---- act -------------------------------------------------------------------------------------
    // Two whole releases (the second shifts traffic blue → green and decommissions the first),
    // the app config inline in the trigger as Jenkins may send it.
    const first = await release(
      '1.0.0',
      triggerMessage(bucket, { appId: APP, version: '1.0.0', buildId: 'sec-1', appConfig }),
    );
    const second = await release(
      '1.1.0',
      triggerMessage(bucket, { appId: APP, version: '1.1.0', buildId: 'sec-2', appConfig }),
    );
    // A run InSpec fails (compensated: green destroyed, AMI deregistered), config uploaded to S3 by Jenkins.
    pipeline.commands.setScenario(APP, 'validate', { outcome: 'success', failedControls: 9 });
    const configKey = `inputs/${APP}/sec-3/app-config.json`;
    await pipeline.s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: configKey, Body: JSON.stringify(appConfig) }),
    );
    const failing = await release('1.2.0', {
      ...triggerMessage(bucket, { appId: APP, version: '1.2.0', buildId: 'sec-3' }),
      appConfig: { s3Uri: `s3://${bucket}/${configKey}` },
    });
    // A run whose config breaks the platform rules next to the secret: the listed violations must not quote it.
    pipeline.publishTrigger(
      triggerMessage(bucket, {
        appId: RULES_APP,
        appConfig: sampleAppConfig({
          appId: RULES_APP,
          bake: { chefAttributes: { db_password: secret } },
          runtime: { instanceType: 'm5.24xlarge', maxSize: 50 },
        }),
      }),
    );
    await pipeline.settle();
    const rules = pipeline.sfn.list().find((e) => e.name.startsWith(`${RULES_APP}-`));
    // The first release's build id again with other content: rejected, kept, audited (with an excerpt).
    pipeline.publishTrigger(
      triggerMessage(bucket, { appId: APP, version: '1.0.1', buildId: 'sec-1', appConfig }),
    );
    await pipeline.settle();
    expect((await pipeline.rejections()).filter((r) => r.appId === APP)).toHaveLength(1);

    expect(first?.status).toBe('SUCCEEDED');
    expect(second?.status).toBe('SUCCEEDED');
    expect(failing?.status).toBe('FAILED');
    expect(pipeline.path(failing!.executionArn)).toEqual(
      expect.arrayContaining(['ValidateFailed', 'Compensate', 'DestroyGreenStack']),
    );
    expect(rules?.status).toBe('FAILED');
    expect(rules?.error).toBe('AppConfigInvalidError');
    expect(pipeline.decommissions.list().length).toBeGreaterThanOrEqual(1);

    // The taps saw what they exist for (a tap that captured nothing would make the scan vacuous).
    const levelOf = (line: string) => {
      try {
        return String((JSON.parse(line) as { level?: unknown }).level);
      } catch {
        return undefined;
      }
    };
    expect(logLines.filter((l) => levelOf(l.line) === 'INFO').length).toBeGreaterThan(10);
    expect(logLines.some((l) => l.line.includes('run config stored'))).toBe(true);
    expect(history.filter((h) => h.event.type === 'StateExited').length).toBeGreaterThan(50);

    // ---- the secret: where it must be --------------------------------------------------------------
    // Run configs, not the app's latest-ami parameter (an AMI id, published for its accounts).
    const runConfigs = pipeline.ssm
      .names()
      .filter((n) => n.startsWith(`/ami-pipeline/${ENV}/`) && !n.endsWith('/latest-ami'));
    expect(runConfigs).toHaveLength(3); // the rules-breaking run never got one
    for (const name of runConfigs) {
      const stored = pipeline.ssm.describe(name);
      expect(stored).toMatchObject({
        type: 'SecureString',
        keyId: pipeline.template.resource('PipelineKey').arn,
      });
      expect(secretForms.some((f) => stored!.stored.includes(f))).toBe(false);
      expect(pipeline.ssm.getParameter({ Name: name, WithDecryption: true }).Parameter?.Value).toContain(
        secret,
      );
    }

    // ---- the secret: nowhere else ------------------------------------------------------------------
    const places = await collectPlaces();
    const inputs = places.filter((p) => p.kind.endsWith('(input)') || p.kind === 's3 object (app input)');
    const produced = places.filter((p) => !inputs.includes(p));
    // Jenkins' own inputs hold it (the inline configs, their stored copies and the uploaded one).
    expect(foundIn(inputs, secretForms).length).toBeGreaterThanOrEqual(3);
    const leaks = foundIn(produced, secretForms).map(
      (p) =>
        `${p.kind}: ${p.where}: …${p.text.slice(Math.max(0, p.text.indexOf(secret) - 120), p.text.indexOf(secret) + 40)}…`,
    );
    expect(leaks).toEqual([]);

    // ---- the task tokens: only in the coordination table and their state's Lambda payload ------------
    const tokens = [
      ...new Set(
        pipeline.lambda.invocations
          .map((i) => (i.payload as { taskToken?: unknown } | null)?.taskToken)
          .filter((t): t is string => typeof t === 'string'),
      ),
    ];
    // Bake, Provision, Validate of three runs, the failed run's destroy, the decommission's destroy.
    expect(tokens.length).toBeGreaterThanOrEqual(10);
    const tokenChannels = new Set(['lambda payload', 'coordination item']);
    const tokenPlaces = produced.filter((p) => !tokenChannels.has(p.kind));
    const tokenLeaks = foundIn(tokenPlaces, tokens).map((p) => `${p.kind}: ${p.where}`);
    expect(tokenLeaks).toEqual([]);
    expect(
      foundIn(
        produced.filter((p) => p.kind === 'coordination item'),
        tokens,
      ).length,
    ).toBeGreaterThan(0);

    // Every kind searched, those with nothing in them too (an empty kind searched nothing).
    const kinds = [
      ...new Set([...produced.map((p) => p.kind), 'sqs message', 'ssm parameter', 's3 object']),
    ].sort();
    print(
      `secret scanned in ${produced.length} places, found in ${leaks.length}` +
        ` (where it must be: ${runConfigs.length} SecureString run configs, encrypted with the stage key;` +
        ` Jenkins' inputs: ${foundIn(inputs, secretForms).length} of ${inputs.length});` +
        ` task tokens: ${tokens.length} scanned in ${tokenPlaces.length} places, found in ${tokenLeaks.length};` +
        ` kinds: ${kinds.map((k) => `${k} ${produced.filter((p) => p.kind === k).length}`).join(', ')}`,
    );
  }, 90_000);
});
