// The builder assets the SSM documents fetch at run time (`aws s3 sync s3://<artifacts>/<prefix>/`):
// the command scripts, the Packer template, the Terraform layers and the InSpec profiles.
//
// As a Serverless variable source, `${file(./config/assets.cjs):prefix}` resolves to
// `tooling/<first 16 hex of a sha256 over the assets>`. The prefix changes with any asset, so a
// deploy never rewrites the files a running command is using, and a document parameter pins
// exactly what a run executed. config/plugins/upload-assets.cjs uploads the same list.
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

/** Asset folders, relative to config/, and the key they keep under the prefix. */
const ASSET_DIRS = ['ssm/scripts', 'packer', 'terraform', 'inspec'];

// Local Terraform/Packer working files are never assets.
const IGNORED = new Set(['.terraform', '.terraform.lock.hcl', 'packer_cache', '.DS_Store']);
const IGNORED_SUFFIXES = ['.tfstate', '.tfstate.backup'];

const walk = (root, rel) => {
  const entries = fs.readdirSync(path.join(root, rel), { withFileTypes: true });
  return entries.flatMap((entry) => {
    if (IGNORED.has(entry.name) || IGNORED_SUFFIXES.some((s) => entry.name.endsWith(s))) return [];
    const child = rel ? `${rel}/${entry.name}` : entry.name;
    if (entry.isDirectory()) return walk(root, child);
    return entry.isFile() ? [child] : [];
  });
};

/**
 * The asset files under `configDir`, sorted: `{ key, file }` where `key` is the path relative to
 * `configDir` with `/` separators (the object key under the prefix) and `file` the absolute path.
 */
const listAssets = (configDir = __dirname) =>
  ASSET_DIRS.flatMap((dir) => walk(configDir, dir))
    .sort()
    .map((key) => ({ key, file: path.join(configDir, ...key.split('/')) }));

/** First 16 hex digits of a sha256 over every asset's key, length and content, in sorted order. */
const assetsHash = (configDir = __dirname) => {
  const hash = createHash('sha256');
  for (const { key, file } of listAssets(configDir)) {
    const content = fs.readFileSync(file);
    // Key and length framed so that no two different trees hash alike.
    hash.update(`${key}\0${content.length}\0`);
    hash.update(content);
  }
  return hash.digest('hex').slice(0, 16);
};

/** `tooling/<hash>`: the assetsPrefix document parameter and the upload location. */
const assetsPrefix = (configDir = __dirname) => `tooling/${assetsHash(configDir)}`;

module.exports = { ASSET_DIRS, listAssets, assetsHash, assetsPrefix };
// Serverless variable source: `${file(./config/assets.cjs):prefix}`.
module.exports.prefix = async () => assetsPrefix();
