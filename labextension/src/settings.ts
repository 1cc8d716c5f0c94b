/**
 * The extension's settings (`schema/plugin.json`, *Settings → Sandbox (jupyter-exec-ext)*): the
 * sandbox status poll interval and which toolbar buttons show. Read through JupyterLab's setting
 * registry; a change applies at once, without a reload.
 */
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ISignal, Signal } from '@lumino/signaling';

/** The toolbar buttons a setting can hide (their commands stay in the palette and shortcuts). */
export interface IToolbarButtons {
  runInSandbox: boolean;
  submit: boolean;
  exercise: boolean;
  role: boolean;
}

export interface IExtensionSettings {
  /** Between two polls of `docker/status`, in ms. */
  statusPollMs: number;
  buttons: IToolbarButtons;
}

/** The schema's defaults: often enough to notice Docker going away, rare enough to cost nothing. */
export const DEFAULT_SETTINGS: IExtensionSettings = {
  statusPollMs: 10_000,
  buttons: { runInSandbox: true, submit: true, exercise: true, role: true }
};

/** The schema's bounds of `statusPollInterval`, in seconds. */
export const POLL_INTERVAL_BOUNDS_S = { min: 1, max: 3600 };

/** The setting keys of each toolbar button, as the schema names them. */
const BUTTON_KEYS: Record<keyof IToolbarButtons, string> = {
  runInSandbox: 'showRunInSandbox',
  submit: 'showSubmit',
  exercise: 'showExercise',
  role: 'showRole'
};

/**
 * The settings in `composite` (the registry's merge of the user's values over the schema's
 * defaults). The registry has validated them against the schema already; a value of the wrong
 * type (a registry without the schema) falls back to its default rather than breaking the UI.
 */
export function readSettings(composite: Readonly<Record<string, unknown>>): IExtensionSettings {
  const seconds = composite.statusPollInterval;
  const statusPollMs =
    typeof seconds === 'number' && Number.isFinite(seconds)
      ? Math.round(Math.min(Math.max(seconds, POLL_INTERVAL_BOUNDS_S.min), POLL_INTERVAL_BOUNDS_S.max) * 1000)
      : DEFAULT_SETTINGS.statusPollMs;
  const buttons = { ...DEFAULT_SETTINGS.buttons };
  for (const [button, key] of Object.entries(BUTTON_KEYS) as [keyof IToolbarButtons, string][]) {
    const value = composite[key];
    if (typeof value === 'boolean') {
      buttons[button] = value;
    }
  }
  return { statusPollMs, buttons };
}

/** The settings now, and a signal when they change. Defaults until the registry has answered. */
export class ExtensionSettings {
  private _current: IExtensionSettings = DEFAULT_SETTINGS;
  private _changed = new Signal<this, IExtensionSettings>(this);

  get current(): IExtensionSettings {
    return this._current;
  }

  get changed(): ISignal<this, IExtensionSettings> {
    return this._changed;
  }

  /** Takes the registry's composite settings; emits `changed` only if something differs. */
  update(composite: Readonly<Record<string, unknown>>): void {
    const next = readSettings(composite);
    if (JSON.stringify(next) === JSON.stringify(this._current)) {
      return;
    }
    this._current = next;
    this._changed.emit(next);
  }
}

/**
 * Loads the plugin's settings from `registry` into `target` and follows their changes. A
 * registry that cannot load them (e.g. a broken user file) leaves the defaults, with a warning.
 */
export async function followSettings(
  registry: ISettingRegistry,
  pluginId: string,
  target: ExtensionSettings
): Promise<void> {
  try {
    const settings = await registry.load(pluginId);
    target.update(settings.composite);
    settings.changed.connect(() => target.update(settings.composite));
  } catch (error) {
    console.warn(`jupyter-exec-ext: settings not loaded, using the defaults: ${(error as Error).message}`);
  }
}
