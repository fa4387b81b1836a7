/**
 * A run's stage-by-stage progress, read from the audit table alone (the run item and its
 * partition's events and resources), so operators and auditors see the same story, in AWS and
 * locally, long after Step Functions has dropped the execution history.
 *
 * Each stage ends at a milestone the workers already write; a stage starts when the one before it
 * ended (the first when the run started, lock wait included).
 */

/** The state machine's stages, in order, under the names its failure states record (`failedStage`). */
export const PIPELINE_STAGES = [
  'AcquireLock',
  'PreProvision',
  'Bake',
  'Distribute',
  'Provision',
  'Validate',
  'SmokeTest',
  'TrafficShift',
  'ExportLogs',
  'RecordRelease',
] as const;

export type PipelineStage = (typeof PIPELINE_STAGES)[number];

export type StageState = 'done' | 'running' | 'failed' | 'pending' | 'skipped';

export interface StageProgress {
  stage: PipelineStage;
  state: StageState;
  /** When the stage's milestone was written (undefined when it has none yet). */
  endedAt?: string;
  /** Seconds since the previous milestone. */
  seconds?: number;
  /** One line on what the stage produced (AMI id, InSpec counts, traffic steps). */
  detail?: string;
}

type Item = Record<string, unknown>;

const isEvent = (item: Item, type: string, stage?: string) =>
  item.entity === 'EVENT' && item.type === type && (stage === undefined || item.stage === stage);
const isResource = (item: Item, ...types: string[]) =>
  item.entity === 'RESOURCE' && types.includes(String(item.resourceType));
const detailOf = (item: Item | undefined): Item => (item?.detail as Item | undefined) ?? {};
const commandEnded = (step: string) => (item: Item) =>
  item.entity === 'EVENT' &&
  item.stage === step &&
  String(item.type).startsWith('COMMAND_') &&
  detailOf(item).mode !== 'destroy';
const latest = (items: Item[], at: (item: Item) => unknown = (i) => i.at): Item | undefined =>
  [...items].sort((a, b) => String(at(a)).localeCompare(String(at(b)))).at(-1);

interface Milestone {
  /** The item that ends the stage, or undefined while it has not ended. */
  end: (items: Item[]) => { at: string; ok: boolean; detail?: string } | undefined;
}

const MILESTONES: Record<PipelineStage, Milestone> = {
  // The lock has no milestone of its own: PreProvision is the first thing the run does with it.
  AcquireLock: { end: () => undefined },
  PreProvision: {
    end: (items) => {
      const event = items.find((i) => isEvent(i, 'PRE_PROVISIONED'));
      return event ? { at: String(event.at), ok: true } : undefined;
    },
  },
  Bake: {
    end: (items) => {
      const event = latest(items.filter(commandEnded('bake')));
      if (!event) return undefined;
      const ami = items.find((i) => isResource(i, 'AMI'));
      return {
        at: String(event.at),
        ok: event.type === 'COMMAND_SUCCESS',
        ...(ami ? { detail: String(ami.resourceId) } : {}),
      };
    },
  },
  Distribute: {
    end: (items) => {
      const shared = items.filter((i) =>
        isResource(i, 'LAUNCH_PERMISSION', 'SNAPSHOT_PERMISSION', 'KMS_GRANT'),
      );
      const last = latest(shared, (i) => i.createdAt);
      if (!last) return undefined;
      const accounts = [
        ...new Set(shared.filter((i) => isResource(i, 'LAUNCH_PERMISSION')).map((i) => detailOf(i).account)),
      ];
      return {
        at: String(last.createdAt),
        ok: true,
        ...(accounts.length ? { detail: `shared with ${accounts.join(', ')}` } : {}),
      };
    },
  },
  Provision: {
    end: (items) => {
      const event = latest(items.filter(commandEnded('provision')));
      if (!event) return undefined;
      const asg = items.find((i) => isResource(i, 'ASG'));
      return {
        at: String(event.at),
        ok: event.type === 'COMMAND_SUCCESS',
        ...(asg ? { detail: String(asg.resourceId) } : {}),
      };
    },
  },
  Validate: {
    end: (items) => {
      const event = latest(items.filter(commandEnded('validate')));
      if (!event) return undefined;
      const report = items.find((i) => isResource(i, 'INSPEC_REPORT'));
      const counts = detailOf(report);
      return {
        at: String(event.at),
        ok: event.type === 'COMMAND_SUCCESS',
        ...(report
          ? { detail: `InSpec ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped` }
          : {}),
      };
    },
  },
  // The first traffic step follows the smoke test at once (PrepareTraffic is a Pass).
  SmokeTest: {
    end: (items) => {
      const [first] = items
        .filter((i) => isEvent(i, 'TRAFFIC_SHIFTED'))
        .sort((a, b) => String(a.at).localeCompare(String(b.at)));
      return first ? { at: String(first.at), ok: true } : undefined;
    },
  },
  TrafficShift: {
    end: (items) => {
      const shifts = items
        .filter((i) => isEvent(i, 'TRAFFIC_SHIFTED'))
        .sort((a, b) => String(a.at).localeCompare(String(b.at)));
      const full = shifts.find((i) => detailOf(i).percent === 100);
      return full
        ? { at: String(full.at), ok: true, detail: `${shifts.map((i) => detailOf(i).percent).join(' → ')} %` }
        : undefined;
    },
  },
  // An app without log groups exports nothing: the stage then ends with the release.
  ExportLogs: {
    end: (items) => {
      const exported = latest(
        items.filter((i) => isResource(i, 'LOG_SUBSCRIPTION', 'LOG_GROUP')),
        (i) => i.createdAt,
      );
      if (exported) return { at: String(exported.createdAt), ok: true };
      const live = items.find((i) => isEvent(i, 'RELEASE_LIVE'));
      return live ? { at: String(live.at), ok: true, detail: 'no log groups' } : undefined;
    },
  },
  RecordRelease: {
    end: (items) => {
      const live = items.find((i) => isEvent(i, 'RELEASE_LIVE'));
      return live ? { at: String(live.at), ok: true } : undefined;
    },
  },
};

const secondsBetween = (from: string | undefined, to: string): number | undefined => {
  if (!from) return undefined;
  const ms = Date.parse(to) - Date.parse(from);
  return Number.isFinite(ms) ? Math.max(0, Math.round(ms / 1000)) : undefined;
};

/**
 * The progress of one run: `run` is its run item, `items` everything in its `RUN#<runId>`
 * partition (events and resources, any order).
 */
export const runProgress = (run: Item, items: Item[]): StageProgress[] => {
  const status = String(run.status ?? 'RUNNING');
  const failedStage = typeof run.failedStage === 'string' ? run.failedStage : undefined;
  const failedAt = failedStage ? PIPELINE_STAGES.indexOf(failedStage as PipelineStage) : -1;
  const ends = PIPELINE_STAGES.map((stage) => MILESTONES[stage].end(items));
  // A later stage's milestone proves the earlier stage had ended: a completion can be recorded just
  // after the state machine moved on (the task token is answered first), so clamp each end to the
  // earliest end after it.
  let bound: string | undefined;
  for (let i = ends.length - 1; i >= 0; i--) {
    const end = ends[i];
    if (!end) continue;
    if (bound !== undefined && end.at > bound) ends[i] = { ...end, at: bound };
    bound = ends[i]?.at;
  }
  // A stage is done when it, or any later stage, reached its milestone (the lock has none).
  const lastDone = ends.reduce((last, end, i) => (end?.ok ? i : last), -1);
  let previousAt = typeof run.startedAt === 'string' ? run.startedAt : undefined;
  return PIPELINE_STAGES.map((stage, i): StageProgress => {
    const end = ends[i];
    const base = { stage, ...(end?.detail ? { detail: end.detail } : {}) };
    if (end) {
      const seconds = secondsBetween(previousAt, end.at);
      previousAt = end.at;
      const failed = !end.ok || i === failedAt;
      return {
        ...base,
        state: failed ? 'failed' : 'done',
        endedAt: end.at,
        ...(seconds !== undefined ? { seconds } : {}),
      };
    }
    if (i === failedAt) return { ...base, state: 'failed' };
    if (i < lastDone || (status === 'SUCCEEDED' && failedAt < 0)) return { ...base, state: 'done' };
    if (status === 'FAILED') return { ...base, state: i < failedAt ? 'done' : 'skipped' };
    return { ...base, state: i === lastDone + 1 ? 'running' : 'pending' };
  });
};
