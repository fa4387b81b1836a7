/**
 * What each benchmark section returns to bench/run.ts, which prints the sections and writes them
 * all as one JSON file under bench/results/. Figures are printed, never asserted by a test.
 */
export interface Target {
  /** What the issue asks for, e.g. "bundle ≤ 1.3× floor (lock)". */
  name: string;
  met: boolean;
  /** The measured figure against the limit, e.g. "1.12× (limit 1.3×)". */
  detail: string;
}

export interface BenchSection {
  /** Short id, also the key in the JSON file: "coldStart", "orchestration", "audit", "throughput". */
  id: string;
  title: string;
  /** Plain-text table(s) for the terminal (cli-table3 or aligned columns), already rendered. */
  text: string;
  /** Every figure behind the text, JSON-serialisable. */
  data: unknown;
  targets: Target[];
}

/** Median of a non-empty list of numbers. */
export const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

/** `promise`, or an error naming `what` once `ms` have passed: a stuck run must not hang the bench. */
export const within = async <T>(ms: number, promise: Promise<T>, what: string): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`bench: ${what} did not finish within ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
};
