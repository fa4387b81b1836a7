/**
 * `npm run lint` step: `terraform fmt -check` and `terraform validate` of both layers in
 * config/terraform, offline, with the AWS provider from a local mirror (TF_PLUGIN_DIR, default
 * /opt/tf-plugins). Kept out of `npm test` because Terraform is not installable from the registries
 * CI has (npm, Debian); this fails loudly where Terraform or the mirror is missing.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const REPO = path.resolve(__dirname, '..', '..');
const TERRAFORM_DIR = path.join(REPO, 'config', 'terraform');
const pluginDir = process.env.TF_PLUGIN_DIR ?? '/opt/tf-plugins';
const env = {
  ...process.env,
  TF_CLI_CONFIG_FILE: '/dev/null',
  TF_IN_AUTOMATION: '1',
  CHECKPOINT_DISABLE: '1',
};

const terraform = (args: string[], cwd = REPO): string =>
  execFileSync('terraform', args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

try {
  terraform(['version']);
} catch {
  console.error('terraform-check: terraform is not on PATH (install it to lint config/terraform)');
  process.exit(1);
}
if (!existsSync(pluginDir)) {
  console.error(`terraform-check: no provider mirror at ${pluginDir} (set TF_PLUGIN_DIR)`);
  process.exit(1);
}

terraform(['fmt', '-check', '-recursive', '-no-color', TERRAFORM_DIR]);
const root = mkdtempSync(path.join(tmpdir(), 'ami-pipeline-tf-'));
try {
  for (const layer of ['app', 'release']) {
    const dir = path.join(root, layer);
    cpSync(path.join(TERRAFORM_DIR, layer), dir, { recursive: true });
    terraform(['init', '-backend=false', '-input=false', '-no-color', `-plugin-dir=${pluginDir}`], dir);
    const out = terraform(['validate', '-no-color'], dir);
    if (!out.includes('Success! The configuration is valid.')) throw new Error(`${layer}: ${out}`);
    console.log(`terraform-check: ${layer} layer is formatted and valid`);
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
