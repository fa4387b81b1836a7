import path from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { TRIGGER_KINDS } from '../shared/trigger/message';
import {
  auditApp,
  auditEnvironment,
  auditLive,
  auditRejected,
  auditResource,
  auditRun,
} from './commands/audit';
import {
  approvalUrl,
  decisionResult,
  defaultDecisionDeps,
  sendDecision,
  type DecisionDeps,
  type DecisionKind,
} from './commands/approval';
import { configValidate } from './commands/config';
import { exitCodeOf, follow, runs, status, statusResult } from './commands/status';
import { prepareTrigger, publishTrigger, type TriggerOptions } from './commands/trigger';
import { openContext, REPO_ROOT, stageConfig, type Context, type GlobalOptions } from './context';
import { CliError, describeError } from './errors';
import { OUTPUT_FORMATS, processIo, render, type CommandResult, type Io } from './output';
import { AuditReader, type Item } from './queries';
import { parseWindow } from './time';

export interface CliDeps {
  io?: Io;
  /** Opens AWS or the local harness (tests pass one bound to their own emulators). */
  open?: typeof openContext;
  now?: () => Date;
  /** Pause between `--follow` polls (ms), unless --interval says otherwise. */
  pollMs?: number;
  /** How long `--follow` / `--wait` wait for a run to end, unless --timeout says otherwise. */
  followTimeoutMs?: number;
  /** How `approve`/`reject` reach the approval URL and sign (tests pass a fake fetch and keys). */
  decision?: (profile: string | undefined) => DecisionDeps;
}

const positiveInt = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number ≥ 1');
  return n;
};

const configDir = () => process.env.CONFIG_DIR ?? path.join(REPO_ROOT, 'config');

/** The `ami-pipeline` program; `run` parses a command line with it and returns the exit code. */
export const buildProgram = (deps: CliDeps = {}): { program: Command; exitCode: () => number } => {
  const io = deps.io ?? processIo();
  const open = deps.open ?? openContext;
  const now = deps.now ?? (() => new Date());
  let exitCode = 0;

  const program = new Command('ami-pipeline')
    .description(
      'Operate and audit ami-pipeline: trigger a release, follow its runs, answer auditors from the audit table (Queries only), check app configs offline.',
    )
    .addOption(
      new Option('--stage <stage>', 'the stage (config/<stage>.yml, stack ami-pipeline-<stage>)')
        .env('AMI_PIPELINE_STAGE')
        .default('dev'),
    )
    .option('--region <region>', "AWS region (default: the stage config's region)")
    .addOption(new Option('--profile <profile>', 'AWS profile').env('AWS_PROFILE'))
    .addOption(new Option('--output <format>', 'output format').choices(OUTPUT_FORMATS).default('table'))
    .option('--local [dir]', "the local harness's state (npm start) instead of AWS (default .local/)")
    .configureOutput({
      writeOut: io.out,
      writeErr: io.err,
      // Usage errors are one line, like every other error.
      outputError: (text, write) =>
        write(
          `ami-pipeline: ${text
            .replace(/^error: /, '')
            .trim()
            .replace(/\s*\n\s*/g, ' ')} (see --help)\n`,
        ),
    })
    .exitOverride();

  const globals = (cmd: Command) => cmd.optsWithGlobals<GlobalOptions>();
  const print = (cmd: Command, result: CommandResult) => io.out(render(result, globals(cmd).output));
  /** Opens the context for one command and always closes it. */
  const withContext = async <T>(
    cmd: Command,
    fn: (ctx: Context, reader: AuditReader) => Promise<T>,
    options: { withPipeline?: boolean } = {},
  ): Promise<T> => {
    const ctx = await open(globals(cmd), { ...options, io });
    try {
      return await fn(ctx, new AuditReader(ctx.db, ctx.names.auditTable));
    } catch (err) {
      if (ctx.local && (err as Error).name === 'ResourceNotFoundException') {
        const stage = ctx.stage.stage;
        throw new CliError(
          `the local state has no ${stage} tables: npm start ran another stage (try: npm start -- --stage ${stage})`,
        );
      }
      throw err;
    } finally {
      await ctx.close();
    }
  };
  const envOf = (cmd: Command, env: string | undefined) => env ?? globals(cmd).stage;
  const window = (opts: { since?: string; until?: string }) => parseWindow(opts, now());
  const timeout = (opts: { timeout?: number }) =>
    opts.timeout
      ? { timeoutMs: opts.timeout * 60_000 }
      : deps.followTimeoutMs !== undefined
        ? { timeoutMs: deps.followTimeoutMs }
        : {};
  const pollMs = (opts: { interval?: number }) =>
    opts.interval ? opts.interval * 1000 : (deps.pollMs ?? 5000);

  program
    .command('trigger')
    .description(
      "publish the message Jenkins would (checked by the trigger worker's schema first) and print the execution name",
    )
    .option('--app <appId>', 'the app id')
    .option('--version <version>', 'the release version')
    .requiredOption('--build <buildId>', 'the build id (one run per app, environment and build id)')
    .option('--app-config <file|s3uri>', 'app config file (checked, then uploaded) or its s3:// URI')
    .option('--artifact <file|s3uri>', 'artifact file (hashed and uploaded) or its s3:// URI')
    .option('--sha256 <hex>', 'SHA-256 of the artifact (required with an s3:// artifact)')
    .option('--requested-by <who>', 'who asked for it (default: $BUILD_USER_ID, else $USER)')
    .addOption(
      new Option('--kind <kind>', 'release or base-image-update').choices(TRIGGER_KINDS).default('release'),
    )
    .option(
      '--base-image-parameter <name>',
      'base-image-update for every app: the SSM parameter of the SOE image that moved',
    )
    .option('--env <environment>', 'the environment (default: the stage)')
    .option('--dry-run', 'check and print the message; upload and send nothing')
    .option('--wait', 'follow the run until it ends (exit 1 if it fails or is rejected)')
    .addOption(new Option('--interval <seconds>', 'poll interval for --wait').argParser(positiveInt))
    .addOption(
      new Option('--timeout <minutes>', 'give up on --wait after this long (default 1440)').argParser(
        positiveInt,
      ),
    )
    .action(
      async (
        opts: TriggerOptions & {
          env?: string;
          dryRun?: boolean;
          wait?: boolean;
          interval?: number;
          timeout?: number;
        },
        cmd: Command,
      ) => {
        const g = globals(cmd);
        const triggerOptions = { ...opts, ...(opts.env ? { environment: opts.env } : {}) };
        if (opts.dryRun) {
          // Names are needed for the URIs: the stage's artifacts bucket.
          await withContext(cmd, async (ctx) => {
            const prepared = await prepareTrigger(
              triggerOptions,
              { stage: ctx.stage.stage, artifactsBucket: ctx.names.artifactsBucket },
              configDir(),
            );
            print(cmd, triggerResult({ ...prepared, messageId: '(dry run: not sent)' }, true));
          });
          return;
        }
        await withContext(
          cmd,
          async (ctx, reader) => {
            const prepared = await prepareTrigger(
              triggerOptions,
              { stage: ctx.stage.stage, artifactsBucket: ctx.names.artifactsBucket },
              configDir(),
            );
            const sentAt = now();
            const published = await publishTrigger(prepared, ctx);
            if (ctx.pipeline) await ctx.pipeline.settle();
            const sent = triggerResult(published);
            const waiting = Boolean(opts.wait || ctx.pipeline) && published.runId !== undefined;
            // In table output the execution name comes first; json and csv print one answer at the end.
            if (!waiting || g.output === 'table') print(cmd, sent);
            if (!waiting || !published.runId) return;
            const run = await waitForRun(
              reader,
              io,
              {
                runId: published.runId,
                messageId: published.messageId,
                environment: String(published.message.environment),
                sentAt,
              },
              pollMs(opts),
            );
            const ended = await follow(reader, String(run.appId), {
              runId: String(run.runId),
              intervalMs: pollMs(opts),
              ...timeout(opts),
              format: g.output,
              io,
              printFinal: g.output === 'table',
            });
            if (g.output !== 'table') {
              const final = statusResult(ended.run, ended.stages);
              print(cmd, { ...final, data: { ...(sent.data as object), ...(final.data as object) } });
            }
            exitCode = exitCodeOf(ended.run);
          },
          { withPipeline: Boolean(g.local) },
        );
      },
    );

  program
    .command('status')
    .description("an app's latest run (or --run): stage by stage, timings, failed stage, error and cause")
    .argument('<app>', 'the app id')
    .option('--env <environment>', 'only runs of this environment')
    .option('--run <runId>', 'this run instead of the latest')
    .option('--follow', 'keep showing progress until the run ends (exit 1 if it fails)')
    .addOption(new Option('--interval <seconds>', 'poll interval for --follow').argParser(positiveInt))
    .addOption(
      new Option('--timeout <minutes>', 'give up on --follow after this long (default 1440)').argParser(
        positiveInt,
      ),
    )
    .action(
      async (
        app: string,
        opts: { env?: string; run?: string; follow?: boolean; interval?: number; timeout?: number },
        cmd: Command,
      ) => {
        const options = {
          ...(opts.env ? { environment: opts.env } : {}),
          ...(opts.run ? { runId: opts.run } : {}),
        };
        await withContext(cmd, async (_ctx, reader) => {
          if (opts.follow) {
            const ended = await follow(reader, app, {
              ...options,
              intervalMs: pollMs(opts),
              ...timeout(opts),
              format: globals(cmd).output,
              io,
            });
            exitCode = exitCodeOf(ended.run);
            return;
          }
          const { run, result } = await status(reader, app, options);
          print(cmd, result);
          exitCode = exitCodeOf(run);
        });
      },
    );

  program
    .command('runs')
    .description("an app's runs, newest first: where each got to, how long it took, its error")
    .argument('<app>', 'the app id')
    .option('--env <environment>', 'only runs of this environment')
    .option('--since <time>', 'ISO time or duration back from now (90d, 12h)')
    .option('--until <time>', 'ISO time or duration back from now')
    .addOption(new Option('--limit <n>', 'at most this many runs').argParser(positiveInt).default(20))
    .action(
      async (
        app: string,
        opts: { env?: string; since?: string; until?: string; limit: number },
        cmd: Command,
      ) => {
        const range = window(opts);
        await withContext(cmd, async (_ctx, reader) => {
          print(
            cmd,
            await runs(reader, app, {
              ...range,
              ...(opts.env ? { environment: opts.env } : {}),
              limit: opts.limit,
            }),
          );
        });
      },
    );

  const audit = program
    .command('audit')
    .description("the auditors' questions, each answered by Queries on the audit table (never a Scan)");

  audit
    .command('resource')
    .description(
      "which run made this resource (ami-…, snap-…, lt-…, a target group ARN …), who asked for it, what InSpec said, and the run's whole story",
    )
    .argument('<id>', 'the resource id')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      await withContext(cmd, async (_ctx, reader) => print(cmd, await auditResource(reader, id)));
    });

  audit
    .command('run')
    .description('every event and resource of a run, its stages, the InSpec summary and report location')
    .argument('<runId>', 'the run id (20 hex characters)')
    .action(async (runId: string, _opts: unknown, cmd: Command) => {
      await withContext(cmd, async (_ctx, reader) => print(cmd, await auditRun(reader, runId)));
    });

  audit
    .command('app')
    .description("an app's runs in a time window, each with its AMI, InSpec result and outcome")
    .argument('<app>', 'the app id')
    .option('--env <environment>', 'only runs of this environment')
    .option('--since <time>', 'ISO time or duration back from now (90d, 12h)')
    .option('--until <time>', 'ISO time or duration back from now')
    .addOption(new Option('--limit <n>', 'at most this many runs').argParser(positiveInt))
    .action(
      async (
        app: string,
        opts: { env?: string; since?: string; until?: string; limit?: number },
        cmd: Command,
      ) => {
        const range = window(opts);
        await withContext(cmd, async (_ctx, reader) =>
          print(
            cmd,
            await auditApp(reader, app, {
              ...range,
              ...(opts.env ? { environment: opts.env } : {}),
              ...(opts.limit ? { limit: opts.limit } : {}),
            }),
          ),
        );
      },
    );

  audit
    .command('env')
    .description(
      'everything recorded in an environment in a time window, across apps: runs with their InSpec result, and rejections',
    )
    .option('--env <environment>', 'the environment (default: the stage)')
    .option('--since <time>', 'ISO time or duration back from now (default 7d)')
    .option('--until <time>', 'ISO time or duration back from now')
    .action(async (opts: { env?: string; since?: string; until?: string }, cmd: Command) => {
      const range = window({ since: opts.since ?? '7d', ...(opts.until ? { until: opts.until } : {}) });
      await withContext(cmd, async (_ctx, reader) =>
        print(cmd, await auditEnvironment(reader, envOf(cmd, opts.env), range)),
      );
    });

  audit
    .command('live')
    .description('what is live for every app in the environment')
    .option('--env <environment>', 'the environment (default: the stage)')
    .action(async (opts: { env?: string }, cmd: Command) => {
      await withContext(cmd, async (_ctx, reader) =>
        print(cmd, await auditLive(reader, envOf(cmd, opts.env))),
      );
    });

  audit
    .command('rejected')
    .description('trigger messages refused by the trigger worker, with every violation')
    .option('--env <environment>', 'the environment (default: the stage)')
    .option('--since <time>', 'ISO time or duration back from now (90d, 12h)')
    .option('--until <time>', 'ISO time or duration back from now')
    .addOption(new Option('--limit <n>', 'at most this many').argParser(positiveInt))
    .action(async (opts: { env?: string; since?: string; until?: string; limit?: number }, cmd: Command) => {
      const range = window(opts);
      await withContext(cmd, async (_ctx, reader) =>
        print(
          cmd,
          await auditRejected(reader, envOf(cmd, opts.env), {
            ...range,
            ...(opts.limit ? { limit: opts.limit } : {}),
          }),
        ),
      );
    });

  // ---- the approval gate (docs/approval.md): as a session of ami-pipeline-<stage>-approver ----
  const decisionCommand = (decision: DecisionKind, description: string, reasonRequired: boolean) => {
    const reason = '--reason <text>';
    const reasonHelp = `why (1-500 characters; recorded in the audit trail${reasonRequired ? '' : ', optional'})`;
    const command = program
      .command(decision)
      .description(description)
      .argument('<runId>', 'the run id (20 hex characters; in the APPROVAL_REQUESTED notification)');
    (reasonRequired ? command.requiredOption(reason, reasonHelp) : command.option(reason, reasonHelp))
      .option('--url <url>', "the approval function's URL (default: the stack output ApprovalFunctionUrl)")
      .action(async (runId: string, opts: { reason?: string; url?: string }, cmd: Command) => {
        const g = globals(cmd);
        if (g.local) {
          throw new CliError(
            `${decision} has no --local mode: a local run waits for approval inside the process that runs it (npm start -- --scenario approval)`,
            2,
          );
        }
        const stage = stageConfig(g.stage);
        const region = g.region ?? stage.region;
        const url = opts.url ?? (await approvalUrl(stage.stage, { region, profile: g.profile }));
        const answer = await sendDecision(
          { url, region, runId, decision, reason: opts.reason },
          (deps.decision ?? defaultDecisionDeps)(g.profile),
        );
        print(cmd, decisionResult(answer));
      });
  };
  decisionCommand(
    'approve',
    'approve a run waiting for approval: it goes on to the smoke test and takes traffic (approver role only)',
    false,
  );
  decisionCommand(
    'reject',
    'reject a run waiting for approval: it fails at Approval and is compensated (approver role only)',
    true,
  );

  program
    .command('config')
    .description('app config tools (offline)')
    .command('validate')
    .description(
      'check an app config against its schema and config/rules.yml, listing every violation (offline)',
    )
    .argument('<file>', 'the app config (YAML or JSON)')
    .option('--env <environment>', "check against this environment's rules (default: the stage)")
    .action((file: string, opts: { env?: string }, cmd: Command) => {
      const environment = envOf(cmd, opts.env);
      stageConfig(globals(cmd).stage); // an unknown --stage is an error here too
      const { result, valid } = configValidate(file, environment, configDir());
      print(cmd, result);
      exitCode = valid ? 0 : 1;
    });

  return { program, exitCode: () => exitCode };
};

const triggerResult = (
  published: {
    message: Record<string, unknown>;
    executionName?: string;
    runId?: string;
    messageId: string;
    uploads: { key: string }[];
  },
  dryRun = false,
): CommandResult => ({
  data: {
    executionName: published.executionName ?? null,
    runId: published.runId ?? null,
    messageId: published.messageId,
    [dryRun ? 'wouldUpload' : 'uploaded']: published.uploads.map((u) => u.key),
    message: published.message,
  },
  tables: [
    {
      columns: ['executionName', 'runId', 'messageId'],
      rows: [
        [
          published.executionName ?? '(one per app with a live release)',
          published.runId ?? '',
          published.messageId,
        ],
      ],
    },
  ],
});

/**
 * After publishing: the run item appears (PreProvision writes it once the run holds its lock), or a
 * rejection names the message. The bound is the lock's own wait (AcquireLock retries for about six
 * hours) plus a margin, so a queued run is waited for and a lost trigger is not waited for forever.
 */
const waitForRun = async (
  reader: AuditReader,
  io: Io,
  published: { runId: string; messageId: string; environment: string; sentAt: Date },
  intervalMs: number,
  timeoutMs = 7 * 3600_000,
): Promise<Item> => {
  const started = Date.now();
  const since = new Date(published.sentAt.getTime() - 60_000).toISOString();
  let told = false;
  for (;;) {
    const run = await reader.run(published.runId);
    if (run) return run;
    const rejection = (await reader.rejected(published.environment, { since })).find(
      (r) => r.messageId === published.messageId,
    );
    if (rejection) {
      const violations = (rejection.violations as string[] | undefined) ?? [String(rejection.reason)];
      throw new CliError(`trigger rejected by the trigger worker: ${violations.join('; ')}`);
    }
    if (Date.now() - started > timeoutMs) {
      throw new CliError(
        `run ${published.runId} has not started after ${Math.round(timeoutMs / 60_000)} min (see: audit rejected, the trigger DLQ)`,
      );
    }
    if (!told && Date.now() - started > 30_000) {
      io.err(`waiting for run ${published.runId} to start (another run of the app may hold the lock)`);
      told = true;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
};

/** Runs one command line (`argv` without node and script) and returns the exit code. */
export const run = async (argv: string[], deps: CliDeps = {}): Promise<number> => {
  const io = deps.io ?? processIo();
  const { program, exitCode } = buildProgram({ ...deps, io });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode();
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version print and exit 0; a usage error was already printed by commander.
      return err.exitCode === 0 ? 0 : 2;
    }
    io.err(`ami-pipeline: ${describeError(err)}`);
    return err instanceof CliError ? err.exitCode : 1;
  }
};

if (require.main === module) {
  void run(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
