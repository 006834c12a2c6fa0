import type { SourceConfig } from './schema.js';

/**
 * Provider presets: endpoints, default scopes and a probe for well-known APIs. A source that
 * names a preset gets these defaults; anything set in the config wins.
 */
export interface Preset {
  name: string;
  title: string;
  defaults: SourceConfig;
  /** Where a person creates a token or app, shown in operator actions. */
  docsUrl?: string;
}

export const presets: Record<string, Preset> = {};

export function getPreset(name: string): Preset | undefined {
  return Object.prototype.hasOwnProperty.call(presets, name) ? presets[name] : undefined;
}
