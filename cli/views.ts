import { runProgress, type StageProgress } from '../shared/progress';
import { fieldsTable, type Cell, type CommandResult, type TableData } from './output';
import type { Item } from './queries';
import { secondsBetween } from './time';

/** The facts of a run item an operator or auditor asks for first. */
export const runSummary = (run: Item) => ({
  runId: run.runId,
  appId: run.appId,
  environment: run.environment,
  version: run.version,
  buildId: run.buildId,
  kind: run.kind,
  requestedBy: run.requestedBy,
  status: run.status,
  startedAt: run.startedAt,
  finishedAt: run.finishedAt,
  seconds: secondsBetween(run.startedAt, run.finishedAt),
  failedStage: run.failedStage,
  errorName: run.errorName,
  errorCause: run.errorCause,
  compensationStatus: run.status === 'FAILED' ? run.compensationStatus : undefined,
  executionArn: run.executionArn,
});

export const runTable = (run: Item): TableData =>
  fieldsTable(
    `run ${String(run.runId)}`,
    Object.entries(runSummary(run)).filter(([key]) => key !== 'runId') as [string, Cell][],
  );

const STATE_MARK: Record<StageProgress['state'], string> = {
  done: '✓ done',
  running: '… running',
  failed: '✗ failed',
  pending: '· pending',
  skipped: '- skipped',
};

export const progressTable = (stages: StageProgress[], title = 'stages'): TableData => ({
  title,
  columns: ['stage', 'state', 'seconds', 'ended', 'detail'],
  rows: stages.map((s) => [s.stage, STATE_MARK[s.state], s.seconds, s.endedAt, s.detail]),
});

/** One line per run: where it got to (`Bake ✗`, `TrafficShift …`) or `live`. */
export const progressLine = (run: Item, stages: StageProgress[]): string => {
  const failed = stages.find((s) => s.state === 'failed');
  if (failed) return `${failed.stage} ✗`;
  const running = stages.find((s) => s.state === 'running');
  if (running) return `${running.stage} …`;
  return run.status === 'SUCCEEDED' ? 'live' : String(run.status ?? '');
};

/** The InSpec result of a run, from its INSPEC_REPORT resource. */
export const inspecOf = (items: Item[]) => {
  const report = items.find((i) => i.entity === 'RESOURCE' && i.resourceType === 'INSPEC_REPORT');
  if (!report) return undefined;
  const detail = (report.detail as Item | undefined) ?? {};
  return {
    report: String(report.resourceId),
    passed: detail.passed as number | undefined,
    failed: detail.failed as number | undefined,
    skipped: detail.skipped as number | undefined,
  };
};

const compactDetail = (detail: unknown): string => {
  if (!detail || typeof detail !== 'object') return '';
  return Object.entries(detail as Item)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join(' ');
};

/** A run's events and resources in time order: what happened and what it made. */
export const timeline = (items: Item[]) =>
  items
    .filter((i) => i.entity === 'EVENT' || i.entity === 'RESOURCE')
    .map((i) =>
      i.entity === 'EVENT'
        ? {
            at: String(i.at),
            kind: 'event',
            type: String(i.type),
            stage: i.stage,
            id: i.id,
            detail: i.detail,
          }
        : {
            at: String(i.createdAt),
            kind: 'resource',
            type: String(i.resourceType),
            id: i.resourceId,
            detail: i.detail,
          },
    )
    .sort((a, b) => a.at.localeCompare(b.at) || a.kind.localeCompare(b.kind));

export const timelineTable = (items: Item[]): TableData => ({
  title: 'events and resources',
  columns: ['at', 'kind', 'type', 'id', 'detail'],
  rows: timeline(items).map((t) => [t.at, t.kind, t.type, t.id as Cell, compactDetail(t.detail)]),
});

/** The whole story of one run: summary, stages, InSpec, events and resources. */
export const runStory = (run: Item, items: Item[]): CommandResult & { data: Record<string, unknown> } => {
  const stages = runProgress(run, items);
  const inspec = inspecOf(items);
  const story = timelineTable(items);
  return {
    csv: {
      columns: ['runId', ...story.columns],
      rows: story.rows.map((row) => [String(run.runId), ...row]),
    },
    data: { run: runSummary(run), stages, inspec: inspec ?? null, timeline: timeline(items) },
    tables: [
      runTable(run),
      progressTable(stages),
      fieldsTable('InSpec', [
        ['report', inspec?.report ?? 'no report (the run did not reach Validate)'],
        ['passed', inspec?.passed],
        ['failed', inspec?.failed],
        ['skipped', inspec?.skipped],
      ]),
      story,
    ],
  };
};
