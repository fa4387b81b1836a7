import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { CommandStep } from '../../../shared/commands/contract';

export const REPO_DIR = path.join(__dirname, '..', '..', '..');
export const CONFIG_DIR = path.join(REPO_DIR, 'config');
export const SCRIPTS_DIR = path.join(CONFIG_DIR, 'ssm', 'scripts');
const FAKES_DIR = path.join(__dirname, '..', 'fakes');

/** One call a stand-in tool received. */
export interface ToolCall {
  tool: 'aws' | 'packer' | 'terraform' | 'inspec';
  argv: string[];
}

export interface ScriptRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * A private builder for one test: stand-in `aws`, `packer`, `terraform` and `inspec` first on PATH
 * (shadowing any real ones), Parameter Store and S3 as folders, and a log of every tool call.
 */
export class Sandbox {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'ami-pipeline-builder-'));
  readonly bin = path.join(this.dir, 'bin');
  readonly workDir = path.join(this.dir, 'work');
  readonly s3Dir = path.join(this.dir, 's3');
  readonly ssmDir = path.join(this.dir, 'ssm');
  readonly siteDir = path.join(this.dir, 'site');
  readonly tfOutputsDir = path.join(this.dir, 'tf-outputs');
  readonly logFile = path.join(this.dir, 'calls.jsonl');

  constructor() {
    for (const dir of [this.bin, this.workDir, this.s3Dir, this.ssmDir, this.siteDir, this.tfOutputsDir]) {
      mkdirSync(dir, { recursive: true });
    }
    for (const name of readdirSync(FAKES_DIR)) {
      copyFileSync(path.join(FAKES_DIR, name), path.join(this.bin, name));
      chmodSync(path.join(this.bin, name), 0o755);
    }
    writeFileSync(this.logFile, '');
  }

  /** Stores a Parameter Store value the stand-in `aws ssm get-parameter` returns. */
  putParameter(name: string, value: string): void {
    const file = path.join(this.ssmDir, name);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, value);
  }

  putObject(bucket: string, key: string, body: string): void {
    const file = path.join(this.s3Dir, bucket, key);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, body);
  }

  /** An object's body in the fake S3, or undefined. */
  object(bucket: string, key: string): string | undefined {
    const file = path.join(this.s3Dir, bucket, key);
    return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
  }

  /** What `terraform -chdir=…/terraform-<layer> output -json` prints. */
  setTerraformOutputs(layer: 'app' | 'release', outputs: Record<string, unknown>): void {
    const json = Object.fromEntries(
      Object.entries(outputs).map(([name, value]) => [name, { sensitive: false, type: typeof value, value }]),
    );
    writeFileSync(path.join(this.tfOutputsDir, `${layer}.json`), JSON.stringify(json));
  }

  /** A file the script left in its work dir, and its permission bits. */
  workFile(name: string): { text: string; mode: number } {
    const file = path.join(this.workDir, name);
    return { text: readFileSync(file, 'utf8'), mode: statSync(file).mode & 0o777 };
  }

  calls(): ToolCall[] {
    return readFileSync(this.logFile, 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as ToolCall);
  }

  callsTo(tool: ToolCall['tool']): string[][] {
    return this.calls()
      .filter((call) => call.tool === tool)
      .map((call) => call.argv);
  }

  /** The environment of a builder: PATH with the stand-ins first, nothing of the test runner's AWS setup. */
  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return {
      PATH: `${this.bin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      HOME: this.dir,
      TMPDIR: this.dir,
      FAKE_LOG: this.logFile,
      FAKE_S3: this.s3Dir,
      FAKE_SSM: this.ssmDir,
      FAKE_TF_OUTPUTS: this.tfOutputsDir,
      AMI_PIPELINE_SITE_DIR: this.siteDir,
      ...extra,
    };
  }

  /** Runs config/ssm/scripts/<step>.sh as the document does: parameters as environment variables. */
  runStep(
    step: CommandStep,
    parameters: Record<string, string>,
    extra: Record<string, string> = {},
  ): ScriptRun {
    return this.run('bash', [path.join(SCRIPTS_DIR, `${step}.sh`)], {
      ...parameters,
      WORK_DIR: this.workDir,
      ...extra,
    });
  }

  run(command: string, args: string[], extra: Record<string, string> = {}): ScriptRun {
    const out = spawnSync(command, args, {
      env: this.env(extra),
      encoding: 'utf8',
      cwd: this.dir,
      timeout: 20000,
    });
    return { status: out.status, stdout: out.stdout, stderr: out.stderr };
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The last line of stderr: what the pipeline shows as the failure cause. */
export const lastLine = (text: string): string => text.trimEnd().split('\n').at(-1) ?? '';
