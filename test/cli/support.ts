import { fork } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import S3rver from 's3rver';
import { stageConfig, type Context, type GlobalOptions, type StackNames } from '../../cli/context';
import { run, type CliDeps } from '../../cli/main';
import type { Io } from '../../cli/output';
import { LocalTemplate } from '../harness/template';
import { createAuditTable, seedAuditTable, type SeedOptions } from './seed';

/** Credentials s3rver accepts (dynalite accepts any). */
export const CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

/** One request as the emulator received it: the `X-Amz-Target` operation and its JSON body. */
export interface WireRequest {
  operation: string;
  input: Record<string, unknown>;
}

export interface DynamoEmulator {
  endpoint: string;
  /** Starts (or restarts) recording what reaches the emulator, from any client. */
  record(): Promise<void>;
  /** Every request since `record()`, except the test's own writes (`documentClient(…, { writer })`). */
  requests(): Promise<WireRequest[]>;
  stop(): Promise<void>;
}

type ChildMessage =
  | { type: 'listening'; port: number }
  | { type: 'request'; operation: string; input: Record<string, unknown>; writer: boolean }
  | { type: 'synced'; id: number };

/**
 * dynalite in memory on 127.0.0.1 and a random port, in a child process (dynalite-process.cjs) so
 * seeding and answering use both cores. It records requests at the HTTP level (the `X-Amz-Target`
 * header and body): a test sees what actually reached "DynamoDB", not what a mock was told.
 */
export const startDynamo = async (): Promise<DynamoEmulator> => {
  const child = fork(path.join(__dirname, 'dynalite-process.cjs'), [], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const requests: WireRequest[] = [];
  const synced = new Map<number, () => void>();
  let nextId = 0;
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`dynalite exited with ${code} before listening`)));
    child.on('message', (message: ChildMessage) => {
      if (message.type === 'listening') resolve(message.port);
      else if (message.type === 'request') {
        if (!message.writer) requests.push({ operation: message.operation, input: message.input });
      } else synced.get(message.id)?.();
    });
  });
  child.removeAllListeners('exit');
  // A crashed emulator must fail the test, not leave it waiting for an answer.
  const failed = new Set<(err: Error) => void>();
  child.once('exit', (code) => {
    for (const reject of failed) reject(new Error(`dynalite exited with ${code}`));
  });
  const send = (message: { type: 'record'; on: boolean } | { type: 'sync' }) =>
    new Promise<void>((resolve, reject) => {
      if (child.exitCode !== null) return reject(new Error(`dynalite exited with ${child.exitCode}`));
      const id = nextId++;
      failed.add(reject);
      synced.set(id, () => {
        synced.delete(id);
        failed.delete(reject);
        resolve();
      });
      child.send({ ...message, id });
    });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    async record() {
      await send({ type: 'record', on: true });
      requests.length = 0;
    },
    async requests() {
      await send({ type: 'sync' });
      return [...requests];
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.disconnect();
      }),
  };
};

export interface S3Emulator {
  endpoint: string;
  stop(): Promise<void>;
}

/** s3rver on 127.0.0.1 and a random port, storing under `dir`. */
export const startS3 = async (dir: string): Promise<S3Emulator> => {
  mkdirSync(dir, { recursive: true });
  const s3 = new S3rver({ address: '127.0.0.1', port: 0, directory: path.join(dir, 's3'), silent: true });
  const address = await s3.run();
  return { endpoint: `http://127.0.0.1:${address.port}`, stop: () => s3.close() };
};

/** The local names a stage's stack would have (the harness's LocalTemplate, as `--local` uses). */
export const namesFor = (stage: string): StackNames => {
  const template = new LocalTemplate(stageConfig(stage));
  return {
    auditTable: template.resource('AuditTable').ref,
    artifactsBucket: template.resource('ArtifactsBucket').ref,
    reportsBucket: template.resource('ReportsBucket').ref,
    triggerTopicArn: template.resource('TriggerTopic').ref,
  };
};

/**
 * A DocumentClient on the emulator. `writer`: the test's own client (seeding, moving runs forward),
 * whose requests the emulator leaves out of what it reports as the CLI's.
 */
export const documentClient = (
  endpoint: string,
  region: string,
  { writer = false }: { writer?: boolean } = {},
): DynamoDBDocumentClient => {
  const client = new DynamoDBClient({ endpoint, region, credentials: CREDENTIALS });
  if (writer) {
    client.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { headers?: Record<string, string> };
        if (request.headers) request.headers['x-test-writer'] = '1';
        return next(args);
      },
      { step: 'build', name: 'testWriterHeader' },
    );
  }
  return DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
};

export const s3Client = (endpoint: string, region: string): S3Client =>
  new S3Client({
    endpoint,
    region,
    credentials: CREDENTIALS,
    forcePathStyle: true,
    // s3rver stores aws-chunked bodies verbatim: only send checksums when an API requires them.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });

export interface TestContexts {
  /** Passed to `run()` as `deps.open`. */
  open: NonNullable<CliDeps['open']>;
  /** Contexts opened and closed so far (every command must close what it opened). */
  readonly opened: GlobalOptions[];
  readonly closed: number;
}

/**
 * An `open` for `run()` bound to this test file's emulators: the real commands, a real DynamoDB
 * emulator, the stage's local names. SNS goes nowhere real (tests mock SNSClient); S3 reaches
 * s3rver when given, else an unused endpoint.
 */
export const testContexts = (endpoints: { dynamodb: string; s3?: string }): TestContexts => {
  const opened: GlobalOptions[] = [];
  let closed = 0;
  const open = async (options: GlobalOptions): Promise<Context> => {
    const stage = stageConfig(options.stage);
    opened.push(options);
    const db = documentClient(endpoints.dynamodb, stage.region);
    const s3 = s3Client(endpoints.s3 ?? 'http://127.0.0.1:9', stage.region);
    const sns = new SNSClient({ region: stage.region, credentials: CREDENTIALS });
    return {
      stage,
      names: namesFor(stage.stage),
      db,
      s3,
      sns,
      local: false,
      async close() {
        db.destroy();
        s3.destroy();
        sns.destroy();
        closed++;
      },
    };
  };
  return {
    open,
    opened,
    get closed() {
      return closed;
    },
  };
};

/** Everything a command printed: stdout as one string, stderr as lines. */
export interface Printed {
  code: number;
  stdout: string;
  stderr: string[];
}

/** An `Io` that keeps what is written, as processIo would print it. */
export const captureIo = (isTTY = false) => {
  const out: string[] = [];
  const err: string[] = [];
  const listeners: ((line: string) => void)[] = [];
  // As processIo: a write without a final newline gets one.
  const line = (text: string) => (text.endsWith('\n') ? text : `${text}\n`);
  const io: Io = {
    out: (text) => out.push(line(text)),
    err: (text) => {
      err.push(line(text));
      for (const line of text.split('\n').filter(Boolean)) for (const listener of listeners) listener(line);
    },
    isTTY,
  };
  return {
    io,
    /** Called with each stderr line as it is written. */
    onErrLine: (listener: (line: string) => void) => listeners.push(listener),
    stdout: () => out.join(''),
    stderr: () => err.join('').split('\n').filter(Boolean),
  };
};

/** Runs one command line through the real `run()` with `deps` (io captured unless given). */
export const cli = async (
  argv: string[],
  deps: CliDeps,
  capture: ReturnType<typeof captureIo> = captureIo(),
): Promise<Printed> => {
  const code = await run(argv, { ...deps, io: capture.io });
  return { code, stdout: capture.stdout(), stderr: capture.stderr() };
};

/**
 * RFC 4180 CSV (quotes, doubled quotes, separators and newlines inside quotes), so tests read
 * `--output csv` as a spreadsheet would rather than by splitting on commas.
 */
export const parseCsv = (text: string): string[][] => {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || (c === '\r' && text[i + 1] === '\n')) {
      if (c === '\r') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (quoted) throw new Error('CSV ends inside a quoted field');
  if (field !== '' || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows;
};

/** CSV rows as objects keyed by the header row (which must be the first row). */
export const csvRecords = (text: string): { header: string[]; records: Record<string, string>[] } => {
  const [header, ...rows] = parseCsv(text);
  if (!header) throw new Error('CSV has no header row');
  for (const row of rows) {
    if (row.length !== header.length)
      throw new Error(`CSV row has ${row.length} fields, header ${header.length}`);
  }
  return { header, records: rows.map((row) => Object.fromEntries(header.map((h, i) => [h, row[i] ?? '']))) };
};

/** The operations the CLI sent, asserting none reads the whole table (Scan) or goes around the keys (PartiQL). */
export const expectQueriesOnly = (requests: readonly WireRequest[], allowed: string[] = ['Query']) => {
  const operations = [...new Set(requests.map((r) => r.operation))].sort();
  expect(operations).not.toContain('Scan');
  expect(operations).not.toContain('ExecuteStatement');
  expect(operations).not.toContain('BatchExecuteStatement');
  expect(operations).not.toContain('ExecuteTransaction');
  for (const operation of operations) expect(allowed).toContain(operation);
  // DynamoDB refuses an empty string as a key condition value (dynalite accepts it): never send one.
  const emptyValues = requests
    .filter((r) => r.operation === 'Query')
    .flatMap((r) => Object.entries((r.input.ExpressionAttributeValues ?? {}) as Record<string, unknown>))
    .filter(([, value]) => JSON.stringify(value) === '{"S":""}')
    .map(([name]) => name);
  expect(emptyValues).toEqual([]);
  return operations;
};

/**
 * The rows of a cli-table3 table in `table` output (header row first), each line's cells trimmed:
 * the table under the line `title`, or the first table. Cells must be single-line.
 */
export const tableRows = (text: string, title?: string): string[][] => {
  const lines = text.split('\n');
  const top = title ? lines.indexOf(title) + 1 : lines.findIndex((l) => l.startsWith('┌'));
  if (top <= 0 && title) throw new Error(`no table titled "${title}" in:\n${text}`);
  if (!lines[top]?.startsWith('┌')) throw new Error(`no table at line ${top} in:\n${text}`);
  const rows: string[][] = [];
  for (let i = top + 1; i < lines.length && !lines[i]?.startsWith('└'); i++) {
    const line = lines[i] ?? '';
    if (line.startsWith('│'))
      rows.push(
        line
          .slice(1, -1)
          .split('│')
          .map((cell) => cell.trim()),
      );
  }
  return rows;
};

/** A table's rows as objects keyed by its header row. */
export const tableRecords = (text: string, title?: string): Record<string, string>[] => {
  const [header, ...rows] = tableRows(text, title);
  if (!header) throw new Error('table has no header row');
  return rows.map((row) => Object.fromEntries(header.map((h, i) => [h, row[i] ?? ''])));
};

/** Starts this file's dynalite and creates the audit table as the harness does. */
export const auditDynamo = async () => {
  const dynamo = await startDynamo();
  const stage = stageConfig('dev');
  const raw = new DynamoDBClient({
    endpoint: dynamo.endpoint,
    region: stage.region,
    credentials: CREDENTIALS,
  });
  const table = await createAuditTable(raw, stage);
  raw.destroy();
  const db = documentClient(dynamo.endpoint, stage.region, { writer: true });
  return {
    dynamo,
    /** The test's own writer (its requests are not reported as the CLI's). */
    db,
    table,
    stage,
    async stop() {
      db.destroy();
      await dynamo.stop();
    },
  };
};

/** `auditDynamo`, seeded (seed.ts); `seedMs` is how long seeding took. */
export const seededDynamo = async (options: SeedOptions = {}) => {
  const emulator = await auditDynamo();
  const started = Date.now();
  try {
    const seed = await seedAuditTable(emulator.db, emulator.stage, options);
    return { ...emulator, seed, seedMs: Date.now() - started };
  } catch (err) {
    // The emulator is a child process: left running, it would keep Jest from exiting.
    await emulator.stop();
    throw err;
  }
};
