import Table from 'cli-table3';
import { stringify } from 'csv-stringify/sync';

export const OUTPUT_FORMATS = ['table', 'json', 'csv'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export type Cell = string | number | boolean | null | undefined;

export interface TableData {
  title?: string;
  columns: string[];
  rows: Cell[][];
}

/**
 * What a command answers: `data` is the whole answer (printed by `--output json`), `tables` its
 * human view (`table`); `csv` prints the first table, the one a spreadsheet wants.
 */
export interface CommandResult {
  data: unknown;
  tables: TableData[];
  /** Lines printed after the tables in `table` output (a summary, a hint). */
  notes?: string[];
  /** The table `--output csv` prints (default: the first). */
  csv?: TableData;
}

/** Where a command writes: stdout for answers, stderr for progress and errors. */
export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  /** True when stdout is a terminal (live redraws, colours). */
  isTTY: boolean;
}

export const processIo = (): Io => ({
  out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
  isTTY: Boolean(process.stdout.isTTY),
});

const text = (cell: Cell): string => (cell === null || cell === undefined ? '' : String(cell));

/** Longest cell a table shows; `--output json` always has the whole value. */
export const MAX_CELL = 600;

/**
 * A cell on one line, of bounded length: a command's stderr tail (the cause of a failed stage) has
 * many lines, which would break the table's rows (and cli-table3 lays out long cells slowly).
 */
/** C0/C1 control characters but newline: a rejected message's excerpt must not drive the terminal. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g;

const tableCell = (cell: Cell): string => {
  const flat = text(cell)
    .replace(/\s*\r?\n\s*/g, ' ⏎ ')
    .replace(CONTROL, '\uFFFD');
  return flat.length > MAX_CELL
    ? `${flat.slice(0, MAX_CELL)}… (+${flat.length - MAX_CELL} chars; --output json has all)`
    : flat;
};

export const renderTable = (table: TableData): string => {
  const view = new Table({
    head: table.columns,
    // No colour codes: the output is read by people and by grep alike.
    style: { head: [], border: [], compact: true },
    wordWrap: true,
  });
  for (const row of table.rows) view.push(row.map(tableCell));
  const heading = table.title ? `${table.title}\n` : '';
  return table.rows.length === 0 ? `${heading}(none)` : `${heading}${view.toString()}`;
};

/**
 * A CSV cell a spreadsheet will not run: audit strings can come from anyone allowed to publish a
 * trigger, and a cell starting with = + - @ (or a tab/CR) is a formula to Excel and LibreOffice.
 */
const csvCell = (cell: Cell): string => {
  const value = text(cell).replace(CONTROL, (c) => (c === '\t' || c === '\r' ? c : '\uFFFD'));
  return /^[=+\-@\t\r]/.test(value) && !/^-?\d+(\.\d+)?$/.test(value) ? `'${value}` : value;
};

export const renderCsv = (table: TableData | undefined): string =>
  table ? stringify([table.columns, ...table.rows.map((row) => row.map(csvCell))]) : '';

export const render = (result: CommandResult, format: OutputFormat): string => {
  if (format === 'json') return `${JSON.stringify(result.data, null, 2)}\n`;
  if (format === 'csv') return renderCsv(result.csv ?? result.tables[0]);
  const parts = result.tables.map(renderTable);
  if (result.notes?.length) parts.push(result.notes.join('\n'));
  return `${parts.join('\n\n')}\n`;
};

/** A record as a two-column table (field, value), skipping empty values. */
export const fieldsTable = (title: string, fields: [string, Cell][]): TableData => ({
  title,
  columns: ['field', 'value'],
  rows: fields.filter(([, value]) => value !== undefined && value !== null && value !== ''),
});
