/** Types for config/assets.cjs (the builder assets and their content-hashed prefix). */
export declare const ASSET_DIRS: readonly string[];
export declare const listAssets: (configDir?: string) => { key: string; file: string }[];
export declare const assetsHash: (configDir?: string) => string;
export declare const assetsPrefix: (configDir?: string) => string;
/** Serverless variable source: `${file(./config/assets.cjs):prefix}`. */
export declare const prefix: () => Promise<string>;
