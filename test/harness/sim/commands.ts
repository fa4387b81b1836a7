import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  InvalidDocument,
  InvalidInstanceId,
  InvalidParameters,
  type DescribeInstanceInformationCommandInput,
  type ListCommandInvocationsCommandInput,
  type ListCommandsCommandInput,
  type SendCommandCommandInput,
} from '@aws-sdk/client-ssm';
import { parse } from 'yaml';
import type { Ec2Sim } from './ec2';
import type { ElbSim } from './elb';
import type { ParameterStoreSim } from './ssm';

/** How a simulated command behaves. */
export interface CommandScenario {
  /**
   * - success: the tool ran and wrote its result
   * - fail: the tool failed before making anything
   * - fail-after-ami: Packer made (and tagged) an AMI, then the bake failed
   * - no-ami: Packer exited 0 without an AMI; the script notices and fails
   * - bad-result: the command succeeded but wrote a result.json that breaks its schema
   * - hang: never ends on its own (until cancelled or timed out)
   */
  outcome: 'success' | 'fail' | 'fail-after-ami' | 'no-ami' | 'bad-result' | 'hang';
  /** Bake: leave the AMI unencrypted (Distribute must copy it). */
  unencrypted?: boolean;
  /** Validate: failed controls InSpec reports. */
  failedControls?: number;
  /** The status-change event never reaches EventBridge (the reconciler must notice). */
  loseEvent?: boolean;
  /** Simulated run time; the reconciler is run once per 5 simulated minutes meanwhile. */
  simulatedSeconds?: number;
  /** The command keeps running (InProgress) until this settles: a long build a test ends when it chooses. */
  runsUntil?: Promise<unknown>;
}

export interface SimCommand {
  commandId: string;
  documentName: string;
  step: 'bake' | 'provision' | 'validate';
  parameters: Record<string, string>;
  comment: string;
  instanceId: string;
  status: string;
  outputBucket: string;
  outputPrefix: string;
  stderrKey?: string;
  stderr: string;
  requestedAt: Date;
}

export interface GreenStack {
  runId: string;
  appId: string;
  launchTemplateId: string;
  asgName: string;
  targetGroupArn: string;
  albDns: string;
}

export interface StatusChangeEvent {
  version: '0';
  id: string;
  'detail-type': 'EC2 Command Status-change Notification';
  source: 'aws.ssm';
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: { 'command-id': string; 'document-name': string; status: string; 'requested-date-time': string };
}

interface DocumentDefinition {
  parameters: Record<string, { allowedPattern?: string }>;
}

const TERMINAL = new Set(['Success', 'Failed', 'Cancelled', 'TimedOut']);
const hex = (n: number) => randomUUID().replace(/-/g, '').slice(0, n);

export interface CommandsSimDeps {
  repoRoot: string;
  stage: string;
  region: string;
  accountId: string;
  kmsKeyArn: string;
  builders: { instanceId: string; tags: Record<string, string> }[];
  parameters: ParameterStoreSim;
  ec2: Ec2Sim;
  elb: ElbSim;
  s3: S3Client;
  /** EventBridge: delivers a status-change event to the rule's target. */
  emit: (event: StatusChangeEvent) => Promise<void>;
  /** One scheduled reconciler run (simulated time passing). */
  tick: () => Promise<void>;
}

/**
 * SSM Run Command stand-in for the pipeline's three documents. SendCommand is checked like SSM
 * does (document exists, every parameter declared and matching its allowedPattern, instance
 * online); the command then "runs" per scenario: it makes what the real tool would (an AMI and
 * snapshots, a green stack, an InSpec report), writes result.json and stderr to S3, and emits the
 * status-change event that EventBridge routes to command-completed.
 */
export class CommandsSim {
  readonly commands = new Map<string, SimCommand>();
  /** Green stacks by run id (what Terraform's release layer made). */
  readonly stacks = new Map<string, GreenStack>();
  private readonly documents = new Map<string, DocumentDefinition>();
  private readonly scenarios = new Map<string, CommandScenario>();
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly deps: CommandsSimDeps) {
    for (const step of ['bake', 'provision', 'validate'] as const) {
      const doc = parse(
        readFileSync(path.join(deps.repoRoot, 'config/ssm', `${step}.yml`), 'utf8'),
      ) as DocumentDefinition;
      this.documents.set(`ami-pipeline-${deps.stage}-${step}`, doc);
    }
  }

  /** Sets how the next commands of `step` for `appId` behave (default: success). */
  setScenario(appId: string, step: SimCommand['step'] | 'destroy', scenario: CommandScenario): void {
    this.scenarios.set(`${appId}/${step}`, scenario);
  }

  sendCommand(input: SendCommandCommandInput) {
    const documentName = input.DocumentName ?? '';
    const doc = this.documents.get(documentName);
    if (!doc)
      throw new InvalidDocument({ message: `document ${documentName} does not exist`, $metadata: {} });
    const parameters: Record<string, string> = {};
    for (const [name, values] of Object.entries(input.Parameters ?? {})) {
      const spec = doc.parameters[name];
      const value = values[0] ?? '';
      if (!spec || values.length !== 1)
        throw new InvalidParameters({ message: `parameter ${name} is not declared`, $metadata: {} });
      if (spec.allowedPattern && !new RegExp(spec.allowedPattern).test(value)) {
        throw new InvalidParameters({
          message: `parameter ${name} does not match ${spec.allowedPattern}`,
          $metadata: {},
        });
      }
      parameters[name] = value;
    }
    for (const name of Object.keys(doc.parameters)) {
      if (!(name in parameters))
        throw new InvalidParameters({ message: `parameter ${name} is required`, $metadata: {} });
    }
    const instanceId = input.InstanceIds?.[0] ?? '';
    if (input.InstanceIds?.length !== 1 || !this.deps.builders.some((b) => b.instanceId === instanceId)) {
      throw new InvalidInstanceId({
        message: `instance ${instanceId} is not a managed builder`,
        $metadata: {},
      });
    }
    const command: SimCommand = {
      commandId: randomUUID(),
      documentName,
      step: documentName.split('-').pop() as SimCommand['step'],
      parameters,
      comment: input.Comment ?? '',
      instanceId,
      status: 'InProgress',
      outputBucket: input.OutputS3BucketName ?? '',
      outputPrefix: input.OutputS3KeyPrefix ?? '',
      stderr: '',
      requestedAt: new Date(),
    };
    this.commands.set(command.commandId, command);
    // Whatever goes wrong while "running" (e.g. a run config that no longer exists) fails the
    // command, as a failing script would, instead of escaping the harness.
    const execution = this.execute(command)
      .catch((err: unknown) => this.finish(command, 'Failed', `command failed: ${(err as Error).message}`))
      .finally(() => this.running.delete(execution));
    this.running.add(execution);
    return {
      Command: {
        CommandId: command.commandId,
        DocumentName: documentName,
        Status: 'Pending',
        InstanceIds: [instanceId],
      },
      $metadata: {},
    };
  }

  cancelCommand(input: { CommandId?: string | undefined }) {
    const command = this.commands.get(input.CommandId ?? '');
    if (command && !TERMINAL.has(command.status)) {
      const finishing = this.finish(command, 'Cancelled', 'command cancelled').finally(() =>
        this.running.delete(finishing),
      );
      this.running.add(finishing);
    }
    return { $metadata: {} };
  }

  /** One command by id, or (as SSM lists them) every command matching the filters, newest first. */
  listCommands(input: ListCommandsCommandInput) {
    const filter = (key: string) => input.Filters?.find((f) => f.key === key)?.value;
    const after = filter('InvokedAfter');
    const before = filter('InvokedBefore');
    const matching = input.CommandId
      ? [this.commands.get(input.CommandId)].flatMap((c) => (c ? [c] : []))
      : [...this.commands.values()]
          .filter((c) => !after || c.requestedAt.getTime() >= Date.parse(after))
          .filter((c) => !before || c.requestedAt.getTime() <= Date.parse(before))
          .filter((c) => !filter('DocumentName') || c.documentName === filter('DocumentName'))
          .filter((c) => !filter('Status') || c.status === filter('Status'))
          .reverse();
    return {
      Commands: matching.map((command) => ({
        CommandId: command.commandId,
        DocumentName: command.documentName,
        Status: command.status as 'Success',
        Comment: command.comment,
        RequestedDateTime: command.requestedAt,
        InstanceIds: [command.instanceId],
        Parameters: Object.fromEntries(Object.entries(command.parameters).map(([k, v]) => [k, [v]])),
      })),
      $metadata: {},
    };
  }

  listCommandInvocations(input: ListCommandInvocationsCommandInput) {
    const command = this.commands.get(input.CommandId ?? '');
    return {
      CommandInvocations: command
        ? [
            {
              CommandId: command.commandId,
              InstanceId: command.instanceId,
              Status: command.status as 'Success',
              ...(command.stderrKey
                ? {
                    StandardErrorUrl: `https://s3.${this.deps.region}.amazonaws.com/${command.outputBucket}/${command.stderrKey}`,
                  }
                : {}),
              CommandPlugins: [{ Name: 'aws:runShellScript', Output: command.stderr.slice(-2500) }],
            },
          ]
        : [],
      $metadata: {},
    };
  }

  describeInstanceInformation(input: DescribeInstanceInformationCommandInput) {
    const builders = this.deps.builders.filter((b) =>
      (input.Filters ?? []).every((f) => {
        if (f.Key === 'InstanceIds') return f.Values?.includes(b.instanceId);
        if (f.Key?.startsWith('tag:')) return f.Values?.includes(b.tags[f.Key.slice(4)] ?? '\u0000');
        return true;
      }),
    );
    return {
      InstanceInformationList: builders.map((b) => ({
        InstanceId: b.instanceId,
        PingStatus: 'Online' as const,
        PlatformType: 'Linux' as const,
      })),
      $metadata: {},
    };
  }

  /** Whether a command is mid-way through running or reporting. */
  busy(): boolean {
    return this.running.size > 0;
  }

  /** Resolves when every command started so far has ended (or is hanging). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  private async execute(command: SimCommand): Promise<void> {
    const config = JSON.parse(
      this.deps.parameters.getParameter({ Name: command.parameters.runConfigParameter, WithDecryption: true })
        .Parameter?.Value ?? '{}',
    ) as {
      run: { runId: string };
      release: { appId: string; version: string };
      platform: { tags: Record<string, string> };
      app: { runtime: { healthCheckPath: string; healthCheckExpectedStatus: number } };
    };
    const appId = config.release.appId;
    const mode = command.parameters.mode ?? 'run';
    const scenario = this.scenarios.get(`${appId}/${mode === 'destroy' ? 'destroy' : command.step}`) ?? {
      outcome: 'success',
    };
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (scenario.outcome === 'hang') {
      // Ends only by CancelCommand (or never): a long build whose state times out.
      return;
    }
    for (let t = 0; t < Math.ceil((scenario.simulatedSeconds ?? 0) / 300); t++) await this.deps.tick();
    await scenario.runsUntil;
    if (TERMINAL.has(command.status)) return; // cancelled meanwhile

    const resultKey = `${command.parameters.resultPrefix}/result.json`;
    const bucket = command.parameters.artifactsBucket ?? '';
    const writeResult = (body: unknown) =>
      this.deps.s3.send(new PutObjectCommand({ Bucket: bucket, Key: resultKey, Body: JSON.stringify(body) }));

    if (command.step === 'bake') {
      if (scenario.outcome === 'fail')
        return this.finish(
          command,
          'Failed',
          'amazon-ebs: Error launching source instance: UnauthorizedOperation\nBuild finished with errors',
        );
      if (scenario.outcome === 'no-ami')
        return this.finish(
          command,
          'Failed',
          'bake: packer exited 0 but produced no AMI (manifest has no artifact)',
        );
      const image = this.deps.ec2.createImage({
        name: `${appId}-${config.release.version}-${config.run.runId}`,
        encrypted: !scenario.unencrypted,
        ...(scenario.unencrypted ? {} : { kmsKeyId: command.parameters.kmsKeyArn as string }),
        tags: { ...config.platform.tags },
      });
      if (scenario.outcome === 'fail-after-ami')
        return this.finish(command, 'Failed', 'bake: could not upload the packer manifest: AccessDenied');
      await writeResult(
        scenario.outcome === 'bad-result'
          ? { amiId: image.imageId, snapshotIds: [] }
          : { amiId: image.imageId, snapshotIds: image.snapshotIds, region: this.deps.region },
      );
      return this.finish(command, 'Success', '');
    }

    if (command.step === 'provision') {
      const runId = config.run.runId;
      if (mode === 'destroy') {
        if (scenario.outcome !== 'success')
          return this.finish(
            command,
            'Failed',
            'terraform destroy: Error: deleting Auto Scaling Group: ResourceInUse',
          );
        const stack = this.stacks.get(runId);
        if (stack) {
          try {
            this.deps.elb.deleteTargetGroup(stack.targetGroupArn);
          } catch (err) {
            return this.finish(
              command,
              'Failed',
              `terraform destroy: Error: deleting target group: ${(err as Error).message}`,
            );
          }
        }
        this.stacks.delete(runId);
        await writeResult({ destroyed: true });
        return this.finish(command, 'Success', '');
      }
      // terraform apply may fail half-way and still leave resources: model that with a stack.
      // The app layer (ALB, listener) once per app, the release layer (target group = green) per run.
      const loadBalancer = await this.deps.elb.ensureLoadBalancer(appId);
      const { healthCheckPath, healthCheckExpectedStatus } = config.app.runtime;
      const stack: GreenStack = {
        runId,
        appId,
        launchTemplateId: `lt-${hex(17)}`,
        asgName: `${appId}-${config.run.runId}`,
        targetGroupArn: this.deps.elb.createTargetGroup(
          appId,
          runId,
          healthCheckPath,
          healthCheckExpectedStatus,
        ),
        albDns: loadBalancer.dnsName,
      };
      this.stacks.set(runId, stack);
      if (scenario.outcome === 'fail')
        return this.finish(
          command,
          'Failed',
          'terraform apply: Error: creating Auto Scaling Group: ValidationError: health check grace period',
        );
      const { runId: _r, appId: _a, ...outputs } = stack;
      await writeResult(
        scenario.outcome === 'bad-result'
          ? { asgName: stack.asgName }
          : { ...outputs, terraformStateVersion: hex(32) },
      );
      return this.finish(command, 'Success', '');
    }

    // validate
    if (scenario.outcome === 'fail')
      return this.finish(command, 'Failed', 'inspec: Could not fetch inventory: no instances in service');
    const failed = scenario.failedControls ?? 0;
    const reportKey = `${command.parameters.resultPrefix}/inspec-report.json`;
    await this.deps.s3.send(
      new PutObjectCommand({
        Bucket: command.parameters.reportsBucket ?? '',
        Key: reportKey,
        Body: JSON.stringify({ profiles: [], statistics: { duration: 1.2 }, failed }),
      }),
    );
    await writeResult({ passed: 120 - failed, failed, skipped: 3, reportKey });
    const allowed = Number(command.parameters.allowedFailedControls);
    if (failed > allowed) {
      return this.finish(
        command,
        'Failed',
        `InSpec: ${failed} failed controls exceed the allowed ${allowed} (report s3://${command.parameters.reportsBucket}/${reportKey})`,
      );
    }
    return this.finish(command, 'Success', '');
  }

  private async finish(command: SimCommand, status: string, stderr: string): Promise<void> {
    if (TERMINAL.has(command.status)) return;
    command.status = status;
    command.stderr = stderr;
    if (stderr) {
      command.stderrKey = `${command.outputPrefix}/${command.commandId}/${command.instanceId}/awsrunShellScript/0.awsrunShellScript/stderr`;
      await this.deps.s3.send(
        new PutObjectCommand({ Bucket: command.outputBucket, Key: command.stderrKey, Body: stderr }),
      );
    }
    const mode = command.parameters.mode ?? 'run';
    const appId = command.parameters.runConfigParameter?.split('/')[3] ?? '';
    const scenario = this.scenarios.get(`${appId}/${mode === 'destroy' ? 'destroy' : command.step}`);
    if (scenario?.loseEvent) return;
    await this.deps.emit({
      version: '0',
      id: randomUUID(),
      'detail-type': 'EC2 Command Status-change Notification',
      source: 'aws.ssm',
      account: this.deps.accountId,
      time: new Date().toISOString(),
      region: this.deps.region,
      resources: [`arn:aws:ec2:${this.deps.region}:${this.deps.accountId}:instance/${command.instanceId}`],
      detail: {
        'command-id': command.commandId,
        'document-name': command.documentName,
        status,
        'requested-date-time': command.requestedAt.toISOString(),
      },
    });
  }
}
