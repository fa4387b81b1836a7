import { CliError } from '../errors';
import type { CommandResult } from '../output';
import { AuditReader, mapLimit, PER_RUN_CONCURRENCY, type Item, type Window } from '../queries';
import { inspecOf, progressLine, runStory, runSummary, timeline } from '../views';
import { runProgress } from '../../shared/progress';

const RUN_ID = /^[a-f0-9]{20}$/;

/** `audit resource <id>`: which run made it, who asked for it, what InSpec said — and the rest of its story. */
export const auditResource = async (reader: AuditReader, resourceId: string): Promise<CommandResult> => {
  const records = await reader.resource(resourceId);
  if (records.length === 0) {
    const hint = RUN_ID.test(resourceId) ? ` (a run id? try: audit run ${resourceId})` : '';
    throw new CliError(`no run recorded resource ${resourceId}${hint}`);
  }
  const runIds = [...new Set(records.map((r) => String(r.runId)))];
  const stories = await mapLimit(runIds, PER_RUN_CONCURRENCY, async (runId) => {
    const [run, items] = await Promise.all([reader.run(runId), reader.runItems(runId)]);
    return { runId, run, items };
  });
  const resources = records.map((r) => ({
    resourceType: r.resourceType,
    resourceId: r.resourceId,
    runId: r.runId,
    createdAt: r.createdAt,
    detail: r.detail,
  }));
  const tables = [
    {
      title: `resource ${resourceId}`,
      columns: ['type', 'made by run', 'app', 'version', 'requested by', 'created'],
      rows: records.map((r) => {
        const run = stories.find((s) => s.runId === r.runId)?.run;
        return [
          String(r.resourceType),
          String(r.runId),
          String(r.appId),
          String(r.version),
          run ? String(run.requestedBy) : '(run item missing)',
          String(r.createdAt),
        ];
      }),
    },
    ...stories.flatMap((s) => (s.run ? runStory(s.run, s.items).tables : [])),
  ];
  const story = stories.flatMap((s) => (s.run ? [runStory(s.run, s.items)] : []));
  return {
    csv: {
      columns: story[0]?.csv?.columns ?? ['runId'],
      rows: story.flatMap((s) => s.csv?.rows ?? []),
    },
    data: {
      resource: resources,
      runs: stories.map((s) => (s.run ? runStory(s.run, s.items).data : { runId: s.runId, run: null })),
    },
    tables,
  };
};

/** `audit run <runId>`: every event and resource, the stages, the InSpec summary and report. */
export const auditRun = async (reader: AuditReader, runId: string): Promise<CommandResult> => {
  const [run, items] = await Promise.all([reader.run(runId), reader.runItems(runId)]);
  if (!run) throw new CliError(`no run ${runId} in the audit table`);
  return runStory(run, items);
};

/** `audit app <app>`: every run in a window, with its AMI, InSpec result and where it got to. */
export const auditApp = async (
  reader: AuditReader,
  appId: string,
  options: Window & { environment?: string; limit?: number },
): Promise<CommandResult> => {
  const rows = (await reader.runsWithItems(appId, options)).map(({ run, items }) => ({
    run,
    items,
    inspec: inspecOf(items),
    amis: items
      .filter((i) => i.entity === 'RESOURCE' && i.resourceType === 'AMI')
      .map((i) => String(i.resourceId)),
  }));
  return {
    data: rows.map(({ run, items, inspec, amis }) => ({
      ...runSummary(run),
      amiIds: amis,
      inspec: inspec ?? null,
      resources: timeline(items).filter((t) => t.kind === 'resource').length,
    })),
    tables: [
      {
        title: `runs of ${appId}${options.environment ? ` in ${options.environment}` : ''}`,
        columns: [
          'started',
          'run',
          'env',
          'version',
          'build',
          'requested by',
          'status',
          'reached',
          'AMI',
          'InSpec (pass/fail/skip)',
        ],
        rows: rows.map(({ run, items, inspec, amis }) => [
          String(run.startedAt),
          String(run.runId),
          String(run.environment),
          String(run.version),
          String(run.buildId),
          String(run.requestedBy),
          String(run.status),
          progressLine(run, runProgress(run, items)),
          amis.join(' '),
          inspec ? `${inspec.passed}/${inspec.failed}/${inspec.skipped}` : '',
        ]),
      },
    ],
    notes: [`${rows.length} run${rows.length === 1 ? '' : 's'}`],
  };
};

/** `audit live`: what is live for every app in an environment. */
export const auditLive = async (reader: AuditReader, environment: string): Promise<CommandResult> => {
  const live = await reader.live(environment);
  const data = live.map((l: Item) => ({
    appId: l.appId,
    environment: l.environment,
    version: l.version,
    buildId: l.buildId,
    runId: l.runId,
    amiId: l.amiId,
    since: l.since,
    asgName: l.asgName,
    launchTemplateId: l.launchTemplateId,
    targetGroupArn: l.targetGroupArn,
    previousRunId: l.previousRunId,
  }));
  return {
    data,
    tables: [
      {
        title: `live in ${environment}`,
        columns: ['app', 'version', 'build', 'run', 'AMI', 'since', 'ASG', 'replaced run'],
        rows: data.map((l) =>
          [l.appId, l.version, l.buildId, l.runId, l.amiId, l.since, l.asgName, l.previousRunId].map((v) =>
            v === undefined || v === null ? '' : String(v),
          ),
        ),
      },
    ],
    notes: [`${data.length} app${data.length === 1 ? '' : 's'} live in ${environment}`],
  };
};

/** `audit rejected`: trigger messages that were refused, and why. */
export const auditRejected = async (
  reader: AuditReader,
  environment: string,
  options: Window & { limit?: number },
): Promise<CommandResult> => {
  const rejected = await reader.rejected(environment, options);
  const data = rejected.map((r) => ({
    receivedAt: r.receivedAt,
    messageId: r.messageId,
    appId: r.appId,
    buildId: r.buildId,
    reason: r.reason,
    violations: (r.violations as string[] | undefined) ?? [],
    messageSha256: r.messageSha256,
    queueMessageId: r.queueMessageId,
    excerpt: r.excerpt,
  }));
  return {
    data,
    tables: [
      {
        title: `rejected triggers in ${environment}`,
        columns: ['received', 'message', 'app', 'build', 'violations'],
        rows: data.map((r) => [
          String(r.receivedAt),
          String(r.messageId),
          r.appId === undefined ? '' : String(r.appId),
          r.buildId === undefined ? '' : String(r.buildId),
          r.violations.join('; ') || String(r.reason ?? ''),
        ]),
      },
    ],
    notes: [`${data.length} rejected`],
  };
};

/**
 * `audit env`: every run of an environment in a window, across apps, each with its InSpec result
 * and AMI, plus the rejected triggers — one Query on byEnvironment (runs, resources and rejections
 * share it, keyed by time), joined here by run id.
 */
export const auditEnvironment = async (
  reader: AuditReader,
  environment: string,
  window: Window,
): Promise<CommandResult> => {
  const items = await reader.environment(environment, window);
  const runs = items.filter((i) => i.entity === 'RUN');
  const byRun = new Map<string, Item[]>();
  for (const item of items) {
    if (item.entity !== 'RESOURCE') continue;
    const list = byRun.get(String(item.runId)) ?? [];
    list.push(item);
    byRun.set(String(item.runId), list);
  }
  const rejected = items.filter((i) => i.entity === 'REJECTION');
  const rows = runs.map((run) => {
    const resources = byRun.get(String(run.runId)) ?? [];
    return {
      ...runSummary(run),
      amiIds: resources.filter((r) => r.resourceType === 'AMI').map((r) => String(r.resourceId)),
      inspec: inspecOf(resources) ?? null,
    };
  });
  return {
    data: {
      environment,
      window,
      runs: rows,
      rejected: rejected.map((r) => ({
        receivedAt: r.receivedAt,
        messageId: r.messageId,
        appId: r.appId,
        violations: r.violations,
      })),
    },
    tables: [
      {
        title: `runs in ${environment}${window.since ? ` since ${window.since}` : ''}${window.until ? ` until ${window.until}` : ''}`,
        columns: [
          'started',
          'app',
          'run',
          'version',
          'requested by',
          'status',
          'failed stage',
          'AMI',
          'InSpec (pass/fail/skip)',
          'report',
        ],
        rows: rows.map((r) => [
          r.startedAt as string,
          r.appId as string,
          r.runId as string,
          r.version as string,
          r.requestedBy as string,
          r.status as string,
          r.failedStage as string | undefined,
          r.amiIds.join(' '),
          r.inspec ? `${r.inspec.passed}/${r.inspec.failed}/${r.inspec.skipped}` : '',
          r.inspec?.report,
        ]),
      },
      {
        title: `rejected triggers in ${environment}`,
        columns: ['received', 'message', 'app', 'violations'],
        rows: rejected.map((r) => [
          String(r.receivedAt),
          String(r.messageId),
          r.appId === undefined ? '' : String(r.appId),
          ((r.violations as string[] | undefined) ?? []).join('; '),
        ]),
      },
    ],
    notes: [`${rows.length} run${rows.length === 1 ? '' : 's'}, ${rejected.length} rejected`],
  };
};
