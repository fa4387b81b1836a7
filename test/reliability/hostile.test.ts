import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { SendCommandCommandInput } from '@aws-sdk/client-ssm';
import { parse } from 'yaml';
import { executionNameFor, parseTriggerMessage, runIdFor } from '../../shared/trigger/message';
import { LocalPipeline } from '../harness/pipeline';
import type { ExecutionRecord } from '../harness/sim/sfn';
import { Sandbox } from '../scripts/support/sandbox';
import {
  APP_CONFIG_CATEGORIES,
  appConfigCorpus,
  HOSTILE_MARKERS,
  MARKER_FILE,
  resultCorpus,
  SECRET,
  SHELL_PAYLOADS,
  TRIGGER_CATEGORIES,
  triggerCorpus,
  validAppConfig,
  validBaseImageUpdate,
  validTrigger,
  type AppConfigCase,
  type CorpusContext,
  type ResultCase,
  type ResultStep,
  type TriggerCase,
} from './corpus';

/**
 * Hostile and malformed input, end to end through the local pipeline (real state machine, real
 * handlers). Three ways in:
 *
 * - **Trigger messages** are refused by the trigger worker: one message in the rejections queue and
 *   one REJECTED# audit item each, whose reason names the field, and no execution.
 * - **App configs** are checked by PreProvision, not by the trigger — an inline config is stored as
 *   the trigger received it and validated with an S3 one, against the schema and config/rules.yml.
 *   A bad one fails its run with AppConfigInvalidError naming the field (FAILED run item, stage
 *   PreProvision); nothing is baked and no run config is stored.
 * - **result.json** written by a builder command is checked by command-completed: the stage fails
 *   with a cause naming the field, and compensation leaves nothing of the run behind.
 *
 * Throughout, every SSM SendCommand the simulated SSM receives is recorded as sent (document name
 * and parameters) and checked against the documents' own allowedPattern (config/ssm/*.yml). The
 * harness does not run the builder scripts, so for the runs that carry inert hostile text (Chef
 * attributes) the real bake script is run on the stored run config with stand-in tools, and their
 * arguments are checked too.
 */

interface SentCommand {
  documentName: string;
  parameters: Record<string, string[]>;
}

interface Outcome {
  id: string;
  /** Everything that was not a clean rejection (empty when it was). */
  problems: string[];
  /** Hostile input reached a command, or was acted on past the point that should have refused it. */
  leaked: boolean;
}

interface Tally {
  tried: number;
  clean: number;
  leaked: number;
}

const STAGE = 'dev';
const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** The documents' parameters and allowedPattern, read from the documents themselves. */
const DOCUMENTS: Record<string, Record<string, string | undefined>> = Object.fromEntries(
  (['bake', 'provision', 'validate'] as const).map((step) => {
    const doc = parse(readFileSync(path.join(REPO_ROOT, 'config/ssm', `${step}.yml`), 'utf8')) as {
      parameters: Record<string, { allowedPattern?: string }>;
    };
    return [
      `ami-pipeline-${STAGE}-${step}`,
      Object.fromEntries(Object.entries(doc.parameters).map(([name, spec]) => [name, spec.allowedPattern])),
    ];
  }),
);

/** Why a SendCommand would hand something unvalidated to a shell (empty: it would not). */
const commandProblems = (command: SentCommand): string[] => {
  const declared = DOCUMENTS[command.documentName];
  if (!declared) return [`SendCommand of unknown document ${JSON.stringify(command.documentName)}`];
  const problems: string[] = [];
  for (const [name, values] of Object.entries(command.parameters)) {
    const pattern = declared[name];
    if (!(name in declared)) {
      problems.push(`${command.documentName}: undeclared parameter ${name}`);
      continue;
    }
    if (pattern === undefined) problems.push(`${command.documentName}: ${name} has no allowedPattern`);
    if (values.length !== 1) problems.push(`${command.documentName}: ${name} has ${values.length} values`);
    for (const value of values) {
      if (pattern !== undefined && !new RegExp(pattern).test(value)) {
        problems.push(`${command.documentName}: ${name}=${JSON.stringify(value)} does not match ${pattern}`);
      }
      for (const marker of HOSTILE_MARKERS) {
        if (value.includes(marker))
          problems.push(`${command.documentName}: ${name} carries ${JSON.stringify(marker)}`);
      }
    }
  }
  for (const name of Object.keys(declared)) {
    if (!(name in command.parameters)) problems.push(`${command.documentName}: ${name} missing`);
  }
  return problems;
};

/** Platform-rule violations write list indexes as `[0]`, schema ones as `.0`: compared alike. */
const dotted = (text: string) => text.replace(/\[(\d+)\]/g, '.$1');

/** `field: …` or `field.sub: …` among the violations. */
const namesField = (violations: readonly string[], field: string): boolean =>
  violations.map(dotted).some((v) => v.startsWith(`${field}:`) || v.startsWith(`${field}.`));

const STEP_ERRORS: Record<ResultStep, string> = {
  bake: 'BakeFailedError',
  provision: 'ProvisionFailedError',
  validate: 'ValidationFailedError',
};
const STEP_STATES: Record<ResultStep, string> = {
  bake: 'Bake',
  provision: 'Provision',
  validate: 'Validate',
};
const LATER_STEPS: Record<ResultStep, ResultStep[]> = {
  bake: ['provision', 'validate'],
  provision: ['validate'],
  validate: [],
};

describe('hostile and malformed input (local pipeline)', () => {
  let pipeline: LocalPipeline;
  let ctx: CorpusContext;
  /** Every SendCommand the simulated SSM received, in order, as received. */
  const sent: SentCommand[] = [];
  const tallies = new Map<string, Tally>();
  /** result.json bodies a hostile builder writes instead of the real one, by `<appId>/<step>`. */
  const hostileResults = new Map<string, ResultCase>();
  const consumedResults = new Set<string>();
  /** Leaks this suite can show but whose fix lies outside the files it may change (see it.failing). */
  const knownLeaks: string[] = [];

  const tally = (category: string, outcomes: Outcome[]) => {
    tallies.set(category, {
      tried: outcomes.length,
      clean: outcomes.filter((o) => o.problems.length === 0).length,
      leaked: outcomes.filter((o) => o.leaked).length,
    });
  };
  const failuresOf = (outcomes: Outcome[]) =>
    outcomes.filter((o) => o.problems.length > 0).map((o) => `${o.id}: ${o.problems.join('; ')}`);

  const commandsOfRun = (runId: string) =>
    sent.filter((c) => (c.parameters.runConfigParameter?.[0] ?? '').endsWith(`/${runId}`));

  const onlyExecution = (appId: string): ExecutionRecord[] =>
    pipeline.sfn.list().filter((e) => e.name.startsWith(`${appId}-${STAGE}-`));

  const leftoverProblems = (runId: string): string[] => {
    const left = pipeline.leftovers(runId);
    const targetGroups = [...pipeline.elb.targetGroups.values()].filter((t) => t.runId === runId);
    const problems = Object.entries(left)
      .filter(([, ids]) => ids.length > 0)
      .map(([kind, ids]) => `left behind ${kind}: ${ids.join(', ')}`);
    if (targetGroups.length > 0) problems.push(`left behind ${targetGroups.length} target group(s)`);
    return problems;
  };

  const putObject = (key: string, body: string) =>
    pipeline.s3.send(
      new PutObjectCommand({ Bucket: ctx.artifactsBucket, Key: key, Body: Buffer.from(body) }),
    );

  beforeAll(async () => {
    pipeline = await LocalPipeline.start();
    ctx = {
      stage: STAGE,
      artifactsBucket: pipeline.name('ArtifactsBucket'),
      reportsBucket: pipeline.name('ReportsBucket'),
      logsBucket: pipeline.name('LogsBucket'),
    };
    // Record what SSM receives before it checks anything: a refused SendCommand was still sent.
    const sendCommand = pipeline.commands.sendCommand.bind(pipeline.commands);
    pipeline.commands.sendCommand = (input: SendCommandCommandInput) => {
      sent.push({
        documentName: input.DocumentName ?? '',
        parameters: structuredClone(input.Parameters ?? {}),
      });
      return sendCommand(input);
    };
    // A hostile builder: the simulated command makes what the real tool would, then this writes
    // its result.json instead of the real one (once per run and step; a destroy writes its own).
    pipeline.s3.middlewareStack.add(
      (next) => async (args) => {
        const input = args.input as { Key?: unknown; Body?: unknown };
        const match =
          typeof input.Key === 'string' && typeof input.Body === 'string'
            ? /^[a-z0-9]+\/([a-z0-9-]+)\/[a-f0-9]{20}\/(bake|provision|validate)\/result\.json$/.exec(
                input.Key,
              )
            : null;
        const key = match ? `${match[1]}/${match[2]}` : '';
        const hostile = hostileResults.get(key);
        if (hostile && !consumedResults.has(key)) {
          consumedResults.add(key);
          // A Buffer, not a string: the SDK takes an empty string for a stream of unknown length.
          input.Body = Buffer.from(hostile.body(JSON.parse(input.Body as string) as Record<string, unknown>));
        }
        return next(args);
      },
      { step: 'initialize', name: 'hostileResultJson' },
    );
  });

  afterAll(async () => {
    const total: Tally = { tried: 0, clean: 0, leaked: 0 };
    const lines: string[] = [];
    for (const [category, t] of tallies) {
      if (category.startsWith('accepted')) continue;
      total.tried += t.tried;
      total.clean += t.clean;
      total.leaked += t.leaked;
      lines.push(`  ${category}: ${t.tried} inputs tried, ${t.clean} rejected cleanly, ${t.leaked} leaked`);
    }
    const accepted = tallies.get('accepted');
    if (accepted) {
      lines.push(
        `  accepted (controls, inert hostile text): ${accepted.tried} runs, ${accepted.clean} succeeded clean, ${accepted.leaked} leaked`,
      );
    }
    for (const leak of knownLeaks) lines.push(`  KNOWN LEAK (it.failing, fix outside these files): ${leak}`);
    lines.push(`${total.tried} inputs tried, ${total.clean} rejected cleanly, ${total.leaked} leaked`);
    console.log(`hostile input\n${lines.join('\n')}`);
    await pipeline?.stop();
  });

  it('builds its corpus from messages the trigger accepts, with unique case ids', () => {
    const accepted = [validTrigger(ctx), validBaseImageUpdate(ctx)].map(
      (message) => parseTriggerMessage(JSON.stringify(message), ctx, 65536).ok,
    );
    const ids = [
      ...triggerCorpus(ctx).map((c) => c.id),
      ...appConfigCorpus().map((c) => c.id),
      ...resultCorpus().map((c) => c.id),
    ];

    expect(accepted).toEqual([true, true]);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBeGreaterThanOrEqual(200);
  });

  describe('trigger messages', () => {
    const outcomes = new Map<string, Outcome[]>();
    let corpus: TriggerCase[];

    beforeAll(async () => {
      corpus = triggerCorpus(ctx);
      const executionsBefore = new Set(pipeline.sfn.list().map((e) => e.executionArn));
      const sentBefore = sent.length;

      const published = corpus.map((c) => ({ c, messageId: pipeline.publishTrigger(c.body).messageId }));
      await pipeline.settle();

      const queued = pipeline
        .rejectionsQueue()
        .map((m) => JSON.parse(m.body) as { snsMessageId: string; reason: string; violations: string[] });
      const audited = await pipeline.rejections();
      const deadLetters = pipeline.sqs.messages(pipeline.name('TriggerDeadLetterQueue')).map((m) => m.body);
      const started = pipeline.sfn.list().filter((e) => !executionsBefore.has(e.executionArn));
      const sentNow = sent.slice(sentBefore);
      const claimed = new Set<string>();

      for (const { c, messageId } of published) {
        const problems: string[] = [];
        let leaked = false;
        const inQueue = queued.filter((q) => q.snsMessageId === messageId);
        const inAudit = audited.filter((a) => a.messageId === messageId);
        if (inQueue.length !== 1) problems.push(`${inQueue.length} rejections-queue messages`);
        if (inAudit.length !== 1) problems.push(`${inAudit.length} REJECTED# audit items`);
        const [queuedItem] = inQueue;
        const [auditItem] = inAudit;
        if (queuedItem && !namesField(queuedItem.violations, c.field))
          problems.push(`reason does not name ${c.field}: ${queuedItem.reason.slice(0, 300)}`);
        if (queuedItem && c.mentions && !queuedItem.reason.includes(c.mentions))
          problems.push(`reason does not mention ${c.mentions}`);
        if (auditItem && queuedItem) {
          if (auditItem.status !== 'REJECTED') problems.push(`audit item status ${String(auditItem.status)}`);
          if (auditItem.reason !== queuedItem.reason)
            problems.push('audit reason differs from the queued one');
        }
        if (deadLetters.some((body) => body.includes(messageId))) problems.push('ended in the trigger DLQ');
        // Neither half of it either: a JSON error can quote a few characters around the fault.
        const auditText = JSON.stringify(auditItem ?? {});
        if (
          c.body.includes(SECRET) &&
          [SECRET.slice(0, 8), SECRET.slice(-8)].some((s) => auditText.includes(s))
        ) {
          problems.push('the audit item holds the inline config secret');
          leaked = true;
        }
        // An execution started for this message? Its name is a function of the message.
        try {
          const json = JSON.parse(c.body) as Record<string, unknown>;
          const { appId, environment, buildId } = json;
          if (typeof appId === 'string' && typeof environment === 'string' && typeof buildId === 'string') {
            const name = executionNameFor(appId, environment, runIdFor(appId, environment, buildId));
            if (started.some((e) => e.name === name)) {
              claimed.add(name);
              problems.push(`started execution ${name}`);
              leaked = true;
            }
          }
        } catch {
          // not JSON: nothing could have started
        }
        const list = outcomes.get(c.category) ?? [];
        list.push({ id: c.id, problems, leaked });
        outcomes.set(c.category, list);
      }
      // Nothing in this batch may start anything or send any command, whoever it belongs to.
      for (const [category, list] of outcomes) tally(`trigger/${category}`, list);
      // Whatever started or was sent in this batch is a leak, whether or not a case above claimed it.
      const batch: Outcome = {
        id: 'trigger batch',
        problems: [
          ...started.map((e) => `execution ${e.name} started`),
          ...sentNow.map((c) => `SendCommand ${c.documentName} sent`),
        ],
        leaked: started.length > 0 || sentNow.length > 0,
      };
      outcomes.set('(batch)', [batch]);
      // Counted here only when no case above owned up to it, so nothing is counted twice.
      const unclaimed = started.filter((e) => !claimed.has(e.name)).length + sentNow.length;
      if (unclaimed > 0) {
        tallies.set('trigger/(no case claimed it: executions started, commands sent)', {
          tried: 0,
          clean: 0,
          leaked: unclaimed,
        });
      }
    });

    it('starts no execution and sends no command for any of them', () => {
      expect(failuresOf(outcomes.get('(batch)') ?? [])).toEqual([]);
    });

    it.each(TRIGGER_CATEGORIES)(
      'rejects every %s message into the rejections queue and the audit table, naming the field',
      (category) => {
        const list = outcomes.get(category) ?? [];

        expect(list.length).toBeGreaterThan(0);
        expect(failuresOf(list)).toEqual([]);
      },
    );

    it('puts shell metacharacters in every string field of both message kinds', () => {
      const fields = new Set(
        corpus.filter((c) => c.category === 'shell-metacharacters').map((c) => c.id.split('/')[1]),
      );

      expect([...fields].sort()).toEqual(
        [
          'appConfig.s3Uri',
          'appId',
          'artifact.s3Uri',
          'artifact.sha256',
          'base-image-update baseImage.ssmParameter',
          'base-image-update buildId',
          'base-image-update environment',
          'base-image-update requestedBy',
          'buildId',
          'environment',
          'kind',
          'requestedBy',
          'version',
        ].sort(),
      );
      expect(corpus.filter((c) => c.category === 'shell-metacharacters')).toHaveLength(
        13 * Object.keys(SHELL_PAYLOADS).length,
      );
    });
  });

  describe('app configs (checked by PreProvision, inline or in S3)', () => {
    const outcomes = new Map<string, Outcome[]>();

    beforeAll(async () => {
      const cases: { c: AppConfigCase; appId: string }[] = appConfigCorpus().map((c, i) => ({
        c,
        appId: `cfg-${i + 1}`,
      }));
      const rejectionsBefore = pipeline.rejectionsQueue().length;
      const published: { c: AppConfigCase; appId: string; runId: string }[] = [];
      for (const { c, appId } of cases) {
        const buildId = `${appId}-build-1`;
        const message = validTrigger(ctx, buildId) as Record<string, unknown>;
        message.appId = appId;
        message.artifact = {
          s3Uri: `s3://${ctx.artifactsBucket}/inputs/${appId}/a.tgz`,
          sha256: 'c'.repeat(64),
        };
        const config = c.build(appId);
        if (c.delivery === 's3') {
          const key = `inputs/${appId}/app-config.yml`;
          await putObject(key, config as string);
          message.appConfig = { s3Uri: `s3://${ctx.artifactsBucket}/${key}` };
        } else {
          message.appConfig = config;
        }
        pipeline.publishTrigger(message);
        published.push({ c, appId, runId: runIdFor(appId, STAGE, buildId) });
      }
      await pipeline.settle();
      const rejectedAtTrigger = pipeline.rejectionsQueue().slice(rejectionsBefore);

      for (const { c, appId, runId } of published) {
        const problems: string[] = [];
        let leaked = false;
        const executions = onlyExecution(appId);
        const [run] = await pipeline.runsOf(appId);
        if (rejectedAtTrigger.some((m) => m.attributes.appId === appId))
          problems.push('rejected at the trigger (expected: PreProvision)');
        if (executions.length !== 1) problems.push(`${executions.length} executions`);
        const execution = executions[0];
        if (execution && execution.status !== 'FAILED') {
          problems.push(`execution ${execution.status}`);
          leaked = true;
        }
        if (execution && pipeline.path(execution.executionArn).includes('Bake')) {
          problems.push('reached Bake');
          leaked = true;
        }
        if (!run) problems.push('no run item');
        else {
          if (run.status !== 'FAILED') problems.push(`run item ${String(run.status)}`);
          if (run.failedStage !== 'PreProvision') problems.push(`failed in ${String(run.failedStage)}`);
          if (run.errorName !== c.error) problems.push(`error ${String(run.errorName)}, not ${c.error}`);
          const cause = dotted(String(run.errorCause));
          const field = c.field.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
          if (!new RegExp(`${field}[:.)]`).test(cause))
            problems.push(`cause does not name ${c.field}: ${cause.slice(0, 400)}`);
        }
        const commands = commandsOfRun(runId);
        if (commands.length > 0) {
          problems.push(`${commands.length} SendCommand(s) for the run`);
          leaked = true;
        }
        if (pipeline.ssm.describe(`/ami-pipeline/${STAGE}/${appId}/${runId}`)) {
          problems.push('run config stored');
          leaked = true;
        }
        problems.push(...leftoverProblems(runId));
        if (await pipeline.lockItem(appId, STAGE)) problems.push('lock not released');
        const list = outcomes.get(c.category) ?? [];
        list.push({ id: `${c.id} (${appId})`, problems, leaked });
        outcomes.set(c.category, list);
      }
      for (const [category, list] of outcomes) tally(`app-config/${category}`, list);
    });

    it.each(APP_CONFIG_CATEGORIES)(
      'fails every run with a %s config in PreProvision, naming the field, before anything is baked',
      (category) => {
        const list = outcomes.get(category) ?? [];

        expect(list.length).toBeGreaterThan(0);
        expect(failuresOf(list)).toEqual([]);
      },
    );
  });

  describe('result.json written by a builder command', () => {
    const outcomes = new Map<string, Outcome[]>();
    let cases: { c: ResultCase; appId: string }[];

    beforeAll(async () => {
      cases = resultCorpus().map((c, i) => ({ c, appId: `res-${i + 1}` }));
      for (const { c, appId } of cases) hostileResults.set(`${appId}/${c.step}`, c);
      const published = cases.map(({ c, appId }) => {
        const buildId = `${appId}-build-1`;
        const message = validTrigger(ctx, buildId) as Record<string, unknown>;
        message.appId = appId;
        message.appConfig = validAppConfig(appId);
        message.artifact = {
          s3Uri: `s3://${ctx.artifactsBucket}/inputs/${appId}/a.tgz`,
          sha256: 'c'.repeat(64),
        };
        pipeline.publishTrigger(message);
        return { c, appId, runId: runIdFor(appId, STAGE, buildId) };
      });
      await pipeline.settle();

      for (const { c, appId, runId } of published) {
        const problems: string[] = [];
        let leaked = false;
        if (!consumedResults.has(`${appId}/${c.step}`))
          problems.push('the hostile result.json was never written');
        const executions = onlyExecution(appId);
        const [run] = await pipeline.runsOf(appId);
        if (executions.length !== 1) problems.push(`${executions.length} executions`);
        const execution = executions[0];
        if (execution && execution.status !== 'FAILED') {
          problems.push(`execution ${execution.status}`);
          leaked = true;
        }
        if (!run) problems.push('no run item');
        else {
          if (run.status !== 'FAILED') problems.push(`run item ${String(run.status)}`);
          if (run.failedStage !== STEP_STATES[c.step]) problems.push(`failed in ${String(run.failedStage)}`);
          if (run.errorName !== STEP_ERRORS[c.step]) problems.push(`error ${String(run.errorName)}`);
          if (!String(run.errorCause).includes(c.cause))
            problems.push(
              `cause does not contain ${JSON.stringify(c.cause)}: ${String(run.errorCause).slice(0, 300)}`,
            );
          if (run.compensationStatus !== 'COMPLETE')
            problems.push(`compensation ${String(run.compensationStatus)}`);
        }
        const commands = commandsOfRun(runId);
        for (const command of commands) {
          const bad = commandProblems(command);
          if (bad.length > 0) {
            problems.push(...bad);
            leaked = true;
          }
        }
        const later = commands.filter((command) =>
          LATER_STEPS[c.step].some((step) => command.documentName.endsWith(`-${step}`)),
        );
        if (later.length > 0) {
          problems.push(`went on to ${later.map((command) => command.documentName).join(', ')}`);
          leaked = true;
        }
        problems.push(...leftoverProblems(runId));
        const list = outcomes.get(c.step) ?? [];
        list.push({ id: `${c.id} (${appId})`, problems, leaked });
        outcomes.set(c.step, list);
      }
      for (const [step, list] of outcomes) tally(`result.json/${step}`, list);
    });

    it.each(['bake', 'provision', 'validate'])(
      'fails the %s stage on every malformed result.json, naming the field, and leaves nothing behind',
      (step) => {
        const list = outcomes.get(step) ?? [];

        expect(list.length).toBeGreaterThan(0);
        expect(failuresOf(list)).toEqual([]);
      },
    );
  });

  describe('a bake result.json naming an AMI the run did not make', () => {
    const runs: { appId: string; runId: string }[] = [];
    let foreignAmi = '';
    let foreignTags: Record<string, string> = {};

    beforeAll(async () => {
      // Another app's live AMI, as Packer tagged it for that app's run.
      foreignTags = {
        'ami-pipeline:run-id': 'f0f0f0f0f0f0f0f0f0f0',
        'ami-pipeline:app-id': 'live-app',
        'ami-pipeline:stage': STAGE,
      };
      const image = pipeline.ec2.createImage({
        name: 'live-app-2.0.0',
        encrypted: true,
        kmsKeyId: pipeline.template.resource('PipelineKey').arn,
        tags: foreignTags,
      });
      foreignAmi = image.imageId;
      // One run that would otherwise succeed, one whose Validate fails (so compensation runs).
      for (const appId of ['steal-ami', 'steal-ami-undo']) {
        const buildId = `${appId}-build-1`;
        hostileResults.set(`${appId}/bake`, {
          id: `bake/foreign AMI (${appId})`,
          step: 'bake',
          body: (genuine) =>
            JSON.stringify({ ...genuine, amiId: image.imageId, snapshotIds: image.snapshotIds }),
          cause: 'amiId',
        });
        if (appId.endsWith('-undo')) {
          pipeline.commands.setScenario(appId, 'validate', { outcome: 'success', failedControls: 7 });
        }
        const message = validTrigger(ctx, buildId) as Record<string, unknown>;
        message.appId = appId;
        message.appConfig = validAppConfig(appId);
        message.artifact = {
          s3Uri: `s3://${ctx.artifactsBucket}/inputs/${appId}/a.tgz`,
          sha256: 'c'.repeat(64),
        };
        pipeline.publishTrigger(message);
        runs.push({ appId, runId: runIdFor(appId, STAGE, buildId) });
      }
      await pipeline.settle();
      const after = pipeline.ec2.images.get(foreignAmi);
      if (!after)
        knownLeaks.push(`a bake result naming another app's AMI got it deregistered (${foreignAmi})`);
      else if (JSON.stringify(after.tags) !== JSON.stringify(foreignTags) || after.launchPermissions.size > 0)
        knownLeaks.push(`a bake result naming another app's AMI got it re-tagged and shared (${foreignAmi})`);
    });

    // Fixed: Distribute refuses an image whose `ami-pipeline:run-id` tag is not this run's, and
    // compensation deregisters only images tagged with this run.
    it('fails the run naming amiId and leaves the other app’s AMI untouched (tags, sharing, registration)', async () => {
      const image = pipeline.ec2.images.get(foreignAmi);

      expect(image?.tags).toEqual(foreignTags);
      expect([...(image?.launchPermissions ?? [])]).toEqual([]);
      for (const { appId, runId } of runs) {
        const [run] = await pipeline.runsOf(appId);
        expect(onlyExecution(appId).map((e) => e.status)).toEqual(['FAILED']);
        expect(String(run?.errorCause)).toContain('amiId');
        expect(leftoverProblems(runId)).toEqual([]);
      }
    });
  });

  describe('runs that must be accepted', () => {
    const outcomes: Outcome[] = [];
    const inertAttributes = {
      ...Object.fromEntries(Object.entries(SHELL_PAYLOADS).map(([name, payload]) => [name, payload])),
      [`$(touch ${MARKER_FILE})`]: `\`touch ${MARKER_FILE}\``,
    };
    let inertRunId = '';

    beforeAll(async () => {
      const controls: [string, 'inline' | 's3', (appId: string) => Record<string, unknown>][] = [
        ['ctl-s3', 's3', (appId) => validAppConfig(appId) as Record<string, unknown>],
        ['ctl-inline', 'inline', (appId) => validAppConfig(appId) as Record<string, unknown>],
        [
          'ctl-inert',
          'inline',
          (appId) => {
            const config = validAppConfig(appId) as Record<string, Record<string, unknown>>;
            return {
              ...config,
              owner: { ...config.owner, team: `$(touch ${MARKER_FILE})` },
              bake: { ...config.bake, chefAttributes: { hostile: inertAttributes } },
            };
          },
        ],
      ];
      const published: { appId: string; runId: string }[] = [];
      for (const [appId, delivery, build] of controls) {
        const buildId = `${appId}-build-1`;
        const message = validTrigger(ctx, buildId) as Record<string, unknown>;
        message.appId = appId;
        message.artifact = {
          s3Uri: `s3://${ctx.artifactsBucket}/inputs/${appId}/a.tgz`,
          sha256: 'c'.repeat(64),
        };
        if (delivery === 's3') {
          const key = `inputs/${appId}/app-config.yml`;
          await putObject(key, JSON.stringify(build(appId)));
          message.appConfig = { s3Uri: `s3://${ctx.artifactsBucket}/${key}` };
        } else {
          message.appConfig = build(appId);
        }
        pipeline.publishTrigger(message);
        published.push({ appId, runId: runIdFor(appId, STAGE, buildId) });
      }
      inertRunId = published[2]?.runId ?? '';
      await pipeline.settle();

      for (const { appId, runId } of published) {
        const problems: string[] = [];
        let leaked = false;
        const [execution] = onlyExecution(appId);
        if (execution?.status !== 'SUCCEEDED') problems.push(`execution ${execution?.status ?? 'missing'}`);
        const commands = commandsOfRun(runId);
        if (commands.length !== 3)
          problems.push(`${commands.length} commands, not bake, provision and validate`);
        for (const command of commands) {
          const bad = commandProblems(command);
          if (bad.length > 0) {
            problems.push(...bad);
            leaked = true;
          }
        }
        outcomes.push({ id: appId, problems, leaked });
      }
      tally('accepted', outcomes);
    });

    it('runs a valid release (config in S3 or inline) and one whose free-form fields hold shell text to success, every command parameter within its allowedPattern', () => {
      expect(failuresOf(outcomes)).toEqual([]);
    });

    it('hands the inert shell text to the real bake script only as data: no tool argument carries it and nothing runs it', () => {
      const bake = commandsOfRun(inertRunId).find((c) => c.documentName === `ami-pipeline-${STAGE}-bake`);
      if (!bake) throw new Error('the inert run sent no bake command');
      const parameters = Object.fromEntries(Object.entries(bake.parameters).map(([k, [v]]) => [k, v ?? '']));
      const parameterName = parameters.runConfigParameter ?? '';
      const runConfig = pipeline.ssm.getParameter({ Name: parameterName, WithDecryption: true }).Parameter
        ?.Value;
      const box = new Sandbox();
      rmSync(MARKER_FILE, { force: true });
      try {
        box.putParameter(parameterName, runConfig ?? '');
        box.putParameter('/soe/amazon-linux-2023/latest', 'ami-0fedcba9876543210');

        const run = box.runStep('bake', parameters, {
          FAKE_AMI_ID: 'ami-0abcdef1234567890',
          FAKE_SNAPSHOTS: JSON.stringify(['snap-0a1b2c3d4e5f60718']),
        });

        expect(run.stderr).toBe('');
        expect(run.status).toBe(0);
        const argv = box.calls().flatMap((call) => call.argv);
        expect(argv.length).toBeGreaterThan(0);
        expect(argv.filter((arg) => HOSTILE_MARKERS.some((marker) => arg.includes(marker)))).toEqual([]);
        expect(box.workFile('bake.pkrvars.json').text).not.toContain(MARKER_FILE);
        const attributes = box.workFile('chef-attributes.json');
        expect(attributes.mode).toBe(0o600);
        expect(JSON.parse(attributes.text)).toEqual({ hostile: inertAttributes });
        expect(existsSync(MARKER_FILE)).toBe(false);
      } finally {
        box.remove();
      }
    });
  });

  it('never sent SSM a parameter outside its document allowedPattern, nor any hostile text', () => {
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.flatMap(commandProblems)).toEqual([]);
  });

  it('lets no input leak and rejects every hostile input cleanly', () => {
    const totals = [...tallies.entries()].filter(([category]) => !category.startsWith('accepted'));
    const tried = totals.reduce((n, [, t]) => n + t.tried, 0);

    expect(tried).toBeGreaterThanOrEqual(200);
    expect(
      totals.filter(([, t]) => t.leaked > 0 || t.clean !== t.tried).map(([category]) => category),
    ).toEqual([]);
  });
});
